"""The 8-mode Gaussian mixture of the write-up, as an invkit problem plugin."""
