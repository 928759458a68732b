"""Training: losses and the trainer of the write-up's method."""
