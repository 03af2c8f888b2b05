"""SISA (Sharded, Isolated, Sliced, Aggregated training; Bourtoule et al. 2021): exact
unlearning by retraining only the shard models, and only the slices, that held deleted points.

The SISA "original" (S shard models with a checkpoint after every slice) is the analogue of
original training: it is trained once per (data, training ids, architecture, recipe, S, R,
seed) and kept in the content-addressed model cache (and in memory for the process), so only
the first call pays for it. It is registered as the method's ``prepare`` step, which
``unlearn`` runs before the timed, budgeted deletion; its time is also recorded on the
returned ensemble (``model.sisa_info["prepare_seconds"]``)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..cache import ModelCache, content_key
from ..data import Split
from ..errors import UserError
from ..params import param
from ..registry import methods
from ..specs import Recipe
from ..train import StepBudget, make_optimizer, optimise
from .base import UnlearnContext

# Bump when the training procedure changes, so stale cached checkpoints are never reused.
_VERSION = 2
# In-process memo of prepared SISA checkpoints (content key -> (tensors, meta)), a few at most.
_MEMO: dict[str, tuple[dict[str, torch.Tensor], dict]] = {}
_MEMO_SIZE = 2
_FINGERPRINTS: dict[int, tuple[object, str]] = {}


@dataclass
class SisaParams:
    shards: int = param(5, ge=1, le=1000)
    slices: int = param(4, ge=1, le=1000)
    # Epochs of each incremental stage; 0 = Bourtoule et al.'s rule ceil(2·E/(R + 1)), which
    # makes a shard's total training equal E epochs over its data (E = the recipe's epochs).
    stage_epochs: int = param(0, ge=0)


@dataclass(frozen=True)
class SisaLayout:
    """Which training examples each (shard, slice) holds: ``slices[s][r]`` are positions into
    ``data`` (the training set, forget ∪ retain, ordered by id); each is sorted."""

    data: Split
    slices: list[list[np.ndarray]]

    @property
    def shards(self) -> int:
        return len(self.slices)


def training_data(forget: Split, retain: Split) -> Split:
    """forget ∪ retain ordered by id: the data the original model was trained on."""
    ids = np.concatenate([forget.ids, retain.ids])
    order = np.argsort(ids, kind="stable")
    index = torch.from_numpy(order)
    return Split("train", torch.cat([forget.inputs, retain.inputs])[index],
                 torch.cat([forget.targets, retain.targets])[index], ids[order])


def make_layout(data: Split, shards: int, slices: int, seed: int) -> SisaLayout:
    """Split ``data`` into ``shards`` disjoint shards by a permutation seeded by ``seed``, and
    each shard into ``slices`` disjoint slices (positions sorted within each slice)."""
    if not (1 <= shards <= 1000 and 1 <= slices <= 1000):
        raise UserError("sisa: shards and slices must be between 1 and 1000")
    if len(data) < shards * slices:
        raise UserError(f"sisa: {len(data)} training examples cannot fill {shards} shards × "
                        f"{slices} slices; use fewer")
    generator = torch.Generator().manual_seed(seed)
    permutation = torch.randperm(len(data), generator=generator).numpy()
    return SisaLayout(data, [[np.sort(part) for part in np.array_split(shard, slices)]
                             for shard in np.array_split(permutation, shards)])


def stage_epochs(params: SisaParams, recipe: Recipe) -> int:
    if params.stage_epochs < 0:
        raise UserError("sisa: stage_epochs must be >= 0 (0 = Bourtoule et al.'s rule)")
    return params.stage_epochs or max(1, math.ceil(2 * recipe.epochs / (params.slices + 1)))


def shard_seed(seed: int, shard: int) -> int:
    return 1000 * seed + shard


def fit_stage(task, model: nn.Module, split: Split, recipe: Recipe, epochs: int, seed: int,
              budget: StepBudget, decay: bool) -> int:
    """One SISA stage: ``epochs`` shuffled epochs over ``split`` with the recipe's optimizer
    (created fresh), at the recipe's constant learning rate, or with cosine decay to 0 over
    the stage when ``decay``. Returns the steps taken (each charged to ``budget``)."""
    if len(split) == 0:
        return 0
    optimizer = make_optimizer(model.parameters(), recipe.optimizer, recipe.lr,
                               recipe.momentum, recipe.weight_decay)
    schedule = None
    if decay:
        steps = epochs * -(-len(split) // recipe.batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))
    torch.manual_seed(seed)
    return optimise(model, optimizer, task.epochs(split, recipe.batch_size, epochs, seed),
                    lambda b: task.nll(model, b).mean(), budget,
                    after_step=schedule.step if schedule is not None else None)


def train_stages(task, model: nn.Module, data: Split, slices: list[np.ndarray], recipe: Recipe,
                 epochs: int, seed: int, start: int, budget: StepBudget,
                 checkpoint=None) -> nn.Module:
    """Incremental SISA training of one shard model, in place: stage ``k`` (from ``start``)
    trains on slices ``0..k`` for ``epochs`` epochs (``fit_stage``: a fresh optimizer each
    stage, so a stage depends only on the weights before it and no optimizer state has to be
    checkpointed; constant learning rate, cosine decay in the last stage only) shuffled by
    a seed of (seed, k). ``checkpoint(k, model)`` is called after each stage. Every step goes
    through ``train.optimise`` and is charged to ``budget``."""
    for stage in range(start, len(slices)):
        positions = np.sort(np.concatenate(slices[:stage + 1]))
        fit_stage(task, model, data.subset(positions, "sisa-stage"), recipe, epochs,
                  1000 * seed + stage, budget, decay=stage == len(slices) - 1)
        if checkpoint is not None:
            checkpoint(stage, model)
    return model.eval()


def train_shard(task, layout: SisaLayout, shard: int, recipe: Recipe, epochs: int, seed: int,
                slices: list[np.ndarray] | None = None, budget: StepBudget | None = None,
                start: int = 0, start_state: dict | None = None, checkpoint=None) -> nn.Module:
    """The model of ``shard``: fresh (seeded by ``shard_seed``) or loaded from
    ``start_state``, then trained from stage ``start`` on ``slices`` (default: the layout's)."""
    seed_s = shard_seed(seed, shard)
    model = task.fresh_model(seed_s)
    if start_state is not None:
        model.load_state_dict(start_state)
    slices = layout.slices[shard] if slices is None else slices
    return train_stages(task, model, layout.data, slices, recipe, epochs, seed_s, start,
                        budget or StepBudget(), checkpoint)


class SisaEnsemble(nn.Module):
    """Aggregates shard models: forward = log of the mean of their softmax probabilities, so
    argmax is the soft vote and every metric reading logits sees a proper log-distribution."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise UserError("sisa: every shard lost all its data; nothing is left to predict")
        self.members = nn.ModuleList(members)

    def forward(self, x):
        log_probs = torch.stack([F.log_softmax(m(x), dim=-1) for m in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


def _checkpoint_name(shard: int, stage: int, key: str) -> str:
    return f"shard{shard}/slice{stage}/{key}"


def _state_of(tensors: dict[str, torch.Tensor], shard: int, stage: int) -> dict[str, torch.Tensor]:
    prefix = f"shard{shard}/slice{stage}/"
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


class Checkpoints:
    """A named set of tensors with the two methods ``ModelCache`` uses of a model."""

    def __init__(self):
        self.tensors: dict[str, torch.Tensor] = {}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.tensors

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.tensors = dict(state)


def data_fingerprint(task) -> str:
    data = getattr(task, "data", None)
    if data is None or not hasattr(data, "fingerprint"):
        return "unknown"
    known = _FINGERPRINTS.get(id(data))
    if known is None or known[0] is not data:
        known = (data, data.fingerprint())
        _FINGERPRINTS[id(data)] = known
    return known[1]


def load_or_train_checkpoints(method: str, version: int, task, layout: SisaLayout,
                              recipe: Recipe, epochs: int, seed: int, cache: ModelCache | None,
                              train, **key_parts) -> tuple[dict[str, torch.Tensor], dict]:
    """A sharded method's per-stage checkpoints (SISA's, S3T's) from the process memo, the
    model cache, or ``train(holder)``, which fills ``holder.tensors`` and returns the training's
    metadata. Keyed by the method and its checkpoint ``version``, the data, model, recipe, seed,
    stage epochs, device, training ids, each slice's ids and ``key_parts``."""
    key = content_key({"method": method, "version": version, "data": data_fingerprint(task),
                       "model": getattr(task, "model_name", type(task).__name__),
                       "recipe": recipe, "seed": seed, "stage_epochs": epochs,
                       "device": torch.device(getattr(task, "device", "cpu")).type,
                       "train_ids": np.asarray(layout.data.ids),
                       "slices": [[np.asarray(layout.data.ids[p]) for p in shard]
                                  for shard in layout.slices], **key_parts})
    if key in _MEMO:
        return _MEMO[key]
    holder, meta = (cache or ModelCache()).get_or_train(key, Checkpoints, train)
    while len(_MEMO) >= _MEMO_SIZE:
        _MEMO.pop(next(iter(_MEMO)))
    _MEMO[key] = (holder.tensors, dict(meta, cached=True))
    return holder.tensors, meta


def prepare(task, layout: SisaLayout, recipe: Recipe, epochs: int, seed: int,
            cache: ModelCache | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """The SISA original: every shard trained slice by slice, with its weights after every
    stage (CPU tensors named ``shard{s}/slice{r}/<parameter>``), from the memo or the model
    cache if present. Its training uses its own unlimited budget: it is original training."""

    def train(holder: Checkpoints) -> dict:
        wall, cpu = time.perf_counter(), time.process_time()
        tensors = {}

        for shard in range(layout.shards):
            def keep(stage, model, shard=shard):
                for name, value in model.state_dict().items():
                    tensors[_checkpoint_name(shard, stage, name)] = value.detach().cpu().clone()
            train_shard(task, layout, shard, recipe, epochs, seed, checkpoint=keep)
        holder.tensors = tensors
        return {"role": "sisa-original", "seed": seed, "shards": layout.shards,
                "slices": len(layout.slices[0]), "stage_epochs": epochs,
                "train_seconds": time.perf_counter() - wall,
                "train_cpu_seconds": time.process_time() - cpu}

    return load_or_train_checkpoints("sisa", _VERSION, task, layout, recipe, epochs, seed, cache,
                                     train)


def reduced_slices(layout: SisaLayout, shard: int, deleted_ids) -> list[np.ndarray]:
    """The shard's slices without the deleted examples."""
    ids = layout.data.ids
    return [part[~np.isin(ids[part], deleted_ids)] for part in layout.slices[shard]]


def prepare_original(ctx: UnlearnContext, params: SisaParams) -> None:
    """Train (or load) the SISA original: original training, not part of the deletion."""
    if isinstance(ctx.original, SisaEnsemble):
        # Continuing from a previous deletion would need its retrained shards' checkpoints.
        raise UserError("sisa does not yet continue from an earlier deletion (sequential "
                        "requests); run it on single requests")
    layout = make_layout(training_data(ctx.forget, ctx.retain), params.shards, params.slices,
                         ctx.seed)
    prepare(ctx.task, layout, ctx.recipe, stage_epochs(params, ctx.recipe), ctx.seed, ctx.cache)


@methods.register("sisa", params=SisaParams, tasks=("classification",),
                  needs=("forget", "retain"), exact=True, prepare=prepare_original)
def sisa(ctx: UnlearnContext, params: SisaParams):
    """SISA: sharded, sliced training; deletion retrains affected shards from the last clean checkpoint.

    Bourtoule et al. (2021): S disjoint shards, each cut into R slices; shard model k is
    trained incrementally (slice 1, then slices 1-2, ...) with a checkpoint after each slice;
    prediction aggregates the shard models; deleting a point retrains only its shard, from
    the checkpoint before the first slice that held a deleted point. Exact by construction.
    Defaults S = 5, R = 4: with ~1,200 digits examples a shard holds ~240 and a slice ~60,
    about one batch of the recipe; more shards cost accuracy (each model sees less data).
    Per stage ceil(2E/(R + 1)) epochs, E the recipe's epochs (the paper's equal-cost rule:
    8 for the 20-epoch digits recipe, 2 for MNIST's 5), so a shard's incremental training
    costs E epochs over its data, and training all shards costs one original training.

    Implementation: the training set (forget ∪ retain, ordered by id) is permuted with
    ``ctx.seed``; shard s is initialised by ``fresh_model(1000·seed + s)``; stage k trains on
    slices 0..k with the benchmark recipe's optimizer, batch size and learning rate,
    shuffled by a seed of (seed, s, k). Each stage starts a fresh optimizer, so only weights
    are checkpointed; intermediate stages run at the constant learning rate and only the
    last stage decays it (cosine to 0, like the recipe): restarting a cosine decay in every
    stage left the digits shard models under-trained (TA 85% against 91%). A stage's
    schedule depends only on its own data, which is what makes the restart exact.
    Prediction is the log of the mean of the shard models' softmax probabilities (soft
    vote). A shard that loses all its data is dropped from the ensemble.

    The step budget (``max_steps``) caps only the deletion retraining; the one-off SISA
    original (cached by content: data, ids, architecture, recipe, S, R, seed) is the
    analogue of original training and runs under its own unlimited budget. A budget that
    cuts the retraining short leaves the result inexact. Random 10% deletions touch almost
    every slice 0 (a slice of ~60 examples holds a deleted one with probability ≈ 1 − 0.9^60),
    so there SISA retrains nearly everything: its strength is small deletion requests."""
    layout = make_layout(training_data(ctx.forget, ctx.retain), params.shards, params.slices,
                         ctx.seed)
    epochs = stage_epochs(params, ctx.recipe)
    checkpoints, meta = prepare(ctx.task, layout, ctx.recipe, epochs, ctx.seed, ctx.cache)
    deleted = np.asarray(ctx.forget.ids)
    members, retrained = [], []
    for shard in range(layout.shards):
        kept = reduced_slices(layout, shard, deleted)
        if sum(len(part) for part in kept) == 0:
            continue  # all of this shard's data was deleted: drop its model
        dirty = [r for r, (part, full) in enumerate(zip(kept, layout.slices[shard]))
                 if len(part) != len(full)]
        if not dirty:
            model = ctx.task.fresh_model(shard_seed(ctx.seed, shard))
            model.load_state_dict(_state_of(checkpoints, shard, params.slices - 1))
            members.append(model.eval())
            continue
        first = dirty[0]
        start_state = _state_of(checkpoints, shard, first - 1) if first > 0 else None
        members.append(train_shard(ctx.task, layout, shard, ctx.recipe, epochs, ctx.seed,
                                   slices=kept, budget=ctx.budget, start=first,
                                   start_state=start_state))
        retrained.append((shard, first))
    ensemble = SisaEnsemble(members).eval()
    ensemble.sisa_info = {"retrained": retrained, "shards_kept": len(members),
                          "prepare_seconds": float(meta.get("train_seconds", 0.0)),
                          "prepare_cached": bool(meta.get("cached", True))}
    return ensemble
