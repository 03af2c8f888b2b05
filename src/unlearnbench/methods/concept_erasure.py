"""Class unlearning through concepts: LEACE (Belrose et al., NeurIPS 2023, "LEACE: Perfect
linear concept erasure in closed form") on the penultimate features, with the concept "is
the forgotten class", folded into the last Linear layer.

With x the features (the input of the last Linear layer), μ their mean, Σ = Cov(x) and
σ = Cov(x, z) for the binary concept z = 1[y = forgotten class], over forget ∪ retain::

    W = Σ^(−½) (whitening; pseudo-inverse over Σ's null space),  u = Wσ / ‖Wσ‖
    r(x) = x − W⁺ u uᵀ W (x − μ) = x − a bᵀ (x − μ),   a = Σ^(½) u,  b = Σ^(−½) u

r is the least-squares-smallest affine edit after which no linear function of the features
tells the class apart from the rest (equal class-conditional means). The head (H, h) then
reads r(x): H' = H − (H a) bᵀ and h' = h + (H a) bᵀ μ: the same architecture, closed
form."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserError
from ..params import param
from ..registry import methods
from .analytic import linear_head, penultimate_features
from .base import UnlearnContext
from .sisa import training_data


@dataclass
class ConceptErasureParams:
    # eigenvalues of Σ below this fraction of the largest count as its null space (dead units)
    rank_tolerance: float = param(1e-8, gt=0, lt=1)
    batch_size: int = param(512, ge=1)


def forgotten_class(ctx: UnlearnContext) -> int:
    """The one class the request forgets entirely; any other request is refused."""
    classes = np.unique(ctx.forget.targets.cpu().numpy())
    kept = np.isin(ctx.retain.targets.cpu().numpy(), classes).sum()
    if len(classes) != 1 or kept:
        raise UserError("concept_erasure erases a whole class and this forget set is not one "
                        f"(classes {classes.tolist()}, {kept} retained examples of them); use "
                        "a class request (forget kind 'class') or another method")
    return int(classes[0])


def leace_eraser(features: torch.Tensor, concept: torch.Tensor, tolerance: float
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(a, b, μ) of the rank-one LEACE eraser r(x) = x − a bᵀ(x − μ) for a binary concept
    (float64; see the module docstring)."""
    mean = features.mean(0)
    centred = features - mean
    covariance = centred.T @ centred / len(features)
    cross = centred.T @ (concept - concept.mean()) / len(features)
    values, vectors = torch.linalg.eigh(covariance)
    live = values > tolerance * values.max()
    values, vectors = values[live], vectors[:, live]
    whiten = vectors @ torch.diag(values.rsqrt()) @ vectors.T
    unwhiten = vectors @ torch.diag(values.sqrt()) @ vectors.T
    direction = whiten @ cross
    direction = direction / direction.norm()
    return unwhiten @ direction, whiten @ direction, mean


@methods.register("concept_erasure", params=ConceptErasureParams, tasks=("classification",),
                  needs=("forget", "retain"), class_only=True)
def concept_erasure(ctx: UnlearnContext, params: ConceptErasureParams):
    """Concept erasure (LEACE): erase the forgotten class from the penultimate features, closed form.

    Fits the LEACE eraser of the concept "this example is of the forgotten class" on the
    current model's penultimate features of the whole training set (forget ∪ retain) and
    folds it into the last Linear layer (see the module docstring): gradient-free, one pass
    over the training data, float64 fit, the architecture unchanged. Only the head changes:
    the backbone still computes what it learned from the class, but nothing linear on top of
    its features can single the class out any more. Refuses a request that is not one whole
    class. A later sequential class request erases its class from the previous result.

    Deviation from LEACE: the paper erases the concept from a representation for every
    downstream probe; here only the model's own head reads it, so the eraser is folded into
    that head rather than kept as a separate layer."""
    target = forgotten_class(ctx)
    data = training_data(ctx.forget, ctx.retain)
    features = penultimate_features(ctx.task, ctx.original, data, params.batch_size)
    concept = (data.targets.cpu() == target).to(torch.float64)
    a, b, mean = leace_eraser(features, concept, params.rank_tolerance)
    model = copy.deepcopy(ctx.original)
    head = linear_head(model)
    with torch.no_grad():
        weight = head.weight.detach().to("cpu", torch.float64)
        moved = weight @ a
        new_weight = weight - torch.outer(moved, b)
        head.weight.copy_(new_weight.to(head.weight))
        if head.bias is not None:
            head.bias.add_((moved * (b @ mean)).to(head.bias))
    return model.eval()
