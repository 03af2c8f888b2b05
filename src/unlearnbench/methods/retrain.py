"""Retrain from scratch on the retain set (exact unlearning, the gold standard)."""
from ..registry import methods
from .base import UnlearnContext


@methods.register("retrain", tasks=("classification", "language", "generation", "regression"),
                  needs=("retain",), exact=True)
def retrain(ctx: UnlearnContext, params: None):
    """Retrain from scratch on the retain set with the original recipe (exact; the gold standard).

    With the scenario's seed this reproduces the retrained reference bit for bit on CPU, so its
    Avg. Gap is 0; its cost is the cost of retraining. A language task retrains on the retain
    set plus the facts every model learns (``task.retraining_set``)."""
    model = ctx.task.fresh_model(ctx.seed)
    return ctx.task.fit(model, ctx.task.retraining_set(ctx.retain), ctx.recipe, ctx.seed,
                        ctx.budget)
