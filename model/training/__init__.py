"""`prn-train`: configuration, the training loop, validation, logging, DDP, the weighting ablation."""
