"""A method from outside the package: gradient ascent on the forget set, then repair."""
from dataclasses import dataclass

from unlearnbench.params import param
from unlearnbench.registry import methods
from unlearnbench.train import make_optimizer, optimise


@dataclass
class AscentRepairParams:
    lr: float = param(0.01, gt=0)
    repair_epochs: int = param(1, ge=1)


@methods.register("ascent_repair", params=AscentRepairParams, tasks=("classification",),
                  needs=("forget", "retain"))
def ascent_repair(ctx, params):
    """One epoch of gradient ascent on the forget set, then fine-tuning on the retain set."""
    model = ctx.copy_original()  # the original itself must stay as it is
    ascent = ctx.task.epochs(ctx.forget, 32, 1, ctx.seed)
    optimise(model, make_optimizer(model.parameters(), "sgd", params.lr, 0.0), ascent,
             lambda batch: -ctx.task.nll(model, batch).mean(), ctx.budget)
    repair = ctx.task.epochs(ctx.retain, 32, params.repair_epochs, ctx.seed)
    optimise(model, make_optimizer(model.parameters(), "sgd", params.lr, 0.9), repair,
             lambda batch: ctx.task.nll(model, batch).mean(), ctx.budget)
    return model
