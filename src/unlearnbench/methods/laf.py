"""LAF, label-agnostic forgetting (Shen et al., ICLR 2024, "Label-Agnostic Forgetting: A
Supervision-Free Unlearning in Deep Models"; reference code ShaofeiShen768/LAF): two VAEs on
the extractor's embeddings, then extractor unlearning and representation alignment."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..models.inspect import layers
from ..params import param
from ..registry import methods
from ..train import StepBudget, optimise
from ._shared import frozen_teacher
from .base import UnlearnContext


@dataclass
class LafParams:
    epochs: int = param(4, ge=1)
    lr_ue: float = param(5e-5, gt=0)
    lr_ra: float = param(1e-4, gt=0)
    temperature: float = param(5.0, gt=0)
    batch_size: int = param(8, ge=1)
    latent: int = param(8, ge=1)
    vae_steps: int = param(25, ge=1)
    vae_batch_size: int = param(32, ge=1)
    vae_lr: float = param(1e-3, gt=0)
    head_finetune: bool = param(False, choices=(False, True))
    head_lr: float = param(1e-3, gt=0)


class EmbeddingVAE(nn.Module):
    """The reference's VAE for CNN embeddings: encoder dim→128→32→(μ, log σ²), decoder
    latent→32→128→dim, with z sampled in every forward pass (training or not)."""

    def __init__(self, dim: int, latent: int):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU())
        self.mu, self.log_var = nn.Linear(32, latent), nn.Linear(32, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, 32), nn.ReLU(), nn.Linear(32, 128),
                                     nn.ReLU(), nn.Linear(128, dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden = self.encoder(x)
        mu, log_var = self.mu(hidden), self.log_var(hidden)
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
        return self.decoder(z), mu, log_var


def reconstruction_error(vae: EmbeddingVAE, embeddings: torch.Tensor) -> torch.Tensor:
    """E: the per-example summed squared reconstruction error."""
    return (vae(embeddings)[0] - embeddings).pow(2).sum(dim=1)


def train_vae(embeddings: torch.Tensor, params: LafParams, budget: StepBudget,
              seed: int) -> EmbeddingVAE:
    """A VAE fitted to ``embeddings`` (rows): ``vae_steps`` Adam steps on seeded shuffled
    batches, minimising the batch mean of summed squared error + KL(q(z|x) ‖ N(0, I))."""
    torch.manual_seed(seed)
    vae = EmbeddingVAE(embeddings.shape[1], params.latent).to(embeddings.device)
    optimizer = torch.optim.Adam(vae.parameters(), lr=params.vae_lr)

    def batches() -> Iterator[torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        for _ in range(params.vae_steps):
            yield embeddings[torch.randint(len(embeddings), (params.vae_batch_size,),
                                           generator=generator)]

    def loss(x):
        recon, mu, log_var = vae(x)
        kl = -0.5 * (1 + log_var - mu.pow(2) - log_var.exp()).sum(dim=1)
        return ((recon - x).pow(2).sum(dim=1) + kl).mean()

    # observed=False: the budget's learning-curve observer watches the model being unlearned.
    optimise(vae, optimizer, batches(), loss, budget, observed=False)
    for parameter in vae.parameters():
        parameter.requires_grad_(False)
    return vae.eval()


def classifier_head(model: nn.Module) -> nn.Linear:
    """The last weight layer, which must be an ``nn.Linear`` after at least one other weight
    layer: the head; everything before it is the feature extractor."""
    found = layers(model)
    if len(found) < 2 or not isinstance(found[-1], nn.Linear):
        raise UserError("laf needs a classifier whose last weight layer is an nn.Linear head after "
                        "a feature extractor; use a model such as mlp, cnn or resnet18")
    return found[-1]


def embed(model: nn.Module, head: nn.Linear, inputs: torch.Tensor) -> torch.Tensor:
    """The extractor's embeddings of ``inputs`` (the head's input), with gradients."""
    captured = []
    handle = head.register_forward_hook(lambda module, args, output: captured.append(args[0]))
    try:
        model(inputs)
    finally:
        handle.remove()
    return captured[0].flatten(1)


@methods.register("laf", params=LafParams, tasks=("classification",), needs=("forget", "retain"))
def laf(ctx: UnlearnContext, params: LafParams):
    """LAF: forget without labels by pushing the forget embeddings off their own manifold.

    Stage 0: the frozen original's embeddings (the input of the last ``nn.Linear``, the head)
    of the retain and forget sets each train a VAE (``latent`` 8). Then, each epoch, over
    pairs of shuffled forget and retain batches (as many pairs as forget batches: the
    reference zips the two loaders), two steps on the whole model:
    (i) extractor unlearning, Adam ``lr_ue``: minimise Σ_s exp(E_s/(E_s+1)) − Σ_u
    exp(E_u/(E_u+1)), E the per-example summed squared reconstruction error of the current
    embeddings under the retain VAE (retain batch s) or the forget VAE (forget batch u);
    (ii) representation alignment, Adam ``lr_ra``: minimise Σ_s log(exp(d_s) / Σ_u exp(d_u/τ))
    with d = 1 − cos(embedding, the frozen original's embedding), computed as
    Σ_s d_s − |s|·logsumexp_u(d_u/τ) (the same value, without overflow).
    ``head_finetune`` (the semi-supervised variant) then fine-tunes the head alone with CE
    on retain labels for ``epochs`` more epochs of as many retain batches, Adam ``head_lr``.

    Defaults: the paper's CNN (MNIST) settings, latent 8, lr_ue 5e-5, lr_ra 1e-4, τ 5 (its
    value for random forgetting; 20 for class forgetting). Deviations:
    - the embedding is the input of the model's last linear layer (the reference's is its
      ``fc1`` output, before a two-layer head), and the head is that last layer alone;
    - the VAE training recipe is in the reference's notebook, not consulted: here ``vae_steps`` 25
      Adam steps at ``vae_lr`` 1e-3 on batches of 32 drawn with replacement, loss summed
      squared error + KL; the VAE is the reference's CNN one but its decoder ends linear (the
      reference ends in a sigmoid, which cannot reconstruct unbounded ReLU embeddings);
    - 4 epochs of forget batches of 8 instead of 20 epochs: every forward pass with gradients
      counts towards the cost (the VAEs' too), and so the default costs at most a quarter of
      retraining on digits;
    - head fine-tuning's lr and length are not published: Adam 1e-3, ``epochs`` epochs.
    The digits benchmarks set lr_ue 2e-3 and lr_ra 4e-3, 40 times the published rates: their
    ~150 forget examples give ~70 steps of each kind, where the published rates (and 10 times
    them) leave digits-class's forget accuracy at 100% (seed 0); 20 times them forget the
    class on seeds 0 and 2, not 1; 40 times them on seeds 0-2 (UA 99.7%, test accuracy 83.3%
    against retraining's 87.0%), at 2.1 points of test accuracy on digits-random10; 100 times
    them cost 6 points there (seed 0). At 20 times, on digits-class seed 0, the alignment step
    alone forgets the class (forget accuracy 0%, test accuracy 84.5%); the extractor-unlearning
    step alone does not (99.2%) and costs 20 points of test accuracy (76.2%).
    The model must have an ``nn.Linear`` last weight layer (``UserError`` otherwise)."""
    task = ctx.task
    teacher = frozen_teacher(ctx)
    teacher_head = classifier_head(teacher)  # refuses an unsplittable model before any work
    student = ctx.copy_original()
    head = classifier_head(student)
    device = next(student.parameters()).device

    s_vae = train_vae(task.features(teacher, ctx.retain).to(device), params, ctx.budget, ctx.seed)
    u_vae = train_vae(task.features(teacher, ctx.forget).to(device), params, ctx.budget,
                      ctx.seed + 1)

    def unlearning_loss(pair):
        u, s = pair
        e_s = reconstruction_error(s_vae, embed(student, head, s.inputs))
        e_u = reconstruction_error(u_vae, embed(student, head, u.inputs))
        return torch.exp(e_s / (e_s + 1)).sum() - torch.exp(e_u / (e_u + 1)).sum()

    def alignment_loss(pair):
        u, s = pair
        with torch.no_grad():
            s_teacher = embed(teacher, teacher_head, s.inputs)
            u_teacher = embed(teacher, teacher_head, u.inputs)
        d_s = 1 - F.cosine_similarity(embed(student, head, s.inputs), s_teacher, dim=1)
        d_u = 1 - F.cosine_similarity(embed(student, head, u.inputs), u_teacher, dim=1)
        return d_s.sum() - len(d_s) * torch.logsumexp(d_u / params.temperature, dim=0)

    def pairs(epoch):
        return zip(task.batches(ctx.forget, params.batch_size, True, ctx.seed * 1000 + 500 + epoch),
                   task.batches(ctx.retain, params.batch_size, True, ctx.seed * 1000 + epoch))

    optimizer_ue = torch.optim.Adam(student.parameters(), lr=params.lr_ue)
    optimizer_ra = torch.optim.Adam(student.parameters(), lr=params.lr_ra)
    for epoch in range(params.epochs):
        for pair in pairs(epoch):
            if not (optimise(student, optimizer_ue, [pair], unlearning_loss, ctx.budget)
                    and optimise(student, optimizer_ra, [pair], alignment_loss, ctx.budget)):
                return student  # the budget is spent

    if params.head_finetune:
        optimizer = torch.optim.Adam(head.parameters(), lr=params.head_lr)
        retain_batches = (s for epoch in range(params.epochs)
                          for _, s in pairs(params.epochs + epoch))
        optimise(student, optimizer, retain_batches,
                 lambda batch: task.nll(student, batch).mean(), ctx.budget)
    return student
