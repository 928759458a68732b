"""Network builders: the padded INN of the write-up and the conditional INN (model.kind=cinn)."""

from invkit.models.cinn import ConditionalINN, build_cinn
from invkit.models.inn import PaddedINN, build_inn, resolve_dims

__all__ = ["ConditionalINN", "PaddedINN", "build_cinn", "build_inn", "resolve_dims"]
