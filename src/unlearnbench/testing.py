"""Checks for your own components, in the spirit of scikit-learn's ``check_estimator``::

    from unlearnbench.testing import check_benchmark, check_method, check_metric

    check_method("ascent_repair")     # every method contract; returns quietly when all hold
    check_metric("my_metric")
    check_benchmark("blobs-random10")

Each takes the component's registered name and raises AssertionError naming the component and
the broken property. By default a check runs on a small built-in scenario (digits-random10 for
classification; for language a 20-person cut of entities-forget05 with a one-layer model, and a
small news corpus for the MUSE metrics, a 4-agent hazard-mini for WMDP's; diabetes-random10
for regression), trained once through the model cache and kept for the process; ``scenario=`` runs it on another. The project's own contract tests call these
functions, over every registered component."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from .cache import ModelCache
from .errors import Diverged, UserError
from .metrics.evaluation import Evaluation, MetricResult, evaluate
from .metrics.inference import InferenceCache
from .params import check_values
from .registry import datasets, methods, metrics, models
from .scenarios import build_scenario, get_spec
from .specs import BenchmarkSpec, Recipe, resolve_params
from .unlearning import DATA_KINDS, Scenario, method_needs, unlearn

SEED = 0
MAX_STEPS = 3  # the step cap of the budget check
# The no-op baseline: the one method that is not meant to move toward the reference.
NO_OP_METHODS = ("original",)
# The metric that says whether a method moved toward the retrained reference on the forget set.
FORGET_METRIC = {"classification": "forget_accuracy", "language": "forget_nll",
                 "generation": "gen_ua", "regression": "forget_mse"}
# Float rounding allowed where two computations of one value must agree: metrics are computed
# in float64 from float32 outputs, whose recomputation may differ in the last bit on a GPU.
REL_TOL = 1e-6
# What a metric's unit says about its value ("%" a share in percent, "fraction" in [0, 1]...).
UNIT_RANGES = {"%": (0.0, 100.0), "fraction": (0.0, 1.0), "ratio": (0.0, math.inf),
               "nats": (0.0, math.inf), "bits": (0.0, math.inf), "s": (0.0, math.inf),
               "score": (-math.inf, math.inf)}


# ----------------------------------------------------------------------------- small scenarios

def tiny_language_spec(name: str = "entities-test", **recipe) -> BenchmarkSpec:
    """entities-forget05 cut to 20 people and a one-layer tiny Llama (trains in seconds)."""
    return dataclasses.replace(
        get_spec("entities-forget05"), name=name,
        dataset_options={"forget": "forget05", "n_entities": 20},
        recipe=Recipe(**{"epochs": 20, "batch_size": 32, "lr": 1e-2, "weight_decay": 0.0,
                         "optimizer": "adamw", **recipe}),
        model_options={"vocab_size": 512, "layers": 1, "hidden": 64})


def tiny_news_spec() -> BenchmarkSpec:
    """news-mini cut to 24 articles and the same one-layer model: the MUSE metrics' splits."""
    spec = get_spec("news-mini")
    return dataclasses.replace(spec, name="news-test", dataset_options={"n_articles": 24},
                               recipe=dataclasses.replace(spec.recipe, epochs=2),
                               model_options={"vocab_size": 512, "layers": 1, "hidden": 64})


def tiny_hazard_spec() -> BenchmarkSpec:
    """hazard-mini cut to 4 agents and 4 islands and the same one-layer model: WMDP's splits."""
    spec = get_spec("hazard-mini")
    return dataclasses.replace(spec, name="hazard-test", dataset_options={"n_entities": 4},
                               recipe=dataclasses.replace(spec.recipe, epochs=2),
                               model_options={"vocab_size": 512, "layers": 1, "hidden": 64})


def tiny_skills_spec() -> BenchmarkSpec:
    """skills-mini cut to 100 trained questions a skill and the same one-layer model."""
    spec = get_spec("skills-mini")
    return dataclasses.replace(spec, name="skills-test",
                               dataset_options={"n_train": 100, "n_test": 20},
                               recipe=dataclasses.replace(spec.recipe, epochs=2),
                               model_options={"vocab_size": 512, "layers": 1, "hidden": 64})


