"""Population mode: a method run with N seeds against N retrained models, scored per example.

The scenario at seed ``seed0`` fixes the forget / retain / test split and the original. The
retrained population is N models trained on its retain split with training seeds seed0 ..
seed0 + N − 1 through the model cache (seed0's is the scenario's own reference; a rerun trains
none of them). Each method runs N times from the same original with unlearning seeds
``UNLEARN_SEED_OFFSET`` + seed0 + i. The offset keeps them apart from the retrained models'
seeds: ``retrain`` with seed k reproduces reference k bit for bit, which would make the two
populations one and the same instead of two independent samples, as the challenge's are.

Each model's logits on forget, retain and test give per-example logit-scaled confidences and
margins (the model itself is dropped at once); then per method (``stats.population``): the
NeurIPS 2023 challenge's per-example ε on forget, forget quality F and final score, U-LiRA
accuracy and KLoM (the reference's histogram form, and summaries of its Gaussian variant as
``klom_gaussian_*``) on forget, retain and test (the challenge's validation examples).
``float32`` computes the challenge's confidences, rates and ε as its reference code does.

Each (benchmark, method, N) is one record in the store, under the benchmark name
``"<benchmark> population N=<N>"`` (so ``unlearnbench show`` prints it as a table of its own;
the float32 path appends ``" float32"``) with seed ``POPULATION_SEED`` (-1: the record
pools seeds). Its key holds N, the resolved hyperparameters and seed0 (and the float32 path
when taken), so a rerun skips finished methods. A method that fails on any
seed is recorded as failed with the seed and the reason, and the run goes on."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from ..unlearning import benchmark_params, check_supports, unlearn
from ..cache import ModelCache, content_key
from ..errors import Diverged, UserError
from ..registry import methods
from ..scenarios import build_scenario, get_spec
from ..unlearning import train_cached as train_cached
from ..specs import resolve_params
from ..stats.population import (
    challenge_score,
    example_epsilons,
    forget_quality,
    klom,
    klom_gaussian,
    logit_scaled_confidence,
    margins,
    summarise,
    ulira_accuracy,
)
from ..store import RunRecord, Store

# With 32 models a side, `population -b digits-random10 -m finetune,ga` takes ~26 s from an
# empty cache on 2 shared cores (31 references trained, 64 unlearning runs); the challenge's
# forget quality then has ⌈ln 31⌉ = 4 units of ε, 8 buckets.
DEFAULT_MODELS = 32
UNLEARN_SEED_OFFSET = 100_000
POPULATION_SEED = -1
SPLITS = ("forget", "retain", "test")
# The columns `unlearnbench population` prints.
# The terminal table of `unlearnbench population`, titled by each metric's registration.
COLUMNS = ("challenge_score", "challenge_forget_quality", "ra", "ta", "ulira_forget",
           "ulira_retain", "ulira_test", "klom_forget_mean", "klom_forget_p99", "klom_test_mean",
           "population_seconds")


def population_name(benchmark: str, n_models: int, seed0: int = 0, float32: bool = False
                    ) -> str:
    """The benchmark name population records are stored under."""
    return (f"{benchmark} population N={n_models}" + (f" split seed {seed0}" if seed0 else "")
            + (" float32" if float32 else ""))


def classification_methods() -> list[str]:
    return [e.name for e in methods.entries() if "classification" in e.attributes.get("tasks", ())]


@dataclasses.dataclass
class Population:
    """Per split: logit-scaled confidences and margins (models, examples) and each model's
    accuracy in percent."""
    confidences: dict[str, np.ndarray]
    margins: dict[str, np.ndarray]
    accuracy: dict[str, np.ndarray]


def collect(scenario, models, float32: bool = False) -> Population:
    """Score each model of the iterable on forget, retain and test, keeping only the scores;
    a model whose logits are NaN or infinite raises ``Diverged``. ``float32``: confidences as
    the challenge's reference code computes them from float32 logits."""
    scores = {kind: {split: [] for split in SPLITS} for kind in ("s", "margin", "accuracy")}
    for model in models:
        for split in SPLITS:
            data = scenario.splits[split]
            logits = scenario.task.predict_logits(model, data).double().numpy()
            broken = int((~np.isfinite(logits).all(axis=1)).sum())
            if broken:  # no confidence or margin of these means anything
                raise Diverged(f"the model gives NaN or infinite logits on {broken} of "
                               f"{len(logits)} {split} examples")
            labels = data.targets.numpy()
            scores["s"][split].append(logit_scaled_confidence(logits, labels, float32))
            scores["margin"][split].append(margins(logits, labels))
            scores["accuracy"][split].append(100.0 * np.mean(logits.argmax(axis=1) == labels))
    arrays = {kind: {split: np.array(values) for split, values in by_split.items()}
              for kind, by_split in scores.items()}
    return Population(arrays["s"], arrays["margin"], arrays["accuracy"])


