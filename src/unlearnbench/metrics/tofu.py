"""TOFU's evaluation (Maini et al. 2024), read from the shared per-token pass and the shared
greedy answers: truth ratio, ROUGE-L recall, normalised answer probability, forget quality
and model utility. Definitions in ``text_scores``; the answer probability is ``<split>_prob``
(``answers.py``).

Splits: forget (its ``forget_eval`` sample where the data set fixes one) and retain (its
fixed ``retain_eval`` sample) compare the paraphrased answer with the 5 perturbed ones; world
facts and real entities compare the answer itself with 3 perturbed ones and report the
normalised probability, as TOFU does. On TOFU's files these are TOFU's own evaluation
records (``data/tofu_format.py``)."""
from __future__ import annotations

import numpy as np

from ..registry import metrics
from .answers import generation_scores, scored_split
from .evaluation import Evaluation, MetricResult
from .text_scores import (forget_quality, model_utility, normalised_probability, rouge_l_recall,
                          truth_ratio, truth_ratio_per_example)

# (metric prefix, split, base answer for the truth ratio, truth-ratio form)
SPLITS = [("forget", "forget", "paraphrased", "forget"),
          ("retain", "retain_eval", "paraphrased", "retain"),
          ("world_facts", "world_facts", None, "retain"),
          ("real_entities", "real_entities", None, "retain")]


def mean_nll(ev: Evaluation, split: str, answers: str | None = None) -> np.ndarray | None:
    stats = ev.output(split, "token_statistics", answers)
    return None if stats is None else stats.mean_nll()


def perturbed_nll(ev: Evaluation, split: str) -> np.ndarray | None:
    """(N, K): the mean token NLL of each record's K perturbed answers."""
    values = mean_nll(ev, split, "perturbed")
    return None if values is None else values.reshape(len(ev.scenario.splits[split]), -1)


def truth_ratios(ev: Evaluation, split: str, base: str | None) -> np.ndarray | None:
    base_nll, perturbed = mean_nll(ev, split, base), perturbed_nll(ev, split)
    return None if base_nll is None or perturbed is None else truth_ratio(base_nll, perturbed)


def _register(prefix: str, split: str, base: str | None, form: str) -> None:
    goal = "retrain" if prefix == "forget" else "higher"
    group = "forget" if prefix == "forget" else "utility"
    label = {"world_facts": "World", "real_entities": "Real"}.get(prefix, prefix.capitalize())

    def ratio(ev: Evaluation) -> MetricResult:
        scored = scored_split(ev, split)
        ratios = truth_ratios(ev, scored, base)
        if ratios is None:
            return MetricResult(None)
        values = truth_ratio_per_example(ratios, form)
        return MetricResult(float(values.mean()), scored, ev.ids(scored), values)

    def rouge(ev: Evaluation) -> MetricResult:
        return generation_scores(ev, scored_split(ev, split), rouge_l_recall)

    form_text = "mean min(R, 1/R)" if form == "forget" else "mean max(0, 1 - R)"
    ratio.__doc__ = f"TOFU truth ratio on {split} ({form_text})."
    rouge.__doc__ = f"TOFU ROUGE-L recall of greedy answers on {split}."
    metrics.register(f"{prefix}_truth_ratio", tasks=("language",), splits=(split,), goal=goal,
                     suite="tofu", unit="fraction", title=f"{label} truth ratio",
                     group=group)(ratio)
    metrics.register(f"{prefix}_rouge", tasks=("language",), splits=(split,), goal=goal,
                     suite="tofu", unit="fraction", title=f"{label} ROUGE", group=group)(rouge)
    if base is None:
        def norm_prob(ev: Evaluation) -> MetricResult:
            answer, perturbed = mean_nll(ev, split), perturbed_nll(ev, split)
            if perturbed is None:
                return MetricResult(None)
            values = normalised_probability(answer, perturbed)
            return MetricResult(float(values.mean()), split, ev.ids(split), values)

        norm_prob.__doc__ = (f"TOFU normalised answer probability P(a)/(P(a)+sum P(perturbed)) "
                             f"on {split}.")
        metrics.register(f"{prefix}_norm_prob", tasks=("language",), splits=(split,),
                         goal=goal, suite="tofu", unit="fraction",
                         title=f"{label} normalised P", group=group)(norm_prob)


for _split in SPLITS:
    _register(*_split)


@metrics.register("forget_quality", tasks=("language",), splits=("forget",), goal="higher",
                  suite="tofu", unit="fraction", title="Forget quality", group="forget",
                  column=30, headline=True)
def forget_quality_metric(ev: Evaluation) -> MetricResult:
    """TOFU forget quality: KS p-value of forget truth ratios against the retain model's."""
    scored = scored_split(ev, "forget")
    ours = truth_ratios(ev, scored, "paraphrased")
    if ours is None:
        return MetricResult(None)
    theirs = truth_ratios(ev.reference, scored, "paraphrased")
    return MetricResult(forget_quality(ours, theirs))


# TOFU's model utility: {probability, ROUGE, truth ratio} on retain, real entities, world facts
UTILITY = ["retain_prob", "retain_rouge", "retain_truth_ratio",
           "real_entities_norm_prob", "real_entities_rouge", "real_entities_truth_ratio",
           "world_facts_norm_prob", "world_facts_rouge", "world_facts_truth_ratio"]


@metrics.register("model_utility", tasks=("language",),
                  splits=("retain_eval", "world_facts", "real_entities"), goal="higher",
                  suite="tofu", unit="fraction", title="Model utility", group="utility",
                  column=31, headline=True)
def model_utility_metric(ev: Evaluation) -> MetricResult:
    """TOFU model utility: harmonic mean of nine retain and general-knowledge scores.

    Probability, ROUGE and truth ratio on retain, real entities and world facts."""
    values = [ev.value(name).value for name in UTILITY]
    return MetricResult(None if None in values else model_utility(values))
