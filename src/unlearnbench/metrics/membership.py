"""Membership inference on text, memorisation and fluency for language models, read from the
shared per-token pass and the shared greedy answers (formulas in ``mia_text`` and
``text_scores``).

Every attack scores forget records (members of the target's training data) against holdout
records (never trained on) and reports the AUC in the member orientation: 1.0 when every
forget record looks more like a member than every holdout record (the target), about 0.5 for
a model that never saw either (the retain model), with a 95% bootstrap interval (1,000
resamples, seed 0). PrivLeak follows MUSE's orientation instead, holdout labelled positive
(see ``text_scores.privleak``): a leaking model scores negative."""
from __future__ import annotations

import numpy as np

from ..data.text import prompt_and_answer
from ..registry import metrics
from .evaluation import Evaluation, MetricResult
from .mia_text import (bootstrap_auc, exact_memorisation, extraction_strength, gradnorm_scores,
                       loss_score, min_k_plus_plus_score, min_k_score, reference_score,
                       zlib_score)
from .text_scores import ngram_entropy, privleak

MEMBERS, NONMEMBERS = "forget", "holdout"
MIN_K = 0.4  # MUSE's k for Min-K% and Min-K%++


def scored_texts(ev: Evaluation, split: str) -> list[str]:
    return [prompt_and_answer(r)[1] for r in ev.scenario.splits[split].records]


def attack_scores(ev: Evaluation, split: str, attack: str) -> np.ndarray:
    """Member scores (higher = more likely trained on) of every record of ``split``."""
    if attack == "gradnorm":  # a backward pass per record, by definition
        return gradnorm_scores(ev.scenario.task, ev.model, ev.scenario.splits[split])
    stats = ev.output(split, "token_statistics")
    # LOSS, zlib and the reference attack read the mean NLL with the closing <eos>, as
    # open-unlearning's do; Min-K% and Min-K%++ read the text's own tokens only, as
    # open-unlearning's and MUSE's do
    text = stats.text_only()
    if attack == "loss":
        return loss_score(stats.log_probs, stats.offsets)
    if attack == "zlib":
        return zlib_score(stats.log_probs, stats.offsets, scored_texts(ev, split))
    if attack == "mink":
        return min_k_score(text.log_probs, text.offsets, MIN_K)
    if attack == "minkpp":
        return min_k_plus_plus_score(text.log_probs, text.mu, text.sigma, text.offsets, MIN_K)
    if attack == "reference":  # calibrated by the retain model's NLL of the same record
        reference = ev.reference.output(split, "token_statistics")
        return reference_score(stats.mean_nll(), reference.mean_nll())
    raise ValueError(f"unknown attack {attack!r}")


def attack_auc(ev: Evaluation, attack: str) -> MetricResult:
    members, nonmembers = (attack_scores(ev, s, attack) for s in (MEMBERS, NONMEMBERS))
    value, low, high = bootstrap_auc(members, nonmembers, seed=0)
    return MetricResult(value, MEMBERS, ev.ids(MEMBERS), members, interval=(low, high))


ATTACKS = {"loss": "LOSS (mean token NLL)", "zlib": "zlib (NLL over compressed length)",
           "mink": "Min-K% Prob (k = 0.4)", "minkpp": "Min-K%++ (k = 0.4)",
           "reference": "reference model (retain model) calibrated NLL",
           "gradnorm": "GradNorm (gradient norm of the mean NLL)"}


def _register(attack: str, description: str) -> None:
    def metric(ev: Evaluation) -> MetricResult:
        return attack_auc(ev, attack)

    metric.__doc__ = f"AUC of the {description} attack, forget vs holdout (1 = still a member)."
    metrics.register(f"mia_{attack}", tasks=("language",), splits=(MEMBERS, NONMEMBERS),
                     goal="retrain", suite="mia", unit="fraction",
                     title=f"{description.split(' (')[0]} AUC", group="privacy")(metric)


for _attack, _description in ATTACKS.items():
    _register(_attack, _description)


@metrics.register("privleak", tasks=("language",), splits=(MEMBERS, NONMEMBERS), goal=0.0,
                  suite="muse", unit="%", title="PrivLeak", group="privacy", column=40,
                  headline=True)
def privleak_metric(ev: Evaluation) -> MetricResult:
    """MUSE PrivLeak: relative Min-K% AUC difference to the retain model, x100 (0 is ideal)."""
    # MUSE labels holdout 1 and forget 0 and scores with the Min-K% log-likelihood, so its
    # AUC is P(holdout looks more like a member than forget) = 1 − our member AUC (ties
    # count ½ in both): a leaking model scores strongly negative, the target near −100.
    ours, theirs = ev.value("mia_mink").value, ev.reference.value("mia_mink").value
    return MetricResult(privleak(1 - ours, 1 - theirs))


def _memorisation(name: str, title: str, per_record, doc: str) -> None:
    def metric(ev: Evaluation) -> MetricResult:
        text = ev.output("forget", "token_statistics").text_only()
        values = per_record(text.hit, text.offsets)
        return MetricResult(float(np.nanmean(values)), "forget", ev.ids("forget"), values)

    metric.__doc__ = doc
    metrics.register(name, tasks=("language",), splits=("forget",), goal="retrain",
                     suite="memorisation", unit="fraction", title=title, group="forget")(metric)


_memorisation("forget_em", "Forget EM", exact_memorisation, "Exact memorisation: share of "
              "forget answer tokens (without <eos>) whose teacher-forced argmax is right.")
_memorisation("forget_es", "Forget ES", extraction_strength, "Extraction strength on forget: "
              "1 - k*/length, k* the prefix after which all is argmax.")


def _fluency(prefix: str, split: str) -> None:
    def metric(ev: Evaluation) -> MetricResult:
        records = ev.scenario.splits[split].records
        if not records or any("question" not in r for r in records):
            return MetricResult(None)
        return MetricResult(ngram_entropy(ev.output(split, "generate")))

    metric.__doc__ = (f"Fluency of the greedy answers on {split}: weighted 2-/3-gram entropy "
                      "(RWKU); a collapse into repetition scores near 0.")
    metrics.register(f"{prefix}_fluency", tasks=("language",), splits=(split,), goal="higher",
                     suite="fluency", unit="bits", title=f"{prefix.capitalize()} fluency",
                     group="utility")(metric)


_fluency("forget", "forget")
_fluency("retain", "retain_eval")