def retrained_models(scenario, n_models: int):
    """The retrained population, one model at a time: the scenario's reference, then models
    trained on its retain split with the next seeds (through the model cache)."""
    yield scenario.reference
    for seed in range(scenario.seed + 1, scenario.seed + n_models):
        yield train_cached(scenario.cache, scenario.task, scenario.spec, scenario.retain, seed,
                            "retrained")[0]


def population_metrics(scenario, unlearned: Population, retrained: Population,
                       float32: bool = False) -> tuple[dict[str, float], dict[str, tuple]]:
    """Every population score of ``unlearned`` against ``retrained`` and the per-example
    values (split, ids, values) they summarise; ``float32``: the challenge's ε as its
    reference code computes it."""
    n_models = len(unlearned.accuracy["forget"])
    mean = {name: {split: float(population.accuracy[split].mean()) for split in SPLITS}
            for name, population in (("u", unlearned), ("r", retrained))}
    eps = example_epsilons(unlearned.confidences["forget"], retrained.confidences["forget"],
                           float32=float32)
    quality = forget_quality(eps, n_models)
    values = {"challenge_forget_quality": quality,
              "challenge_score": challenge_score(quality, mean["u"]["retain"], mean["r"]["retain"],
                                                 mean["u"]["test"], mean["r"]["test"]),
              "ua": 100.0 - mean["u"]["forget"], "ra": mean["u"]["retain"], "ta": mean["u"]["test"],
              "retrained_ra": mean["r"]["retain"], "retrained_ta": mean["r"]["test"],
              "population_models": float(n_models)}
    ids = {split: scenario.splits[split].ids for split in SPLITS}
    per_example = {"challenge_epsilon": ("forget", ids["forget"], eps)}
    for split in SPLITS:
        attack = ulira_accuracy(unlearned.confidences[split], retrained.confidences[split])
        divergence = klom(unlearned.margins[split], retrained.margins[split])
        values[f"ulira_{split}"] = float(attack.mean())
        for stat, value in summarise(divergence).items():
            values[f"klom_{split}_{stat}"] = value
        gaussian = klom_gaussian(unlearned.margins[split], retrained.margins[split])
        for stat, value in summarise(gaussian).items():
            values[f"klom_gaussian_{split}_{stat}"] = value
        per_example[f"ulira_{split}"] = (split, ids[split], attack)
        per_example[f"klom_{split}"] = (split, ids[split], divergence)
    return values, per_example


def unlearned_models(scenario, method: str, params: dict, n_models: int, timings: list):
    """The method's population, one model at a time; each model's timings are appended once
    the caller is done with it (so ``len(timings)`` is the index of the model in hand)."""
    for i in range(n_models):
        model, spent = unlearn(scenario, method, params, seed=unlearn_seed(scenario, i))
        yield model
        timings.append(spent)


def unlearn_seed(scenario, i: int) -> int:
    return UNLEARN_SEED_OFFSET + scenario.seed + i


