"""The 8-mode Gaussian mixture of Ardizzone et al. (2019), as an invkit problem plugin."""
