"""ZRF, the Zero Retrain Forgetting score (Chundawat et al., "Can Bad Teaching Induce
Forgetting?", AAAI 2023; also reported by SSD): how close the model's outputs on the forget
set are to those of a randomly initialised model of the same architecture.

    ZRF = 1 − (1/n) Σ_i JS(p_i, q_i),   JS(p, q) = ½ KL(p ‖ m) + ½ KL(q ‖ m),  m = (p + q) / 2

with p_i the model's softmax and q_i the random model's on forget example i, natural log (the
reference code uses ``torch.log``), so JS ∈ [0, ln 2] and ZRF ∈ [1 − ln 2 ≈ 0.307, 1]:
1 = the model behaves exactly like a random network on the forget set.

The random model is ``task.fresh_model(scenario seed + RANDOM_MODEL_SEED_OFFSET)``: the
architecture's own initialisation (as the reference's untrained ResNet "incompetent teacher"),
fixed per scenario seed, and not the original model's initialisation (which is
``fresh_model(scenario seed)``). Its logits go through the shared inference cache, so it
costs one pass over the forget set per cache however many models are evaluated.

Deviation from the reference code (vikram2000b/bad-teaching-unlearning, ``JSDiv``): it calls
``F.kl_div(log p, m)``, which is KL(m ‖ p), not KL(p ‖ m), and with the default
``reduction="mean"``, which also divides by the number of classes. That quantity is neither
a JS divergence nor bounded, and shrinks with the class count; this module computes the
paper's JS divergence per example. ``reference_code_zrf`` reproduces the code's number for
comparison with published tables.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import metrics
from .evaluation import Evaluation, MetricResult

# The random model's seed is the scenario seed plus this offset: deterministic per scenario
# seed and distinct from the original model's initialisation seed (the scenario seed itself).
RANDOM_MODEL_SEED_OFFSET = 104_729

LN2 = math.log(2.0)


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen–Shannon divergence (natural log) between matching rows of two probability
    tensors [n, classes]: a tensor [n] with values in [0, ln 2]. 0 · log 0 = 0."""
    p, q = p.double(), q.double()
    m = 0.5 * (p + q)
    kl_pm = (torch.xlogy(p, p) - torch.xlogy(p, m)).sum(dim=1)
    kl_qm = (torch.xlogy(q, q) - torch.xlogy(q, m)).sum(dim=1)
    return (0.5 * (kl_pm + kl_qm)).clamp(0.0, LN2)


def reference_code_zrf(p: torch.Tensor, q: torch.Tensor) -> float:
    """The number the reference code's ``1 − JSDiv(p, q)`` gives (not the registered metric):
    1 − [½ mean(m·(log m − log p)) + ½ mean(m·(log m − log q))], means over every element."""
    p, q = p.double(), q.double()
    m = 0.5 * (p + q)
    # F.kl_div(input, target, reduction="mean") = mean of xlogy(target, target) − target·input
    # (written out: torch warns that "mean" will change meaning).
    kl_mp = (torch.xlogy(m, m) - m * torch.log(p)).mean()
    kl_mq = (torch.xlogy(m, m) - m * torch.log(q)).mean()
    return float(1.0 - (0.5 * kl_mp + 0.5 * kl_mq))


def random_model(ev: Evaluation) -> nn.Module:
    """The scenario's random reference network (the global torch RNG is left untouched)."""
    device = torch.device(ev.scenario.task.device)
    # fresh_model calls torch.manual_seed, which reseeds the accelerator's generator too:
    # fork it along with the CPU's (a CPU task forks the CPU's alone).
    forked = [] if device.type == "cpu" else [device]
    with torch.random.fork_rng(devices=forked, device_type=device.type):
        return ev.scenario.task.fresh_model(ev.scenario.seed + RANDOM_MODEL_SEED_OFFSET)


@metrics.register("zrf", tasks=("classification",), goal="higher", unit="fraction", title="ZRF",
                  group="forget")
def zrf(ev: Evaluation) -> MetricResult:
    """ZRF: 1 − mean Jensen–Shannon divergence to a random network's outputs on the forget set."""
    forget = ev.scenario.splits["forget"]
    model_probabilities = torch.softmax(ev.logits("forget").double(), dim=1)
    random_logits = ev.cache.logits(random_model(ev), forget)
    random_probabilities = torch.softmax(random_logits.double(), dim=1)
    per_example = (1.0 - js_divergence(model_probabilities, random_probabilities)).numpy()
    value = float(per_example.mean()) if len(per_example) else float("nan")
    return MetricResult(value, "forget", ev.ids("forget"), per_example)