def tiny_rwku_spec() -> BenchmarkSpec:
    """rwku-mini on the target of ``tiny_language_spec`` (20 people), one target: RWKU's
    probe splits."""
    small = tiny_language_spec()
    return dataclasses.replace(get_spec("rwku-mini"), name="rwku-test",
                               dataset_options={"targets": 1, "n_entities": 20},
                               recipe=small.recipe, model_options=small.model_options)


# Per task, the scenarios tried in turn: the first that has the splits a metric needs is used.
SMALL_SPECS = {
    "classification": (lambda: get_spec("digits-random10"), lambda: get_spec("digits-labelswap"),
                       lambda: get_spec("digits-backdoor")),
    "language": (tiny_language_spec, tiny_news_spec, tiny_hazard_spec, tiny_rwku_spec,
                 tiny_skills_spec),
    "regression": (lambda: get_spec("diabetes-random10"),),
}
_BUILT: dict[tuple[str, str], Scenario] = {}


def small_scenario(task: str, splits=(), cache: ModelCache | None = None) -> Scenario:
    """The first small built-in scenario of ``task`` that has ``splits``, built once a process
    (per model cache)."""
    cache = cache or ModelCache()
    for make_spec in SMALL_SPECS[task]:
        spec = make_spec()
        key = (spec.name, str(cache.root))
        if key not in _BUILT:
            _BUILT[key] = build_scenario(spec, SEED, cache)
        if set(splits) <= set(_BUILT[key].splits):
            return _BUILT[key]
    raise AssertionError(f"no small {task} scenario has the splits {', '.join(splits)}; "
                         "pass scenario= one that has them")


# ----------------------------------------------------------------------------- methods

@dataclasses.dataclass
class MethodRun:
    """A method run once with its defaults, and the names of the tensors of the scenario's
    original and reference that changed during the run."""

    model: nn.Module
    timings: dict
    changed_in_original: list[str]
    changed_in_reference: list[str]


def run_method(name: str, scenario: Scenario, seed: int = SEED) -> MethodRun:
    original, reference = snapshot(scenario.original), snapshot(scenario.reference)
    try:
        model, timings = unlearn(scenario, name, seed=seed)
    except Diverged as exc:
        raise AssertionError(f"method {name!r}: finite weights: {exc}") from exc
    return MethodRun(model, timings, changed(original, scenario.original),
                     changed(reference, scenario.reference))


def check_method(name: str, scenario: Scenario | None = None) -> None:
    """Every method contract: its declaration, then on the scenario (default: the small one of
    each task it supports) it leaves the original and the reference untouched, ends with finite
    weights, is deterministic under a seed, respects its step budget and moves toward the
    retrained reference on the forget set (``moves_by_default``)."""
    check_method_declaration(name)
    tasks = methods.get(name).attributes["tasks"]
    for scenario in [scenario] if scenario is not None else [small_scenario(t) for t in tasks
                                                             if t in SMALL_SPECS]:
        run = run_method(name, scenario)
        check_leaves_the_original(name, scenario, run)
        check_finite_weights(name, run)
        check_deterministic(name, scenario, run)
        check_step_budget(name, scenario)
        if moves_by_default(name, scenario):
            check_moves_toward_reference(name, scenario, run)


def check_method_declaration(name: str) -> None:
    """A one-line description, the tasks it supports, the data it needs in the scenario's
    vocabulary, and hyperparameters as a dataclass constructible from its defaults."""
    entry = methods.get(name)
    assert entry.description and "\n" not in entry.description, \
        f"method {name!r}: declaration: needs a one-line description"
    assert entry.attributes.get("tasks"), f"method {name!r}: declaration: declare tasks=(...)"
    assert entry.attributes.get("needs") is not None, \
        f"method {name!r}: declaration: declare needs=(...)"
    needs = method_needs(name)
    assert needs <= set(DATA_KINDS), \
        f"method {name!r}: declaration: unknown needs {sorted(needs - set(DATA_KINDS))}"
    if entry.params is not None:
        for field in dataclasses.fields(entry.params):
            assert (field.default is not dataclasses.MISSING
                    or field.default_factory is not dataclasses.MISSING), \
                f"method {name!r}: declaration: hyperparameter {field.name} has no default"
        entry.params()


