"""Language-model answers per split: exact greedy answers, the answer NLL and probability.

Exact answer accuracy: the greedy answer (up to ``<eos>``) equals the reference answer after
collapsing whitespace; percent of the split's records. It applies to question-answer splits
only (a document split has no question to answer: its value is None). Answer NLL: the mean
over records of the per-token mean NLL of the answer given the prompt (for a document, of the
whole text). The retain set is scored on the scenario's fixed ``retain_eval`` sample, the
forget set on ``forget_eval`` where the data set fixes one (TOFU's files)."""
from __future__ import annotations

import numpy as np

from ..data.text import prompt_and_answer
from ..registry import metrics
from .evaluation import Evaluation, MetricResult


def normalise(text: str) -> str:
    return " ".join(text.split())


def scored_split(ev: Evaluation, split: str) -> str:
    """The split scored for ``split``: a data set's fixed sample of its forget split
    (``forget_eval``: TOFU scores the first 300 of forget10's 400) where it has one."""
    return "forget_eval" if split == "forget" and "forget_eval" in ev.scenario.splits else split


def generation_scores(ev: Evaluation, split: str, score, scale: float = 1.0) -> MetricResult:
    """``score(greedy answer, reference answer)`` per question of ``split`` (from the shared
    generations), averaged and multiplied by ``scale``; None for a split without questions."""
    records = ev.scenario.splits[split].records
    if not records or any("question" not in r for r in records):
        return MetricResult(None)
    answers = ev.output(split, "generate")
    values = np.array([score(a, prompt_and_answer(r)[1].strip()) for a, r in zip(answers, records)],
                      dtype=np.float64)
    return MetricResult(scale * float(values.mean()), split, ev.ids(split), values)


def exact_answers(ev: Evaluation, split: str) -> MetricResult:
    return generation_scores(ev, split, lambda a, b: normalise(a) == normalise(b), 100.0)


def answer_nll(ev: Evaluation, split: str) -> MetricResult:
    values = ev.output(split, "token_statistics").mean_nll()
    return MetricResult(float(values.mean()) if len(values) else None, split, ev.ids(split), values)


def answer_prob(ev: Evaluation, split: str) -> MetricResult:
    """TOFU's answer probability P(a|q)^(1/|a|) = exp(−mean token NLL), per record, averaged
    (from the same forward pass as the NLL)."""
    values = np.exp(-ev.output(split, "token_statistics").mean_nll())
    return MetricResult(float(values.mean()) if len(values) else None, split, ev.ids(split), values)


# (metric name prefix, split, goal, title): forgetting should match the retain model;
# retained and general knowledge should stay; holdout shows what an unseen question gets. The
# knowmem splits are a document corpus's questions on facts of its forget and retain documents.
SPLITS = [("forget", "forget", "retrain", "Forget"), ("retain", "retain_eval", "higher", "Retain"),
          ("holdout", "holdout", "retrain", "Holdout"),
          ("world_facts", "world_facts", "higher", "World"),
          ("real_entities", "real_entities", "higher", "Real"),
          ("knowmem_forget", "knowmem_forget", "retrain", "KnowMem forget"),
          ("knowmem_retain", "knowmem_retain", "higher", "KnowMem retain")]
# The leaderboard's columns among these metrics (registry: ``column``).
COLUMNS = {"forget_prob": 32, "retain_prob": 33, "forget_exact": 50, "retain_exact": 51,
           "holdout_exact": 52, "world_facts_exact": 53, "real_entities_exact": 54,
           "knowmem_forget_exact": 55, "knowmem_retain_exact": 56, "forget_nll": 57,
           "retain_nll": 58}


def _register(prefix: str, split: str, goal: str, title: str) -> None:
    nll_goal = {"higher": "lower"}.get(goal, goal)
    group = "forget" if prefix in ("forget", "knowmem_forget") else "utility"

    def exact(ev: Evaluation) -> MetricResult:
        return exact_answers(ev, scored_split(ev, split))

    def nll(ev: Evaluation) -> MetricResult:
        return answer_nll(ev, scored_split(ev, split))

    def prob(ev: Evaluation) -> MetricResult:
        return answer_prob(ev, scored_split(ev, split))

    exact.__doc__ = f"Percent of the {split} questions answered exactly (greedy decoding)."
    nll.__doc__ = f"Mean per-token answer NLL on the {split} split."
    prob.__doc__ = f"Mean length-normalised answer probability on the {split} split."
    for name, metric, metric_goal, unit, suffix, suite in (
            (f"{prefix}_exact", exact, goal, "%", "exact", None),
            (f"{prefix}_nll", nll, nll_goal, "nats", "NLL", None),
            (f"{prefix}_prob", prob, goal, "fraction", "P", "tofu")):
        metrics.register(name, tasks=("language",), splits=(split,), goal=metric_goal,
                         unit=unit, title=f"{title} {suffix}", group=group,
                         column=COLUMNS.get(name), suite=suite)(metric)


for _split in SPLITS:
    _register(*_split)
