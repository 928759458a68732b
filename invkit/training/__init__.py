"""Training: the objectives of each model kind, their losses, the data and the trainer."""
