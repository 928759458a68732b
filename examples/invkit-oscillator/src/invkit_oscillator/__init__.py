"""A damped oscillator observed with noise, simulated in plain numpy, as an invkit plugin."""
