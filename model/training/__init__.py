"""`prn-train`: configuration, the training loop, checkpoints, DDP, the weighting ablation."""
