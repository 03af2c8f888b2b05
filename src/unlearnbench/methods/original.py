"""The original model unchanged: the no-unlearning baseline every table needs."""
from ..registry import methods
from .base import UnlearnContext


@methods.register("original", tasks=("classification", "language", "generation", "regression"),
                  needs=())
def original(ctx: UnlearnContext, params: None):
    """No unlearning: a copy of the original model (the baseline to beat)."""
    return ctx.copy_original()
