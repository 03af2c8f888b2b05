"""Fair tuning (``unlearnbench tune``): every method gets the same number of trials on a
validation forget request disjoint from the evaluation one, and the hyperparameters that do
best on the declared objective are stored for ``unlearnbench run --tuned``.

- **Validation request**: the benchmark variant ``NAME[validation=1]`` (``requests/validation.py``
  for classification; the entities data set's ``validation`` option for language: the people
  just before the forget people). It is built with the tuning seed, so it is disjoint from
  the evaluation forget set of that seed, and cached and named like any benchmark.
- **Trials**: Optuna's TPE sampler seeded with the tuning seed, one study per method (a method's
  trials do not depend on which other methods are tuned), with Optuna's default 10 random
  start-up trials. Every trial unlearns with the tuning seed, so trials differ only in their
  hyperparameters; a trial that fails (diverges, or a bad value inside the method) counts
  towards the budget and is recorded with its error. A method with nothing to search
  (``retrain``, ``original``) gets one trial at its defaults.
- **Search space** (``search_space``), around the benchmark's tuned defaults
  (``api.benchmark_params``): a positive float log-uniform over [d/10, 10·d], a positive int
  over [max(1, d//2), 2·d]; bools, strings, None, zero and negative defaults stay. Two name
  rules keep the generic rule from leaving a field's domain: ``momentum`` (and the numerical
  guard ``eps``) stay, and fractions (``*_fraction``, ``sparsity``) go log-uniform over
  [d/10, min(10·d, 1)]. A field may declare its own range in its metadata,
  ``field(metadata={"search": (low, high)})``, choices (a list), or None (not searched).
- **Objectives**: a registered metric by its ``goal`` (minimised if "lower", maximised if
  "higher", its distance to the number minimised if a number, such as PrivLeak's 0; a goal of
  "retrain" cannot be tuned for); the default for classification is ``avg_gap``.
  ``METRIC@UTILITY`` tunes METRIC subject to utility: a trial is feasible when its UTILITY is
  at least ``utility_fraction`` (default 0.9) times the retain model's (the validation
  request's retrained reference: the model a method should match, not the original it starts
  from). A feasible trial scores METRIC's preference in [0, 1] (the value as a share of its
  range if the goal is "higher", one minus it if "lower", 1 / (1 + distance / range) if the
  goal is a number; the range is 1, or 100 for a percentage), an infeasible one
  ``utility / (utility_fraction · retain model's utility) − 1`` (in [−1, 0)), so every
  feasible trial ranks above every infeasible one, and infeasible ones rank by how close they
  come to the utility bar. ``forget_quality_at_utility`` (the default for language) is
  ``forget_quality@model_utility``: TOFU's forget quality at TOFU's model utility;
  ``privleak@retain_prob`` is MUSE's PrivLeak at the retain texts' probability.
- **Store**: one row per (benchmark, method, objective) in the ``tuned`` table, with every
  trial in its ``history``. A method already tuned with the same trial budget, seed and
  options is skipped, so an interrupted ``tune`` resumes at method granularity.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import optuna

from ..cache import ModelCache
from ..errors import UserError
from ..metrics.evaluation import evaluate, metric_names_for
from ..registry import methods, metrics
from ..requests.validation import VALIDATION_KINDS
from ..scenarios import build_scenario, get_spec
from ..spec_names import load_data
from ..specs import resolve_params
from ..store import Store
from ..sweep.jobs import DEFAULT_METHODS, scenario_cache
from ..unlearning import benchmark_params, check_supports, unlearn

optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per study otherwise

CONSTRAINED = "forget_quality_at_utility"
DEFAULT_OBJECTIVES = {"classification": "avg_gap", "language": CONSTRAINED}
FIXED_NAMES = ("momentum", "eps")


def is_fraction(name: str) -> bool:
    return name.endswith("_fraction") or name == "sparsity"


def field_distribution(field: dataclasses.Field, default: Any):
    """The Optuna distribution a hyperparameter is searched over, or None (it stays)."""
    if "search" in field.metadata:
        search = field.metadata["search"]
        if search is None:
            return None
        if isinstance(search, list):
            return optuna.distributions.CategoricalDistribution(search)
        low, high = search
        if isinstance(default, int) and not isinstance(default, bool):
            return optuna.distributions.IntDistribution(low, high)
        return optuna.distributions.FloatDistribution(low, high, log=True)
    if field.name in FIXED_NAMES or isinstance(default, bool) or default is None:
        return None
    if isinstance(default, float) and default > 0:
        high = min(default * 10, 1.0) if is_fraction(field.name) else default * 10
        return optuna.distributions.FloatDistribution(default / 10, high, log=True)
    if isinstance(default, int) and default > 0:
        return optuna.distributions.IntDistribution(max(1, default // 2), 2 * default)
    return None


def search_space(spec, method: str) -> dict[str, optuna.distributions.BaseDistribution]:
    """Each searched hyperparameter of ``method`` on benchmark ``spec`` and its distribution,
    centred on the benchmark's tuned default (see the module docstring)."""
    entry = methods.get(method)
    if entry.params is None:
        return {}
    defaults = dataclasses.asdict(
        resolve_params(entry.params, benchmark_params(spec, method, None), method))
    space = {}
    for field in dataclasses.fields(entry.params):
        distribution = field_distribution(field, defaults[field.name])
        if distribution is not None:
            space[field.name] = distribution
    return space


