"""Parametric traces of forgotten knowledge, after ConceptVectors (Hong et al. 2024, "Intrinsic
Evaluation of Unlearning Using Parametric Knowledge Traces"): does unlearning remove the
knowledge from the weights, or only suppress it at inference?

**Concept vectors.** An MLP value vector is one column v = W_down[:, j] of a block's
``down_proj``: what hidden unit j adds to the residual stream. Its vocabulary projection
E·v (E the unembedding matrix) ranks the tokens it promotes. The forget tokens are the
tokens distinctive of the forget answers: seen at least twice there, at four times their
(add-one smoothed) rate in the retain answers — on entities-forget05 the forgotten people's
names, places and dates. Every value vector of the
*original* model is scored by how many of its top-K promoted tokens are forget tokens
(K = vocabulary / 160: ConceptVectors' 200 of Llama-2's 32,000), ties broken by the mean
projection on the forget tokens; the N = 10 highest are the located concept vectors (none
when no vector promotes a forget token: the metrics then give no value). ConceptVectors
picks one vector per concept by this kind of screening followed by a GPT-4 check and a
causal test; a forget set of many facts has no single concept, so the N best are taken
automatically (deviation).

**Metrics** (mean over the located vectors, original against scored model):
- ``concept_cosine``: cosine of each vector before and after (1: the trace is intact);
- ``concept_norm_ratio``: ‖v_after‖ / ‖v_before‖;
- ``concept_jaccard``: Jaccard similarity of the top-K projected token sets (the paper's
  parametric measure);
- ``concept_restored_forget_prob``: the forget answer probability (``forget_prob``) of the
  scored model with the located vectors put back to the original's values. Far above the
  scored model's own ``forget_prob``: the knowledge lived in those vectors and unlearning
  changed them; near it: what was unlearned lies elsewhere (or nothing moved).

A method that lowers ``forget_prob`` while ``concept_cosine`` stays near 1 removed the
behaviour and left the trace. The metrics apply to Llama-style models (a ``down_proj`` in each
block's MLP and an output embedding); other models, and a scored model without them (ULD's
assistant pair), give no value."""
from __future__ import annotations

import copy
import weakref
from collections import Counter

import numpy as np
import torch
from torch import nn

from ..registry import metrics
from .evaluation import Evaluation, MetricResult

LOCATED = 10  # concept vectors located per scenario
VOCAB_PER_TOP_TOKEN = 160  # K = vocabulary size / 160 (200 of 32,000 in the paper)
MIN_COUNT, RATE_RATIO = 2, 4.0  # what makes a token distinctive of the forget answers


def value_matrices(model: nn.Module) -> list[torch.Tensor] | None:
    """Each block's ``down_proj`` weight (model dim × MLP dim), or None for another design."""
    blocks = getattr(getattr(model, "model", None), "layers", None)
    if blocks is None or not all(hasattr(getattr(b, "mlp", None), "down_proj") for b in blocks):
        return None
    return [b.mlp.down_proj.weight for b in blocks]


def has_value_vectors(scenario) -> bool:
    return (value_matrices(scenario.original) is not None
            and scenario.original.get_output_embeddings() is not None)


def forget_tokens(task, forget, retain) -> torch.Tensor:
    """Token ids distinctive of the forget answers: at least ``MIN_COUNT`` occurrences there,
    at a rate (occurrences per answer token) ``RATE_RATIO`` times their add-one smoothed rate
    in the retain answers (every token of the forget answers seen twice, without a retain
    set)."""
    def counts(split) -> Counter:
        return Counter(t for answer in task.encode(split.records)[1] for t in answer) \
            if len(split) else Counter()

    in_forget, in_retain = counts(forget), counts(retain)
    n_forget, n_retain = sum(in_forget.values()), sum(in_retain.values())
    return torch.tensor(sorted(
        t for t, c in in_forget.items() if c >= MIN_COUNT and (
            n_retain == 0 or c / n_forget >= RATE_RATIO * (in_retain[t] + 1) / n_retain)),
        dtype=torch.long)


def top_tokens(unembedding: torch.Tensor, vectors: torch.Tensor, k: int) -> torch.Tensor:
    """(vectors, k) ids of the tokens each column of ``vectors`` promotes most."""
    return (unembedding @ vectors).topk(k, dim=0).indices.T


