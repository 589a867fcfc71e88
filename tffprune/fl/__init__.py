"""Federated training: client work, Sub-FedAvg aggregation, TFF orchestration."""
