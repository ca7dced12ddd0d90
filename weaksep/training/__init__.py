"""Training a separator: the loop (``train``), validation and early stopping (``validation``),
checkpoints (``checkpoint``), devices and DistributedDataParallel (``distrib``), and the cost of a
profile's training before running it (``dry_run``)."""