def check_leaves_the_original(name: str, scenario: Scenario, run: MethodRun | None = None) -> None:
    run = run or run_method(name, scenario)
    what = f"method {name!r}: leaves the original untouched"
    assert run.model is not scenario.original and run.model is not scenario.reference, \
        f"{what}: it returned the scenario's own model"
    assert run.changed_in_original == [], f"{what}: changed {', '.join(run.changed_in_original)}"
    assert run.changed_in_reference == [], \
        f"{what}: changed the reference's {', '.join(run.changed_in_reference)}"
    # The returned model owns its weights: no tensor shares storage with the original, unless
    # it holds the original itself as a frozen part (ULD's target: read-only by design).
    if any(part is scenario.original for part in run.model.modules()):
        return
    pointers = {t.data_ptr() for t in scenario.original.state_dict().values()}
    shared = [k for k, t in run.model.state_dict().items() if t.data_ptr() in pointers]
    assert not shared, f"{what}: {', '.join(shared)} share storage with the original"


def check_finite_weights(name: str, run: MethodRun) -> None:
    bad = [k for k, t in run.model.state_dict().items()
           if t.is_floating_point() and not torch.isfinite(t).all()]
    assert not bad, f"method {name!r}: finite weights: {', '.join(bad)} hold NaN or inf"


def check_deterministic(name: str, scenario: Scenario, run: MethodRun | None = None) -> None:
    """Two runs with the same seed give the same weights, bit for bit (one code path on one
    device)."""
    first = (run or run_method(name, scenario)).model.state_dict()
    again = run_method(name, scenario).model.state_dict()
    what = f"method {name!r}: deterministic under a seed"
    assert first.keys() == again.keys(), f"{what}: the two runs have different tensors"
    differ = [k for k in first if first[k].dtype != again[k].dtype
              or not torch.equal(first[k], again[k])]
    assert not differ, f"{what}: {', '.join(differ)} differ between two runs with seed {SEED}"


def check_step_budget(name: str, scenario: Scenario, max_steps: int = MAX_STEPS) -> None:
    """With ``max_steps`` at most that many real optimizer steps happen (counted by a hook on
    every torch optimizer), and every one is charged to the budget."""
    steps = []
    handle = register_optimizer_step_post_hook(lambda optimizer, args, kwargs: steps.append(1))
    try:
        _, timings = unlearn(scenario, name, seed=SEED, max_steps=max_steps)
    finally:
        handle.remove()
    what = f"method {name!r}: respects the step budget"
    assert len(steps) <= max_steps, \
        f"{what}: {len(steps)} optimizer steps with max_steps={max_steps}"
    assert timings["steps"] <= max_steps, f"{what}: charged {timings['steps']} steps"
    assert len(steps) <= timings["steps"], \
        f"{what}: {len(steps)} real steps but only {timings['steps']} charged to the budget"


def moves_by_default(name: str, scenario: Scenario) -> bool:
    """Whether ``check_method`` asks the method to move toward the reference here: on
    classification every method but the no-op baseline; on language those the benchmark gives
    hyperparameters for (``method_params``), as the defaults are scaled for classifiers."""
    if name in NO_OP_METHODS:
        return False
    return scenario.task.name != "language" or name in scenario.spec.method_params


def check_moves_toward_reference(name: str, scenario: Scenario, run: MethodRun | None = None,
                                 cache: InferenceCache | None = None) -> None:
    """|F(u) − F(R)| < |F(o) − F(R)| for the forget-set metric F (classification: forget
    accuracy; language: forget answer NLL) of the unlearned model u, the original o and the
    retrained reference R (or F(u) = F(R) where F(o) = F(R) already): unlearning is about the
    forget set and the retrained model is the target, and an absolute distance does not count
    overshooting as progress."""
    run = run or run_method(name, scenario)
    metric = FORGET_METRIC[scenario.task.name]
    cache = cache or InferenceCache(scenario.task)
    value = {role: evaluate(scenario, model, names=[metric], cache=cache)[metric].value
             for role, model in (("unlearned", run.model), ("original", scenario.original),
                                 ("retrained", scenario.reference))}
    target = value["retrained"]
    before, after = abs(value["original"] - target), abs(value["unlearned"] - target)
    # Where the original already matches the reference there is nothing to move: stay there.
    assert after < before or after == before == 0, (
        f"method {name!r}: moves toward the retrained reference: {metric} "
        f"{value['unlearned']:.3f} (original {value['original']:.3f}, retrained {target:.3f})")


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(before: dict, model: nn.Module) -> list[str]:
    after = model.state_dict()
    if after.keys() != before.keys():
        return ["<keys>"]
    return [k for k in before if before[k].dtype != after[k].dtype
            or not torch.equal(before[k], after[k])]


