"""The ``invkit`` command line."""
