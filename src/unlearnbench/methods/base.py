"""What a method receives: the task adapter, the original model (read-only), the forget and
retain splits, a seed and a step budget. A method returns a new model; it never mutates
``ctx.original`` (the contract tests check this)."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..cache import ModelCache
from ..data import Split
from ..specs import Recipe
from ..train import StepBudget


@dataclass
class UnlearnContext:
    task: object
    original: nn.Module
    forget: Split
    retain: Split
    recipe: Recipe
    seed: int = 0
    budget: StepBudget | None = None
    cache: ModelCache | None = None  # the scenario's model cache (None: the default place)

    def __post_init__(self):
        if self.budget is None:
            self.budget = StepBudget()

    def copy_original(self) -> nn.Module:
        """A trainable deep copy of the original model, seeded for the method's randomness.
        With the recipe's ``lora_rank`` (language models) the copy is wrapped in LoRA adapters,
        its only trainable weights; ``unlearning.unlearn`` merges them into the returned model."""
        torch.manual_seed(self.seed)
        model = copy.deepcopy(self.original)
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        if self.recipe.lora_rank:
            from ..models.pretrained import add_lora
            model = add_lora(model, self.recipe.lora_rank)
        return model


def freeze_all_but(model: nn.Module, trainable: list[nn.Module]) -> list[nn.Parameter]:
    """Freeze every parameter except those of ``trainable``; return the trainable ones."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    params = [p for module in trainable for p in module.parameters(recurse=False)]
    for parameter in params:
        parameter.requires_grad_(True)
    return params


def mean_nll_gradients(ctx: UnlearnContext, model: nn.Module, split, batch_size: int = 64,
                       squared: bool = False) -> dict[str, torch.Tensor]:
    """Per-parameter mean over ``split`` of the gradient of the batch-mean NLL (or of its
    square: the diagonal empirical Fisher as SSD computes it, batch-order dependent).
    Task-agnostic: uses only ``task.batches`` and ``task.nll``."""
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    totals = {n: torch.zeros_like(p) for n, p in named.items()}
    batches = 0
    model.eval()
    for batch in ctx.task.batches(split, batch_size):
        model.zero_grad(set_to_none=True)
        ctx.task.nll(model, batch).mean().backward()
        for name, parameter in named.items():
            if parameter.grad is not None:
                totals[name] += parameter.grad.pow(2) if squared else parameter.grad
        batches += 1
    model.zero_grad(set_to_none=True)
    return {n: t / max(batches, 1) for n, t in totals.items()}


def unflatten(vector: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Cut a flat vector back into tensors shaped like ``like``'s, in its order."""
    parts = torch.split(vector, [t.numel() for t in like.values()])
    return {name: part.view_as(t) for (name, t), part in zip(like.items(), parts)}
