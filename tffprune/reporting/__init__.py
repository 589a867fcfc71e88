"""Results on disk: output directories, atomic writes, metrics, plots."""