@dataclass(frozen=True)
class Objective:
    """What a trial is scored by: ``name``, the metrics it reads (the metric, then the utility
    metric of a constrained objective), the metric's registered ``goal``, and for a
    constrained objective the ``utility_fraction`` and the metric's range (``scale``)."""

    name: str
    metrics: tuple[str, ...]
    goal: str | float  # "higher", "lower" or the best number
    utility_fraction: float | None = None
    scale: float = 1.0

    @property
    def direction(self) -> str:
        if self.utility_fraction is not None or self.goal == "higher":
            return "maximize"
        return "minimize"

    def score(self, values: dict[str, float | None], reference_utility: float | None) -> float:
        """The trial's value; ``reference_utility`` is the retain model's utility, which sets a
        constrained objective's bar (see the module docstring)."""
        missing = [name for name in self.metrics if values.get(name) is None]
        if missing:
            raise UserError(f"objective {self.name}: {', '.join(missing)} gave no value")
        value = float(values[self.metrics[0]])
        if self.utility_fraction is None:
            return value if isinstance(self.goal, str) else abs(value - self.goal)
        bar = self.utility_fraction * reference_utility
        utility = float(values[self.metrics[1]])
        if utility < bar:
            return utility / bar - 1.0
        if isinstance(self.goal, str):
            share = value / self.scale
            return share if self.goal == "higher" else 1.0 - share
        return 1.0 / (1.0 + abs(value - self.goal) / self.scale)


def objective_for(name: str | None, task: str, utility_fraction: float = 0.9) -> Objective:
    """``name`` (default: the task's) as an Objective; unknown or goal-less names raise."""
    name = name or DEFAULT_OBJECTIVES[task]
    if name == CONSTRAINED and task != "language":
        raise UserError(f"objective {CONSTRAINED} scores language models; use avg_gap or "
                        "another classification metric")
    parts = ("forget_quality", "model_utility") if name == CONSTRAINED else name.split("@", 1)
    entry = metrics.get(parts[0])  # an unknown name is a UserError
    goal = entry.attributes["goal"]
    if goal == "retrain" or task not in entry.attributes["tasks"]:
        raise UserError(f"metric {parts[0]!r} cannot be a {task} objective (it needs a goal of "
                        f"lower, higher or a number, and the {task} task); the default is "
                        f"{DEFAULT_OBJECTIVES[task]}")
    if len(parts) == 1:
        return Objective(name, (name,), goal)
    if not 0.0 < utility_fraction <= 1.0:
        raise UserError(f"--utility-fraction must lie in (0, 1], got {utility_fraction}")
    utility = metrics.get(parts[1])
    if utility.attributes["goal"] != "higher" or task not in utility.attributes["tasks"]:
        raise UserError(f"objective {name}: {parts[1]!r} is not a {task} utility (a metric "
                        "whose goal is higher); name one after @, such as retain_prob")
    unit = entry.attributes["unit"]
    if unit not in ("fraction", "%") and isinstance(goal, str):
        raise UserError(f"objective {name}: {parts[0]!r} has no bounded range ({unit}), so its "
                        "feasible trials cannot be ranked above the infeasible ones; tune it "
                        "without @")
    return Objective(name, tuple(parts), goal, utility_fraction, 100.0 if unit == "%" else 1.0)


