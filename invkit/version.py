"""The package version, in a module of its own so that low layers (checkpoints) can read it
without importing the package's public face."""

__version__ = "0.1.0"
