"""tffprune: communication-efficient federated learning with pruned models."""

__version__ = "0.1.0"
