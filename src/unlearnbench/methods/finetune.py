"""Fine-tuning on the retain set (FT): catastrophic forgetting of the forget set."""
from dataclasses import dataclass

from ..params import param
from ..registry import methods
from ..train import make_optimizer, optimise
from .base import UnlearnContext


@dataclass
class FinetuneParams:
    epochs: int = param(5, ge=1)
    lr: float = param(0.01, gt=0)
    batch_size: int = param(64, ge=1)
    momentum: float = param(0.9, ge=0, lt=1)


@methods.register("finetune", params=FinetuneParams,
                  tasks=("classification", "language", "regression"),
                  needs=("retain",))
def finetune(ctx: UnlearnContext, params: FinetuneParams):
    """Fine-tune the original on the retain set only (FT), relying on catastrophic forgetting.

    OPTML default: 10 epochs, lr 0.01, SGD. The small models here converge in fewer passes, so
    the default is 5 epochs (half the original recipe) at lr 0.01."""
    model = ctx.copy_original()
    optimizer = make_optimizer(model.parameters(), "sgd", params.lr, params.momentum)
    batches = ctx.task.epochs(ctx.retain, params.batch_size, params.epochs, ctx.seed)
    optimise(model, optimizer, batches, lambda b: ctx.task.nll(model, b).mean(), ctx.budget)
    return model