def validation_name(benchmark: str) -> str:
    """``digits-random10`` -> ``digits-random10[validation=1]`` (a variant keeps its keys)."""
    if benchmark.endswith("]"):
        return f"{benchmark[:-1]},validation=1]"
    return f"{benchmark}[validation=1]"


def tune(benchmark: str, method_names: list[str], trials: int, store: Store, seed: int = 0,
         objective: str | None = None, utility_fraction: float = 0.9,
         max_steps: int | None = None, cache: ModelCache | None = None, device: str = "cpu",
         on_trial: Callable[[str, dict], None] | None = None) -> dict[str, dict]:
    """Tune each method on ``benchmark``'s validation request with ``trials`` trials and store
    the choice. Returns each method's tuning (as stored), ``skipped`` True for one already
    stored with the same budget, seed and options. ``on_trial(method, trial)`` after each."""
    spec = get_spec(benchmark)
    goal = objective_for(objective, spec.task, utility_fraction)
    if trials < 1:
        raise UserError(f"--trials must be at least 1, got {trials}")
    if not method_names:
        raise UserError("no method given: pass --methods a,b,c (see `unlearnbench list methods`)")
    if spec.forget.requests > 1:
        raise UserError(f"benchmark {benchmark!r} makes sequential requests; tune runs on a "
                        "single request (tune its single-request counterpart)")
    if spec.task == "classification" and spec.forget.kind not in VALIDATION_KINDS:
        raise UserError(f"forget kind {spec.forget.kind!r} has no validation request to tune on; "
                        f"tune a {', '.join(VALIDATION_KINDS)} benchmark instead")
    validation = get_spec(validation_name(benchmark))  # refuses data sets that cannot say it
    check_objective_data(goal, validation, benchmark)
    for name in dict.fromkeys(method_names):
        if spec.task not in methods.get(name).attributes.get("tasks", ()):
            raise UserError(f"method {name!r} does not support {spec.task} tasks")
    options = {"max_steps": max_steps, "utility_fraction": goal.utility_fraction}
    stored = {row["method"]: row for row in store.tunings(spec.name)
              if row["objective"] == goal.name}
    names = list(dict.fromkeys(method_names))
    out = {name: dict(stored[name], skipped=True) for name in names if name in stored
           and (stored[name]["trials"], stored[name]["seed"], stored[name]["options"])
           == (trials, seed, options)}
    pending = [name for name in names if name not in out]
    if not pending:
        return out
    scenario = build_scenario(validation, seed, cache, device)
    shared = scenario_cache(scenario, cache)
    for name in pending:
        check_supports(name, scenario)
    missing = [name for name in goal.metrics if name not in metric_names_for(scenario)]
    if missing:
        raise UserError(f"metric {missing[0]!r} does not apply to benchmark {benchmark!r}")
    reference_utility = None
    if goal.utility_fraction is not None:
        reference_utility = reference_model_utility(scenario, shared, goal.metrics[1])
    for name in pending:
        tuning = tune_method(scenario, shared, name, trials, seed, goal, reference_utility,
                             max_steps, on_trial)
        tuning.update(benchmark=spec.name, objective=goal.name, seed=seed, options=options)
        store.write_tuning(tuning)
        out[name] = dict(tuning, skipped=False)
    return {name: out[name] for name in names}