# ----------------------------------------------------------------------------- metrics

def scored_model(scenario: Scenario) -> tuple[nn.Module, dict]:
    """The model ``check_metric`` scores by default: one epoch of fine-tuning (of gradient
    ascent where the retain set is withheld, RWKU's setting), with its timings (so that
    timing metrics have values)."""
    method = "finetune" if scenario.spec.retain_available else "ga"
    return unlearn(scenario, method, {"epochs": 1}, seed=SEED)


def check_metric(name: str, scenario: Scenario | None = None, model: nn.Module | None = None,
                 timings: dict | None = None, cache: InferenceCache | None = None) -> None:
    """On the scenario (default: the small one of its task that has its splits), scoring
    ``model`` (default: ``scored_model``): a float value, finite and within its unit's range,
    per-example values aligned with the ids of its split; no value only for a timing metric
    without timings; the same value from a fresh inference cache; no model changed; and, for
    classification and regression metrics, the original scored against itself is at the
    declared goal."""
    entry = metrics.get(name)
    tasks = [t for t in entry.attributes.get("tasks", ())
             if t in SMALL_SPECS or scenario is not None]  # a given scenario: any task
    assert tasks, f"metric {name!r}: evaluated on a scenario: its tasks " \
                  f"{entry.attributes.get('tasks')} are not scored per model"
    splits = entry.attributes.get("splits", ())
    scenario = scenario or small_scenario(tasks[0], splits)
    assert scenario.task.name in tasks and set(splits) <= set(scenario.splits), \
        f"metric {name!r}: does not apply to the {scenario.task.name} scenario {scenario.spec.name}"
    if model is None:
        model, timings = scored_model(scenario)
    cache = cache or InferenceCache(scenario.task)
    models_before = [(role, m, snapshot(m)) for role, m in (
        ("the scored model", model), ("the original", scenario.original),
        ("the reference", scenario.reference))]

    with_timings = evaluate(scenario, model, names=[name], timings=timings, cache=cache)[name]
    without_timings = evaluate(scenario, model, names=[name], cache=cache)[name]
    check_metric_result(name, entry, scenario, with_timings)
    if with_timings.value is None:
        raise AssertionError(f"metric {name!r}: has a value: None, even with timings")
    if without_timings.value is not None:
        check_metric_result(name, entry, scenario, without_timings)

    fresh = evaluate(scenario, model, names=[name], timings=timings,
                     cache=InferenceCache(scenario.task))[name]
    assert fresh.value is not None and math.isclose(fresh.value, with_timings.value,
                                                    rel_tol=REL_TOL, abs_tol=REL_TOL), \
        f"metric {name!r}: deterministic: {with_timings.value!r}, then {fresh.value!r}"
    if with_timings.per_example is not None:
        np.testing.assert_allclose(
            np.asarray(fresh.per_example, float), np.asarray(with_timings.per_example, float),
            rtol=REL_TOL, atol=REL_TOL,
            err_msg=f"metric {name!r}: deterministic: per-example values differ")

    for role, m, before in models_before:
        moved = changed(before, m)
        assert not moved, f"metric {name!r}: leaves the models untouched: changed {role}'s " \
                          f"{', '.join(moved)}"
    if scenario.task.name in ("classification", "regression"):
        check_metric_goal(name, scenario)