def run_method(scenario, method: str, params: dict, n_models: int, retrained: Population,
               record: RunRecord, float32: bool = False) -> RunRecord:
    """Unlearn with N seeds, score the population against ``retrained`` into ``record``;
    a failure on any seed fails the record (naming the seed) and raises nothing."""
    start, timings = time.perf_counter(), []
    try:
        check_supports(method, scenario, params)
    except UserError as exc:
        record.status, record.error = "failed", str(exc)
        return record
    try:
        unlearned = collect(scenario, unlearned_models(scenario, method, params, n_models,
                                                       timings), float32)
        stats_start = time.perf_counter()
        record.metrics, record.per_example = population_metrics(scenario, unlearned, retrained,
                                                                float32)
    except Exception as exc:  # noqa: BLE001 -- UserError, Diverged or a bug: recorded, run goes on
        where = f"seed {unlearn_seed(scenario, len(timings))}: " if len(timings) < n_models else ""
        reason = (str(exc) if isinstance(exc, (UserError, Diverged))
                  else f"{type(exc).__name__}: {exc}")
        record.status, record.error = "failed", where + reason
        if isinstance(exc, Diverged):
            record.timings = {"steps": exc.step}
        return record
    stats_seconds = time.perf_counter() - stats_start
    record.metrics["population_stats_seconds"] = stats_seconds
    record.metrics["population_seconds"] = time.perf_counter() - start
    record.timings = {name: float(np.mean([t[name] for t in timings]))
                      for name in ("unlearn_seconds", "unlearn_cpu_seconds")}
    record.timings["metrics_seconds"] = stats_seconds
    return record


def run_population(benchmark: str, method_names: list[str], n_models: int, store: Store,
                   cache: ModelCache | None = None, params: dict[str, dict] | None = None,
                   seed0: int = 0, device: str = "cpu",
                   on_done: Callable[[RunRecord], None] | None = None,
                   float32: bool = False) -> dict[str, float]:
    """Score each method's population of ``n_models`` against as many retrained models on a
    classification benchmark; write one record per method (skipping those already stored).
    ``method_names`` may be ``["all"]`` (every classification method); ``params`` holds
    per-method hyperparameter overrides; ``float32`` computes the challenge's confidences,
    rates and ε as its reference code does (records under their own name). Returns counts
    and the seconds spent obtaining the retrained population (training it, or loading it from
    the cache)."""
    from ..sweep.jobs import environment

    spec = get_spec(benchmark)
    if spec.task != "classification":
        raise UserError(f"benchmark {benchmark!r} is a {spec.task} benchmark: population scores "
                        "read class logits (confidences and margins); use a classification one")
    if spec.forget.requests > 1:
        raise UserError(f"benchmark {benchmark!r} has sequential requests; population mode "
                        "scores a single request: choose a benchmark with one")
    if n_models < 3:
        raise UserError(f"--models must be at least 3 (U-LiRA's leave-one-out fits), got {n_models}")
    names = classification_methods() if list(method_names) == ["all"] else list(
        dict.fromkeys(method_names))
    if not names:
        raise UserError("no method given: pass --methods a,b,c or all")
    params = params or {}
    for name in params:
        if name not in names:
            raise UserError(f"hyperparameters given for {name!r}, which is not among the methods "
                            f"run ({', '.join(names)})")
    name = population_name(spec.name, n_models, seed0, float32)
    records = []
    for method in names:
        resolved = resolve_params(methods.get(method).params,
                                  benchmark_params(spec, method, params.get(method)), method)
        resolved = dataclasses.asdict(resolved) if resolved is not None else {}
        key = content_key({"benchmark": spec.name, "population": n_models, "method": method,
                           "params": resolved, "seed0": seed0}
                          | ({"float32": True} if float32 else {}))
        records.append(RunRecord(key, name, method, resolved, POPULATION_SEED, "finished"))
    done = store.done_keys()
    pending = [r for r in records if r.key not in done]
    counts = {"finished": 0, "failed": 0, "skipped": len(records) - len(pending),
              "retrained_seconds": 0.0}
    if not pending:
        return counts
    # torch's first optimizer step imports torch._dynamo (seconds): not the first method's cost
    import torch._dynamo  # noqa: F401

    versions, commit = environment()
    scenario = build_scenario(spec, seed0, cache or ModelCache(), device)
    start = time.perf_counter()
    retrained = collect(scenario, retrained_models(scenario, n_models), float32)
    counts["retrained_seconds"] = time.perf_counter() - start
    for record in pending:
        record.started_at, record.versions, record.git_commit = time.time(), versions, commit
        run_method(scenario, record.method, record.params, n_models, retrained, record, float32)
        store.write(record)
        counts[record.status] += 1
        if on_done:
            on_done(record)
    return counts
