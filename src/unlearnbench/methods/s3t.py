"""S3T (Sequence-aware Sharded Sliced Training; Chowdhury et al., ICLR 2025): SISA's shards
and slices, with each shard trained as several sequences of its slices, so that a deletion
can fall back to the longest prefix of some sequence that never saw a deleted point.

Like SISA's, the S3T "original" (every shard's models, one per sequence, with a checkpoint
after every slice) is the analogue of original training: the registered ``prepare`` step,
trained once per (data, training ids, architecture, recipe, S, R, sequences, seed) and kept
in the content-addressed model cache."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..cache import ModelCache
from ..errors import UserError
from ..params import param
from ..registry import methods
from ..specs import Recipe
from ..train import StepBudget
from .base import UnlearnContext
from .sisa import (Checkpoints, SisaEnsemble, SisaLayout, load_or_train_checkpoints,
                   make_layout, reduced_slices, shard_seed, train_stages, training_data)
from .sisa import stage_epochs as sisa_stage_epochs

# Bump when the training procedure changes, so stale cached checkpoints are never reused.
_VERSION = 1


@dataclass
class S3tParams:
    shards: int = param(5, ge=1, le=1000)
    slices: int = param(4, ge=1, le=1000)
    # The budget B of models per shard: B cyclic rotations of the slice order.
    sequences: int = param(4, ge=1, le=1000)
    # As SISA's: 0 = ceil(2·E/(R + 1)) epochs per stage.
    stage_epochs: int = param(0, ge=0)
    # False: serve the best surviving prefix as it is (the paper's in-service deactivation, no
    # training at deletion time); a shard whose every sequence starts with a deleted slice is
    # then dropped. True: train that prefix on through the rest of its sequence.
    retrain: bool = True

    def __post_init__(self):
        # Checked when the hyperparameters are resolved, so a sweep refuses it before running.
        if self.sequences > self.slices:
            raise UserError(f"s3t.sequences={self.sequences} exceeds s3t.slices={self.slices}: "
                            "there are only as many rotations of the slice order as slices")


def sequences(slices: int, count: int) -> list[list[int]]:
    """The slice orders of every shard: ``count`` cyclic rotations of 0..R−1 spread evenly
    (sequence b starts at slice ⌊b·R/B⌋), so every slice starts some sequence when B = R and
    sequence 0 is SISA's order."""
    if not 1 <= count <= slices:
        raise UserError(f"s3t: sequences must be between 1 and slices ({slices}); got {count}")
    starts = [b * slices // count for b in range(count)]
    return [[(start + k) % slices for k in range(slices)] for start in starts]


def sequence_seed(seed: int, shard: int, sequence: int) -> int:
    """Sequence 0 of a shard is SISA's shard model (same seed); the others get their own
    (distinct for run seeds below 10⁶)."""
    return shard_seed(seed, shard) + 10**9 * sequence


def clean_prefix(order: list[int], dirty: set[int]) -> int:
    """How many leading slices of ``order`` hold no deleted point."""
    for position, part in enumerate(order):
        if part in dirty:
            return position
    return len(order)


def train_sequence(task, layout: SisaLayout, shard: int, sequence: int, order: list[int],
                   recipe: Recipe, epochs: int, seed: int, slices: list[np.ndarray] | None = None,
                   budget: StepBudget | None = None, start: int = 0,
                   start_state: dict | None = None, checkpoint=None):
    """The model of sequence ``sequence`` (slice order ``order``) of ``shard``: stage k trains
    on the slices ``order[:k + 1]`` (SISA's incremental stages, ``sisa.train_stages``), from
    stage ``start`` on, fresh or from ``start_state``; ``slices`` default to the layout's."""
    seed_b = sequence_seed(seed, shard, sequence)
    model = task.fresh_model(seed_b)
    if start_state is not None:
        model.load_state_dict(start_state)
    slices = layout.slices[shard] if slices is None else slices
    return train_stages(task, model, layout.data, [slices[part] for part in order], recipe,
                        epochs, seed_b, start, budget or StepBudget(), checkpoint)


def _prefix(shard: int, sequence: int, stage: int) -> str:
    return f"shard{shard}/seq{sequence}/slice{stage}/"


def state_of(tensors: dict[str, torch.Tensor], shard: int, sequence: int, stage: int
             ) -> dict[str, torch.Tensor]:
    """The weights of ``shard``'s sequence ``sequence`` after its stage ``stage``."""
    prefix = _prefix(shard, sequence, stage)
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def prepare(task, layout: SisaLayout, orders: list[list[int]], recipe: Recipe, epochs: int,
            seed: int, cache: ModelCache | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """The S3T original: every sequence of every shard trained stage by stage, with its weights
    after every stage, from the memo or the model cache if present. Original training: its own
    unlimited budget."""

    def train(holder: Checkpoints) -> dict:
        wall, cpu = time.perf_counter(), time.process_time()
        for shard in range(layout.shards):
            for sequence, order in enumerate(orders):
                def keep(stage, model, shard=shard, sequence=sequence):
                    for name, value in model.state_dict().items():
                        holder.tensors[_prefix(shard, sequence, stage) + name] = \
                            value.detach().cpu().clone()
                train_sequence(task, layout, shard, sequence, order, recipe, epochs, seed,
                               checkpoint=keep)
        return {"role": "s3t-original", "seed": seed, "shards": layout.shards,
                "slices": len(orders[0]), "sequences": len(orders), "stage_epochs": epochs,
                "train_seconds": time.perf_counter() - wall,
                "train_cpu_seconds": time.process_time() - cpu}

    return load_or_train_checkpoints("s3t", _VERSION, task, layout, recipe, epochs, seed, cache,
                                     train, orders=orders)


def setup(ctx: UnlearnContext, params: S3tParams):
    layout = make_layout(training_data(ctx.forget, ctx.retain), params.shards, params.slices,
                         ctx.seed)
    return layout, sequences(params.slices, params.sequences), sisa_stage_epochs(params,
                                                                                 ctx.recipe)


def prepare_original(ctx: UnlearnContext, params: S3tParams) -> None:
    """Train (or load) the S3T original: original training, not part of the deletion."""
    if isinstance(ctx.original, SisaEnsemble):
        raise UserError("s3t does not yet continue from an earlier deletion (sequential "
                        "requests); run it on single requests")
    layout, orders, epochs = setup(ctx, params)
    prepare(ctx.task, layout, orders, ctx.recipe, epochs, ctx.seed, ctx.cache)


@methods.register("s3t", params=S3tParams, tasks=("classification",),
                  needs=("forget", "retain"), exact=True, prepare=prepare_original)
def s3t(ctx: UnlearnContext, params: S3tParams):
    """S3T: SISA with several slice orders per shard; a deletion falls back to the longest clean prefix.

    Chowdhury et al. (ICLR 2025), "Towards Scalable Exact Machine Unlearning Using
    Parameter-Efficient Fine-Tuning" (S3T); reference code: the authors' repository (its
    README and scripts). SISA's layout (``sisa.make_layout``: S shards of R slices, seeded
    by the run seed); each shard is trained as B sequences, sequence b in a cyclic rotation
    of the slice order, stage k of a sequence on its first k + 1 slices with a checkpoint
    after each stage. A deletion dirties the slices holding deleted points; each sequence
    keeps the stages before its first dirty slice, and the shard falls back to the sequence
    with the longest clean prefix (ties: the lowest b). With ``retrain`` (default) that
    prefix is trained on through the rest of its sequence, the dirty slices without the
    deleted points (as SISA restarts from its last clean checkpoint: exact, and never more
    stages than SISA, whose order is sequence 0); without it the prefix model is served as
    it is, and a shard whose every sequence starts dirty is dropped. Prediction as SISA's:
    the log of the mean of the shard models' softmax (soft vote).

    Deviations: the paper trains LoRA layers of a pretrained model, layer i on slices 1..i
    (deactivating a layer drops a slice's influence), and picks the B orders by
    bipartite-matching sequence selection; here every stage trains the whole small model
    (SISA's stages and seeds, sequence 0 bitwise SISA's shard model) and the orders are
    the paper's cheaper cyclic rotations, spread evenly. Defaults S = 5, R = 4, B = 4 (every
    slice starts one sequence), SISA's epochs per stage; the B-fold training is the untimed
    ``prepare`` step. ``model.s3t_info``: per affected shard (shard, sequence, clean prefix),
    and the slices lost (Σ R − prefix), the stages a deletion retrains or gives up."""
    layout, orders, epochs = setup(ctx, params)
    checkpoints, meta = prepare(ctx.task, layout, orders, ctx.recipe, epochs, ctx.seed,
                                ctx.cache)
    deleted = np.asarray(ctx.forget.ids)
    members, affected, lost = [], [], 0
    for shard in range(layout.shards):
        kept = reduced_slices(layout, shard, deleted)
        if sum(len(part) for part in kept) == 0:
            continue  # all of this shard's data was deleted: drop its model
        dirty = {r for r, (part, full) in enumerate(zip(kept, layout.slices[shard]))
                 if len(part) != len(full)}
        prefixes = [clean_prefix(order, dirty) for order in orders]
        best = int(np.argmax(prefixes))  # the first of the longest
        prefix = prefixes[best]
        if dirty:
            affected.append((shard, best, prefix))
            lost += params.slices - prefix
        if prefix == params.slices or (not params.retrain and prefix > 0):
            model = ctx.task.fresh_model(sequence_seed(ctx.seed, shard, best))
            model.load_state_dict(state_of(checkpoints, shard, best, prefix - 1))
            members.append(model.eval())
        elif params.retrain:
            start = state_of(checkpoints, shard, best, prefix - 1) if prefix > 0 else None
            members.append(train_sequence(ctx.task, layout, shard, best, orders[best],
                                          ctx.recipe, epochs, ctx.seed, slices=kept,
                                          budget=ctx.budget, start=prefix, start_state=start))
    if not members:
        raise UserError("s3t: every shard's sequences start with a deleted slice, so no clean "
                        "prefix is left to serve; set s3t.retrain=true or use more slices")
    ensemble = SisaEnsemble(members).eval()
    ensemble.s3t_info = {"affected": affected, "lost_slices": lost,
                         "shards_kept": len(members),
                         "prepare_seconds": float(meta.get("train_seconds", 0.0)),
                         "prepare_cached": bool(meta.get("cached", True))}
    return ensemble
