"""Network builders: the padded INN of the write-up (and, later, the conditional INN)."""

from invkit.models.inn import PaddedINN, build_inn, resolve_dims

__all__ = ["PaddedINN", "build_inn", "resolve_dims"]
