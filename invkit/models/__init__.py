"""Networks: the INN of Ardizzone et al. (``inn``) and the conditional INN (``cinn``), both
chains of FrEIA coupling blocks; :mod:`~invkit.models.kinds` builds either from the config."""

from invkit.models.cinn import ConditionalINN
from invkit.models.inn import PaddedINN, resolve_dims
from invkit.models.kinds import MODEL_KINDS, build_model

__all__ = ["MODEL_KINDS", "ConditionalINN", "PaddedINN", "build_model", "resolve_dims"]
