"""Routing shift of a mixture-of-experts model: how many of the experts its routers choose
for the retain (or forget) records unlearning changed, against the original model's choice.

Per token t and MoE block ℓ, the share of the k experts the original routes t to (the top k
of the gate distribution, the softmax of the router logits; k the model's experts per token)
that the scored model no longer chooses: 1 − |top_k(g) ∩ top_k(g')| / k ∈ [0, 1] (0: the same
experts; 1: disjoint ones). Per record, the mean over its tokens (prompt and answer, no
padding) and the blocks; the metric is the mean over records. It counts changed choices, not
changed weights: a gate that grows sharper on the experts it already chose (UOE's anchor
loss) shifts nothing. UOE's motivation: GA-style unlearning of an MoE reroutes the forget
tokens away from the experts that hold the knowledge ("expert-selection shift"), and the
retain tokens' routing moves with them.

The metrics apply to models with routers only (``models/moe.py``); a dense model has none."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..models.moe import gate_probabilities, has_routers
from ..registry import metrics
from .answers import scored_split
from .evaluation import Evaluation, MetricResult


def routed(scenario) -> bool:
    return has_routers(scenario.original)


@torch.no_grad()
def gates_per_token(task, model: nn.Module, split, batch_size: int = 64
                    ) -> list[torch.Tensor]:
    """Per record of ``split``, (blocks, its tokens, experts): its gate probabilities."""
    model.eval()
    out = []
    for batch in task.batches(split, batch_size):
        gates = gate_probabilities(model, lambda: task.forward(model, batch))
        stacked = torch.stack([g.view(*batch.input_ids.shape, -1) for g in gates], 1)
        for row, keep in zip(stacked, batch.attention_mask.bool()):
            out.append(row[:, keep].cpu())
    return out


def changed_choices(original: list[torch.Tensor], changed: list[torch.Tensor], k: int
                    ) -> np.ndarray:
    """Per record, the mean over blocks and tokens of the share of the original's top-``k``
    experts that ``changed`` does not choose."""
    values = []
    for before, after in zip(original, changed):
        kept = (before.topk(k).indices[..., :, None] == after.topk(k).indices[..., None, :])
        values.append(float(1.0 - kept.any(-1).float().mean()))
    return np.array(values)


def routing_shift(ev: Evaluation, split: str) -> MetricResult:
    """The share of top-k expert choices changed from the original model's, on ``split``."""
    if not routed(ev.scenario):
        return MetricResult(None)
    text_set = ev.scenario.splits[split]
    task, original = ev.scenario.task, ev.scenario.original
    values = changed_choices(gates_per_token(task, original, text_set),
                             gates_per_token(task, ev.model, text_set),
                             original.config.num_experts_per_tok)
    return MetricResult(float(values.mean()) if len(values) else None, split, ev.ids(split),
                        values)


@metrics.register("routing_shift", tasks=("language",), splits=("retain_eval",), goal="lower",
                  unit="fraction", title="Route shift", group="utility", applies=routed)
def retain_routing_shift(ev: Evaluation) -> MetricResult:
    """Routing shift on the retain records: the share of top-k expert choices changed."""
    return routing_shift(ev, "retain_eval")


@metrics.register("routing_shift_forget", tasks=("language",), splits=("forget",),
                  goal="lower", unit="fraction", title="Forget route shift", group="forget",
                  applies=routed)
def forget_routing_shift(ev: Evaluation) -> MetricResult:
    """Routing shift on the forget records: the share of top-k expert choices changed."""
    return routing_shift(ev, scored_split(ev, "forget"))
