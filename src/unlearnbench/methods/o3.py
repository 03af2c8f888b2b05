"""O3 (Gao et al., ICLR 2025, "On Large Language Model Continual Unlearning") for classifiers:
per unlearning request a LoRA adapter on every Linear layer, trained on the forget data with
random labels and an orthogonality regulariser against the earlier requests' adapters, and an
out-of-distribution detector fitted on the forget data alone whose in-distribution score
weights the adapters per input, so that inputs unlike any forgotten data get the original.

Per layer, with x its input, W its frozen weight and request t's adapter (A_t: r × in,
B_t: out × r) and gate g_t(x) ∈ [0, 1]::

    y = W x + b + (α / r) Σ_t g_t(x) B_t A_t x

The detector of request t is a Gaussian over the frozen original's penultimate features h(x)
(the input of its last Linear layer) of the forget set: mean μ_t, covariance Σ_t shrunk
toward its mean variance, and the squared Mahalanobis distance d_t(x) = (h − μ_t)ᵀ Σ_t⁻¹
(h − μ_t); τ_t is the ``quantile`` of d_t over the forget set itself and the gate is
g_t(x) = sigmoid(sharpness · (1 − d_t(x) / τ_t)): ½ at the forget set's own quantile."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..params import param
from ..registry import methods
from ..train import make_optimizer, optimise
from .analytic import linear_head
from .base import UnlearnContext


@dataclass
class O3Params:
    rank: int = param(8, ge=1)            # the LoRA rank r (paper: 8)
    alpha: float = param(16.0, gt=0)      # the LoRA scale α (paper: 16)
    lr: float = param(1e-3, gt=0)         # Adam
    epochs: int = param(2, ge=1)          # over the forget set
    batch_size: int = param(16, ge=1)     # paper: 16
    orthogonal_weight: float = param(0.1, ge=0)  # paper: 0.1
    # of the detector's covariance, and the quantile of the forget set's distances where the
    # gate is ½: both fractions, searched inside (0, 1]
    shrinkage: float = param(0.5, ge=0, le=1, search=(0.05, 1.0))
    quantile: float = param(0.99, gt=0, le=1, search=(0.9, 1.0))
    sharpness: float = param(10.0, gt=0)


class GatedLoRALinear(nn.Linear):
    """A frozen ``nn.Linear`` plus the LoRA adapters of every request so far (buffers
    ``lora_a`` T × r × in, ``lora_b`` T × out × r), each scaled per example by its column of
    ``gates`` (batch × T), which ``O3Model`` sets before each forward pass. ``new_a``/``new_b``
    hold the adapter being trained (appended after the others) until ``freeze_new``."""

    def __init__(self, linear: nn.Linear, rank: int, scale: float):
        super().__init__(linear.in_features, linear.out_features, linear.bias is not None,
                         device=linear.weight.device, dtype=linear.weight.dtype)
        with torch.no_grad():
            self.weight.copy_(linear.weight)
            if linear.bias is not None:
                self.bias.copy_(linear.bias)
        self.scale = scale
        like = self.weight
        self.register_buffer("lora_a", like.new_zeros(0, rank, self.in_features))
        self.register_buffer("lora_b", like.new_zeros(0, self.out_features, rank))
        self.new_a = self.new_b = None
        self.gates = None

    def start_new(self, generator: torch.Generator) -> list[torch.Tensor]:
        """A fresh trainable adapter: A Kaiming-uniform as in LoRA, B zero (it starts as a
        no-op)."""
        rank = self.lora_a.shape[1]
        bound = (3.0 / self.in_features) ** 0.5
        a = (torch.rand(rank, self.in_features, generator=generator) * 2 - 1) * bound
        self.new_a = a.to(self.weight).requires_grad_(True)
        self.new_b = self.weight.new_zeros(self.out_features, rank).requires_grad_(True)
        return [self.new_a, self.new_b]

    def freeze_new(self) -> None:
        self.lora_a = torch.cat([self.lora_a, self.new_a.detach()[None]])
        self.lora_b = torch.cat([self.lora_b, self.new_b.detach()[None]])
        self.new_a = self.new_b = None

    def adapters(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.new_a is None:
            return self.lora_a, self.lora_b
        return (torch.cat([self.lora_a, self.new_a[None]]),
                torch.cat([self.lora_b, self.new_b[None]]))

    def orthogonality(self) -> torch.Tensor:
        """Σ over earlier adapters of ‖A_new A_oldᵀ‖²_F (O-LoRA's ‖A_newᵀ A_old‖² with A stored
        r × in)."""
        return torch.einsum("ri,tsi->trs", self.new_a, self.lora_a).pow(2).sum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight, self.bias)
        a, b = self.adapters()
        if len(a) == 0:
            return out
        low = torch.einsum("...i,tri->...tr", x, a)
        up = torch.einsum("...tr,tor->...to", low, b)
        gates = self.gates.view(len(x), *[1] * (x.dim() - 2), -1, 1).to(up)
        return out + self.scale * (gates * up).sum(-2)


class O3Model(nn.Module):
    """The unlearned classifier: ``net`` (the original with gated LoRA Linear layers) and
    ``detector`` (a frozen copy of the original whose penultimate features feed the per-request
    Mahalanobis detectors, buffers ``means`` T × d, ``precisions`` T × d × d, ``thresholds`` T).
    ``detector`` comes first so that ``net``'s head is the model's last layer (what the task's
    ``features`` read)."""

    def __init__(self, original: nn.Module, rank: int, scale: float, sharpness: float):
        super().__init__()
        self.detector = copy.deepcopy(original).eval()
        self.net = copy.deepcopy(original)
        for module in list(self.net.modules()):
            for child_name, child in list(module.named_children()):
                if type(child) is nn.Linear:
                    setattr(module, child_name, GatedLoRALinear(child, rank, scale))
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        width = linear_head(original).in_features
        like = linear_head(original).weight
        self.register_buffer("means", like.new_zeros(0, width))
        self.register_buffer("precisions", like.new_zeros(0, width, width))
        self.register_buffer("thresholds", like.new_zeros(0))
        self.sharpness = sharpness
        self.force_new = False  # training: the adapter being trained gets gate 1

    def train(self, mode: bool = True) -> "O3Model":
        """Always evaluation mode inside: training the adapters must not move the frozen
        networks' normalisation statistics, which every input, forgotten or not, reads."""
        super().train(False)
        self.training = mode
        return self

    def gated_layers(self) -> list[GatedLoRALinear]:
        return [m for m in self.net.modules() if isinstance(m, GatedLoRALinear)]

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen original's penultimate features (the input of its last Linear layer)."""
        captured = []
        handle = linear_head(self.detector).register_forward_hook(
            lambda module, inputs, output: captured.append(inputs[0].flatten(1)))
        try:
            self.detector(x)
        finally:
            handle.remove()
        return captured[0]

    def distances(self, features: torch.Tensor) -> torch.Tensor:
        """Squared Mahalanobis distance to each request's forget set (batch × T)."""
        centred = features[:, None, :] - self.means[None]
        return torch.einsum("ntd,tde,nte->nt", centred, self.precisions, centred)

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.means) == 0:
            return x.new_zeros(len(x), 0)
        ratio = self.distances(self.features(x)) / self.thresholds
        return torch.sigmoid(self.sharpness * (1 - ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gates = self.gates(x)
        if self.force_new:
            gates = torch.cat([gates, gates.new_ones(len(x), 1)], dim=1)
        for layer in self.gated_layers():
            layer.gates = gates
        try:
            return self.net(x)
        finally:
            for layer in self.gated_layers():
                layer.gates = None

    @torch.no_grad()
    def add_detector(self, features: torch.Tensor, shrinkage: float, quantile: float) -> None:
        """Fit request t's Gaussian on the forget set's features (float64, then stored)."""
        features = features.double()
        mean = features.mean(0)
        centred = features - mean
        covariance = centred.T @ centred / max(len(features) - 1, 1)
        # Shrunk toward its mean variance: a class has ~150 examples for 128 features on
        # digits, too few for a full covariance; the floor keeps dead units invertible.
        target = covariance.diagonal().mean().clamp_min(1e-12)
        covariance = (1 - shrinkage) * covariance + shrinkage * target * torch.eye(
            len(mean), dtype=torch.float64, device=mean.device)
        precision = torch.linalg.inv(covariance)
        distances = torch.einsum("nd,de,ne->n", centred, precision, centred)
        threshold = torch.quantile(distances, quantile).clamp_min(1e-12)
        like = self.means
        self.means = torch.cat([self.means, mean.to(like)[None]])
        self.precisions = torch.cat([self.precisions, precision.to(like)[None]])
        self.thresholds = torch.cat([self.thresholds, threshold.to(like)[None]])


def forget_features(model: O3Model, ctx: UnlearnContext) -> torch.Tensor:
    model.eval()
    parts = [model.features(batch.inputs) for batch in ctx.task.batches(ctx.forget, 512)]
    return torch.cat(parts)


@methods.register("o3", params=O3Params, tasks=("classification",), needs=("forget",))
def o3(ctx: UnlearnContext, params: O3Params):
    """O3: a random-label LoRA per request, orthogonal to earlier ones, gated by an OOD detector.

    Each request trains a new rank-``rank`` LoRA adapter (scale α/r) on every ``nn.Linear``
    of the classifier (Conv layers stay frozen) with Adam on the forget set relabelled with
    random wrong classes (``task.relabel_wrong``), minimising CE + ``orthogonal_weight`` ·
    Σ_layers Σ_old ‖A_new A_oldᵀ‖²_F; the earlier adapters stay frozen. It reads no retain
    data: the detector is what protects the rest, so O3 suits requests that form a
    distribution of their own (a class, a domain); on a random sample of the whole data the
    detector gates every input and the random-label adapter takes over every prediction
    (mnist-random10: test accuracy 11%). The detector is a shrunk-covariance
    Mahalanobis Gaussian over the frozen original's penultimate features of the forget set
    (see the module docstring); its gate scales the request's adapter per input at inference
    (and the adapter is trained with gate 1). A later sequential request continues from the
    previous O3 model: one more adapter and one more detector.

    Deviations from the paper: O3's detector is a contrastive-entropy-trained encoder with a
    layer-aggregated score; here a closed-form Gaussian on the original's features (no
    training, fits from the forget set alone as the paper requires, and well suited to
    features of a trained classifier, where classes form compact clusters). LoRA dropout and
    warm-up are left out; lr, epochs and batch size are scaled for small classifiers."""
    if isinstance(ctx.original, O3Model):  # a later sequential request
        model = copy.deepcopy(ctx.original)
    else:
        torch.manual_seed(ctx.seed)
        model = O3Model(ctx.original, params.rank, params.alpha / params.rank, params.sharpness)
    generator = torch.Generator().manual_seed(ctx.seed)
    layers = model.gated_layers()
    trainable = [t for layer in layers for t in layer.start_new(generator)]
    relabelled = ctx.task.relabel_wrong(ctx.forget, ctx.seed)
    optimizer = make_optimizer(trainable, "adam", params.lr)
    batches = ctx.task.epochs(relabelled, params.batch_size, params.epochs, ctx.seed)

    def loss(batch):
        penalty = sum(layer.orthogonality() for layer in layers)
        return ctx.task.nll(model, batch).mean() + params.orthogonal_weight * penalty

    model.force_new = True
    try:
        optimise(model, optimizer, batches, loss, ctx.budget)
    finally:
        model.force_new = False
    for layer in layers:
        layer.freeze_new()
    model.add_detector(forget_features(model, ctx), params.shrinkage, params.quantile)
    return model.eval()