def check_objective_data(goal: Objective, spec, benchmark: str) -> None:
    """Refuse, before any model is trained, an objective whose metrics read splits the data
    set does not have (TOFU's model utility on a news corpus)."""
    needed = {split for name in goal.metrics
              for split in metrics.get(name).attributes.get("splits", ())} - {"retain_eval"}
    if not needed:
        return
    missing = sorted(needed - set(load_data(spec).splits))
    if missing:
        raise UserError(f"objective {goal.name} reads the {', '.join(missing)} split(s), which "
                        f"benchmark {benchmark!r} does not have: choose another objective "
                        "(--objective privleak@retain_prob for a news or book corpus)")


def reference_model_utility(scenario, shared, name: str) -> float:
    """The utility ``name`` of the validation request's retain model (the retrained reference)."""
    utility = evaluate(scenario, scenario.reference, names=[name], cache=shared)[name].value
    if utility is None or utility <= 0:
        raise UserError(f"the retain model's utility is {utility}: it cannot bound the trials' "
                        "utility; choose another objective")
    return utility


def tune_method(scenario, shared, method: str, trials: int, seed: int, goal: Objective,
                reference_utility: float | None, max_steps: int | None,
                on_trial: Callable[[str, dict], None] | None = None) -> dict:
    """Run ``trials`` trials (one if nothing is searched) of ``method`` on the validation
    scenario; returns the method's tuning: chosen params (every hyperparameter, resolved), its
    value, the budget and every trial (number, searched params, value, state, metric values,
    error, seconds)."""
    spec, entry = scenario.spec, methods.get(method)
    space = search_space(spec, method)
    study = optuna.create_study(direction=goal.direction,
                                sampler=optuna.samplers.TPESampler(seed=seed))
    history = []
    for number in range(trials if space else 1):
        trial = study.ask(space)
        record = {"number": number, "params": dict(trial.params), "value": None,
                  "state": "complete", "metrics": {}, "error": None}
        start = time.perf_counter()
        try:
            model, _ = unlearn(scenario, method, trial.params, seed=seed, max_steps=max_steps)
            results = evaluate(scenario, model, names=list(goal.metrics), cache=shared)
            shared.release(model)
            record["metrics"] = {name: results[name].value for name in goal.metrics}
            record["value"] = goal.score(record["metrics"], reference_utility)
            if not math.isfinite(record["value"]):
                raise UserError(f"objective {goal.name} is {record['value']}")
            study.tell(trial, record["value"])
        except Exception as exc:  # a failed trial still spends the budget; it is recorded
            record.update(state="failed", value=None, error=f"{type(exc).__name__}: {exc}")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        record["seconds"] = time.perf_counter() - start
        history.append(record)
        if on_trial is not None:
            on_trial(method, record)
    if not any(r["state"] == "complete" for r in history):
        return {"method": method, "params": None, "value": None, "trials": trials,
                "history": history}
    best = history[study.best_trial.number]
    params = resolve_params(entry.params, benchmark_params(spec, method, best["params"]), method)
    return {"method": method, "params": dataclasses.asdict(params) if params is not None else {},
            "value": best["value"], "trials": trials, "history": history}


def tuned_overrides(store: Store, benchmark: str, method_names: list[str],
                    objective: str | None = None) -> dict[str, dict]:
    """The stored choice for each method on ``benchmark`` (``run --tuned``), as
    hyperparameter overrides; a method without one is a UserError naming the command to run.
    No methods: the task's default methods."""
    spec = get_spec(benchmark)
    name = objective or DEFAULT_OBJECTIVES[spec.task]
    stored = {row["method"]: row for row in store.tunings(spec.name) if row["objective"] == name}
    method_names = list(method_names) or list(DEFAULT_METHODS[spec.task])
    missing = [m for m in method_names if m not in stored]
    if missing:
        raise UserError(f"no {name} tuning of {', '.join(missing)} on {benchmark!r} in "
                        f"{store.name!r}: run `unlearnbench tune --benchmark {benchmark} "
                        f"--methods {','.join(missing)} --db {store.name}` first")
    failed = [m for m in method_names if stored[m]["params"] is None]
    if failed:
        raise UserError(f"every tuning trial of {', '.join(failed)} on {benchmark!r} failed, so "
                        "there is nothing to run with --tuned; tune again with other settings")
    return {m: dict(stored[m]["params"]) for m in method_names}