def check_metric_result(name: str, entry, scenario: Scenario, result: MetricResult) -> None:
    what = f"metric {name!r}: returns a finite value of its declared kind"
    assert isinstance(result, MetricResult), f"{what}: returned {type(result).__name__}"
    assert isinstance(result.value, float) and not isinstance(result.value, bool), \
        f"{what}: {result.value!r} is not a float"
    assert math.isfinite(result.value), f"{what}: {result.value} is not finite"
    goal, unit = entry.attributes.get("goal"), entry.attributes.get("unit")
    # A metric ranked by its distance to a fixed value (PrivLeak: 0) may lie on either side.
    if goal in ("higher", "lower", "retrain") and unit in UNIT_RANGES:
        low, high = UNIT_RANGES[unit]
        assert low - REL_TOL <= result.value <= high + REL_TOL, \
            f"{what}: {result.value} is outside [{low}, {high}] ({unit})"
    if result.per_example is None:
        return
    assert result.split in scenario.splits, f"{what}: per-example values over {result.split!r}"
    per_example = np.asarray(result.per_example)
    assert result.ids is not None and per_example.ndim == 1 and \
        len(per_example) == len(result.ids), f"{what}: one per-example value per id"
    assert set(np.asarray(result.ids).tolist()) <= set(scenario.splits[result.split].ids.tolist()), \
        f"{what}: per-example ids that are not in {result.split!r}"
    assert np.isfinite(per_example.astype(float)).all(), f"{what}: per-example NaN or inf"


def check_metric_goal(name: str, scenario: Scenario) -> None:
    """The original scored on a scenario whose reference is the original itself: a ``retrain``
    metric is at the reference's value, and a ``lower`` metric comparing with the reference (a
    gap) is 0."""
    itself = dataclasses.replace(scenario, reference=scenario.original)
    ev = Evaluation(itself, scenario.original, InferenceCache(scenario.task))
    value = ev.value(name).value
    goal = metrics.get(name).attributes.get("goal")
    what = f"metric {name!r}: the original against itself is at its goal ({goal})"
    if value is None:
        return
    if goal == "retrain":
        target = ev.reference.value(name).value
        assert math.isclose(value, target, rel_tol=REL_TOL, abs_tol=REL_TOL), \
            f"{what}: {value} against the reference's {target}"
    elif goal == "lower" and ev._reference is not None:  # it read the reference: a gap
        assert abs(value) <= REL_TOL, f"{what}: {value}, not 0"


# ----------------------------------------------------------------------------- benchmarks

def check_benchmark(name: str, scenario: Scenario | list[Scenario] | None = None,
                    cache: ModelCache | None = None) -> None:
    """``check_benchmark_spec``, then the benchmark built at seed 0 (or ``scenario``, built
    already; a list for sequential requests): in every stage forget and retain are non-empty
    and disjoint, and its holdout (classification: the test split; language: ``holdout``, where
    ids count across the data set, disjoint from both) is non-empty."""
    spec = check_benchmark_spec(name)
    built = scenario if scenario is not None else build_scenario(spec, SEED, cache)
    for stage in built if isinstance(built, list) else [built]:
        check_splits(name, stage)


def check_benchmark_spec(name: str) -> BenchmarkSpec:
    """The spec builds with its name, a registered data set (and model, for classification),
    a recipe within its declared ranges, and ``method_params`` naming registered methods of its
    task with valid hyperparameters. Nothing is loaded or trained."""
    spec = get_spec(name)
    what = f"benchmark {name!r}"
    assert "[" in name or spec.name == name, f"{what}: its spec is named {spec.name!r}"
    assert spec.dataset in datasets, f"{what}: unknown data set {spec.dataset!r}"
    assert spec.task == "language" or spec.model in models, f"{what}: unknown model {spec.model!r}"
    for method, params in spec.method_params.items():
        assert method in methods, f"{what}: method_params name unknown method {method!r}"
        assert spec.task in methods.get(method).attributes["tasks"], \
            f"{what}: method_params name {method!r}, which does not support {spec.task}"
    try:
        check_values(spec.recipe, f"{what}: recipe")
        for method, params in spec.method_params.items():
            resolve_params(methods.get(method).params, params, f"{what}: method_params: {method}")
    except UserError as exc:
        raise AssertionError(str(exc)) from exc
    return spec


def check_splits(name: str, scenario: Scenario) -> None:
    what = f"benchmark {name!r}: splits"
    holdout = "holdout" if scenario.task.name == "language" else "test"
    for split in ("forget", "retain", holdout):
        assert split in scenario.splits and len(scenario.splits[split]) > 0, \
            f"{what}: {split} is missing or empty"
    forget, retain = set(scenario.forget.ids.tolist()), set(scenario.retain.ids.tolist())
    assert not forget & retain, f"{what}: {len(forget & retain)} examples in forget and retain"
    if scenario.task.name == "language":
        held = set(scenario.splits[holdout].ids.tolist())
        assert not held & (forget | retain), f"{what}: holdout shares examples with forget or retain"