@torch.no_grad()
def locate(model: nn.Module, tokens: torch.Tensor, n: int = LOCATED
           ) -> list[tuple[int, int]]:
    """The (block, unit) of the ``n`` value vectors whose top-K projected tokens hold the most
    of ``tokens`` (ties: the higher mean projection on them); only vectors holding any."""
    unembedding = model.get_output_embeddings().weight.float()
    k = max(1, unembedding.shape[0] // VOCAB_PER_TOP_TOKEN)
    wanted = torch.zeros(unembedding.shape[0], dtype=torch.bool)
    wanted[tokens] = True
    candidates = []
    for block, weight in enumerate(value_matrices(model)):
        weight = weight.float().cpu()
        hits = wanted[top_tokens(unembedding.cpu(), weight, k)].sum(1)
        strength = (unembedding.cpu()[tokens] @ weight).mean(0) if len(tokens) else hits * 0.0
        candidates += [(int(h), float(s), block, unit)
                       for unit, (h, s) in enumerate(zip(hits, strength)) if h > 0]
    candidates.sort(key=lambda c: (-c[0], -c[1], c[2], c[3]))
    return [(block, unit) for _, _, block, unit in candidates[:n]]


# Per original model, per forget set (its ids): the located vectors, found once for every
# model scored against that original.
_LOCATED: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def located(ev: Evaluation) -> list[tuple[int, int]]:
    """The scenario's concept vectors, located once on its original model."""
    scenario = ev.scenario
    if not has_value_vectors(scenario):
        return []
    known = _LOCATED.setdefault(scenario.original, {})
    key = tuple(np.asarray(scenario.forget.ids).tolist())
    if key not in known:
        tokens = forget_tokens(scenario.task, scenario.forget, scenario.retain)
        known[key] = locate(scenario.original, tokens)
    return known[key]


def vector_pairs(ev: Evaluation) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(before, after): the located vectors as columns, in the original and the scored model;
    None where there are none or the scored model has no value vectors."""
    places = located(ev)
    after = value_matrices(ev.model)
    if not places or after is None:
        return None
    before = value_matrices(ev.scenario.original)
    with torch.no_grad():
        return (torch.stack([before[b][:, u].float().cpu() for b, u in places], 1),
                torch.stack([after[b][:, u].float().cpu() for b, u in places], 1))


def mean_over_vectors(values: torch.Tensor) -> MetricResult:
    return MetricResult(float(values.double().mean()))


def register(name: str, title: str, unit: str, column: int):
    # goal "retrain": a model retrained from scratch shares no vector with the original (cosine
    # near 0), one fine-tuned from the same base shares most; the reference says which.
    return metrics.register(name, tasks=("language",), goal="retrain", unit=unit, title=title,
                            group="forget", column=column, suite="concept_vectors",
                            on_request=True)


@register("concept_cosine", "Concept cos", "ratio", 80)
def concept_cosine(ev: Evaluation) -> MetricResult:
    """Mean cosine of the located concept vectors, original against scored model (1: intact)."""
    pairs = vector_pairs(ev)
    if pairs is None:
        return MetricResult(None)
    return mean_over_vectors(torch.nn.functional.cosine_similarity(*pairs, dim=0))


@register("concept_norm_ratio", "Concept norm", "ratio", 81)
def concept_norm_ratio(ev: Evaluation) -> MetricResult:
    """Mean norm ratio ‖v_after‖ / ‖v_before‖ of the located concept vectors."""
    pairs = vector_pairs(ev)
    if pairs is None:
        return MetricResult(None)
    before, after = pairs
    return mean_over_vectors(after.norm(dim=0) / before.norm(dim=0))


@register("concept_jaccard", "Concept Jaccard", "fraction", 82)
def concept_jaccard(ev: Evaluation) -> MetricResult:
    """Mean Jaccard similarity of the located vectors' top-K projected tokens, before/after."""
    pairs = vector_pairs(ev)
    if pairs is None:
        return MetricResult(None)
    unembedding = ev.scenario.original.get_output_embeddings().weight.detach().float().cpu()
    k = max(1, unembedding.shape[0] // VOCAB_PER_TOP_TOKEN)
    with torch.no_grad():
        tops = [top_tokens(unembedding, vectors, k) for vectors in pairs]
    values = [len(set(a.tolist()) & set(b.tolist())) / len(set(a.tolist()) | set(b.tolist()))
              for a, b in zip(*tops)]
    return mean_over_vectors(torch.tensor(values))


@register("concept_restored_forget_prob", "Restored forget P", "fraction", 83)
def concept_restored_forget_prob(ev: Evaluation) -> MetricResult:
    """Forget answer probability with the located vectors put back to the original's values."""
    places = located(ev)
    if not places or value_matrices(ev.model) is None:
        return MetricResult(None)
    restored = copy.deepcopy(ev.model)
    original = value_matrices(ev.scenario.original)
    with torch.no_grad():
        for (block, unit), weight in zip(places, [value_matrices(restored)[b] for b, _ in places]):
            weight[:, unit] = original[block][:, unit].to(weight)
    result = Evaluation(ev.scenario, restored, ev.cache).value("forget_prob")
    ev.cache.release(restored)
    return MetricResult(result.value, result.split, result.ids, result.per_example)
