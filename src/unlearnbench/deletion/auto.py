"""``--method auto``: choose the method and its hyperparameters for one deletion request with a
fixed trial budget, without retraining and without tuning on the real forget records.

- **Validation request**: a pseudo forget set as large as the real one, drawn (seeded) from
  the retain records; the rest of the retain records are its retain set, the holdout stays.
  Like the real forget records, the pseudo ones were trained on, so unlearning them is the
  same kind of task, and the real forget set is never looked at.
- **Trials**: the budget goes round ``CANDIDATES`` in order (a budget below their number tries
  the first ones only). A method's first trial runs at its default hyperparameters; its later
  ones come from its own Optuna TPE study seeded with the request's seed, over the search space
  of ``unlearnbench tune`` (``tune.search_space``), told the earlier trials' scores. Every trial
  unlearns with the request's seed, so a seed gives the same trials and the same choice.
- **Objective** (lower is better), with the scores of ``audit.score_model``: distinguishability
  D = |membership AUC(pseudo forget vs holdout) − 0.5| + |forget score − holdout score| / 100
  (accuracy, or answer probability, in points): 0 when the pseudo forget records look like
  records never trained on to the LOSS attack and score like them. A trial whose retain or
  holdout score fell more than the utility tolerance below the original's is infeasible and
  scores 2 + (its largest fall − tolerance) / 100, so every feasible trial ranks first.
- **Limits**: this measures indistinguishability from holdout records under one attack, not
  closeness to a model retrained without the records; the holdout is the one the audit
  uses; and a method good on a random pseudo set may not be on an unusual real one (a whole
  class)."""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import optuna

from ..errors import UserError
from ..metrics.inference import InferenceCache
from ..registry import methods
from ..specs import resolve_params
from ..studies.tune import search_space
from ..unlearning import check_supports, unlearn
from .audit import score_model
from .verdicts import UTILITY

# Cheap methods that need only forget and retain data and run on any user model, in the order
# the budget reaches them.
CANDIDATES = ("finetune", "neggrad_plus", "l1_sparse", "salun", "scrub", "rl")
DEFAULT_TRIALS = 8
INFEASIBLE = 2.0
OBJECTIVE = ("|membership AUC(pseudo forget vs holdout) - 0.5| + |pseudo forget score - holdout "
             "score| / 100, on a pseudo forget set drawn from the retain records; trials losing "
             "more retain or holdout utility than the tolerance rank last")


def validation_scenario(scenario, count: int, seed: int):
    """The scenario with a pseudo forget set of ``count`` retain records (seeded) in place of
    the real forget set."""
    retain = scenario.splits["retain"]
    if len(retain) <= count:
        raise UserError(f"--method auto draws a pseudo request of {count} records from the "
                        f"{len(retain)} retained ones and needs some left; name a method instead")
    chosen = np.sort(np.random.default_rng(seed).choice(len(retain), count, replace=False))
    splits = dict(scenario.splits, forget=retain.subset(chosen, "forget"),
                  retain=retain.subset(np.setdiff1d(np.arange(len(retain)), chosen), "retain"))
    return dataclasses.replace(scenario, splits=splits)


def evaluate_trial(scores: dict, membership: dict, original: dict, task: str,
                   tolerance: float) -> dict:
    """The trial's objective (see the module docstring) and the numbers behind it."""
    score, factor, _ = UTILITY[task]
    forget, holdout = scores["forget"][score] * factor, scores["holdout"][score] * factor
    falls = {split: original[split][score] * factor - scores[split][score] * factor
             for split in ("retain", "holdout")}
    distinguishability = abs(membership["auc"] - 0.5) + abs(forget - holdout) / 100
    worst = max(falls.values())
    feasible = worst <= tolerance
    return {"value": distinguishability if feasible else INFEASIBLE + (worst - tolerance) / 100,
            "feasible": feasible, "mia_auc": membership["auc"], "forget_score": forget,
            "holdout_score": holdout, "retain_fall": falls["retain"],
            "holdout_fall": falls["holdout"]}


def choose(scenario, seed: int, trials: int, tolerance: float, on_trial=None) -> dict:
    """Run ``trials`` trials on a pseudo request of ``scenario`` (which must have a holdout
    split) and return the choice: ``method``, ``params`` (the searched ones; the rest are
    defaults), every trial and why. ``on_trial(trial)`` after each."""
    if "holdout" not in scenario.splits:
        raise UserError("--method auto compares records with never-seen ones: give --holdout "
                        "(or name a method)")
    candidates = [name for name in CANDIDATES if _supported(name, scenario)]
    validation = validation_scenario(scenario, len(scenario.splits["forget"]), seed)
    cache = InferenceCache(scenario.task)
    original, original_mia, _ = score_model(cache, scenario.original, validation.splits, seed)
    studies = {name: optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
               for name in candidates}
    history = []
    for number in range(trials):
        method = candidates[number % len(candidates)]
        space, study = search_space(scenario.spec, method), studies[method]
        if number < len(candidates):  # the method's first trial: its defaults
            study.enqueue_trial(_defaults(method, space))
        trial = study.ask(space)
        params = dict(trial.params)
        record = {"number": number, "method": method, "params": params, "state": "complete",
                  "value": None, "error": None}
        start = time.perf_counter()
        try:
            model, _ = unlearn(validation, method, params, seed=seed)
            scores, membership, _ = score_model(cache, model, validation.splits, seed)
            cache.release(model)
            record.update(evaluate_trial(scores, membership, original, scenario.task.name,
                                         tolerance))
            if not math.isfinite(record["value"]):
                raise ValueError(f"objective {record['value']}")
        except Exception as exc:  # a failed trial spends the budget and is reported
            record.update(state="failed", value=None, error=f"{type(exc).__name__}: {exc}")
        record["seconds"] = time.perf_counter() - start
        if record["value"] is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, record["value"])
        history.append(record)
        if on_trial is not None:
            on_trial(record)
    done = [r for r in history if r["state"] == "complete"]
    if not done:
        raise UserError(f"every one of the {trials} --method auto trials failed (first: "
                        f"{history[0]['error']}); name a method and its settings instead")
    best = min(done, key=lambda r: r["value"])  # the first of equals
    return {"objective": OBJECTIVE, "trials": trials, "candidates": candidates,
            "pseudo_forget": {"count": len(validation.splits["forget"]), "seed": seed,
                              "drawn_from": "the retain records"},
            "original": {"mia_auc": original_mia["auc"]},
            "utility_tolerance": tolerance, "history": history, "method": best["method"],
            "params": best["params"], "chosen_trial": best["number"], "why": _why(best, done)}


def _supported(method: str, scenario) -> bool:
    try:
        check_supports(method, scenario)
    except UserError:
        return False
    return True


def _defaults(method: str, space: dict) -> dict:
    defaults = resolve_params(methods.get(method).params, {}, method)
    return {name: getattr(defaults, name) for name in space}


def _why(best: dict, done: list[dict]) -> str:
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in best["params"].items()) or "its defaults"
    if not best["feasible"]:
        return (f"no trial kept retain and holdout utility within the tolerance; trial "
                f"{best['number']} ({best['method']}, {params}) lost the least "
                f"({max(best['retain_fall'], best['holdout_fall']):.1f} points)")
    feasible = sum(r["feasible"] for r in done)
    return (f"trial {best['number']} ({best['method']}, {params}) left the pseudo forget "
            f"records closest to holdout records (membership AUC {best['mia_auc']:.3f}, forget "
            f"{best['forget_score']:.1f} vs holdout {best['holdout_score']:.1f}) among the "
            f"{feasible} of {len(done)} completed trials within the utility tolerance")
