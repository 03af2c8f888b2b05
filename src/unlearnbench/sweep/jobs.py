"""Grid of (benchmark, method, hyperparameters, seed) -> jobs -> records in the store.

Finished runs are skipped, so a killed grid resumes where it stopped. A scenario (data,
original and retrained models) is built once per (benchmark, seed) and only when one of its
jobs is still to do. A job that fails (a diverging method, an unsupported task) is recorded
as failed with its reason and the grid goes on."""
from __future__ import annotations

import dataclasses
import json
import math
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..cache import ModelCache, content_key
from ..errors import Diverged, UserError
from ..metrics.evaluation import evaluate, metric_names_for
from ..metrics.inference import InferenceCache
from ..registry import methods, metrics
from ..scenarios import get_spec
from ..specs import coerce, resolve_params
from ..store import RunRecord
from ..unlearning import (benchmark_params, check_request_kind, check_supports, method_needs,
                          missing_data_message, unlearn)
from ..version import __version__


# The methods a run without --methods compares: the no-op and the exact baseline beside the
# most reported approximate methods of each task. A language benchmark's reference is one
# model trained with a fixed seed, so its tables show an independently retrained model beside
# the methods: the distance training noise alone gives.
DEFAULT_METHODS = {"classification": ("original", "retrain", "finetune", "ga", "rl"),
                   "language": ("original", "retrain_independent", "ga", "graddiff", "npo",
                                "simnpo"),
                   "generation": ("original", "retrain", "ga", "esd"),
                   "regression": ("original", "retrain", "finetune", "ga", "gaussian_amnesiac",
                                  "blindspot")}


@dataclass(frozen=True)
class Job:
    benchmark: str
    method: str
    params: dict
    seed: int
    max_steps: int | None = None
    request: int | None = None  # the stage of a sequential-requests benchmark (1-based)
    # Learning curve: evaluate ``curve_metrics`` (empty: all) every ``curve_every`` optimizer
    # steps, or every forget epoch ("epoch"); None records the final model only.
    curve_every: int | str | None = None
    curve_metrics: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()  # the metrics to compute (empty: every one that applies)
    # The name the scenario is built from where it differs from the recorded ``benchmark``:
    # a benchmark on your own data is recorded by content but found by its path.
    source: str | None = None
    # The compute budget: a fraction of the retrained reference's cost in examples passed
    # forward and backward (``unlearning.unlearn``); None: the method's own settings.
    budget: float | None = None

    @property
    def key(self) -> str:
        parts = {"benchmark": self.benchmark, "method": self.method, "params": self.params,
                 "seed": self.seed, "max_steps": self.max_steps}
        if self.request is not None:
            parts["request"] = self.request
        if self.curve_every is not None:
            parts["curve"] = [self.curve_every, list(self.curve_metrics)]
        if self.metrics:
            parts["metrics"] = list(self.metrics)
        if self.budget is not None:
            parts["budget"] = self.budget
        return content_key(parts)

    @property
    def settings(self) -> dict:
        """What else the key holds, stored with the record: the leaderboard keeps runs of
        other settings in rows of their own (a budget only where one is set, so that runs
        without one share rows with those stored before budgets were)."""
        settings = {"max_steps": self.max_steps, "metrics": list(self.metrics),
                    "curve_every": self.curve_every, "curve_metrics": list(self.curve_metrics)}
        if self.budget is not None:
            settings["budget"] = self.budget
        return settings


def plan(benchmark_names: list[str], method_names: list[str], seeds: list[int],
         overrides: dict[str, dict] | None = None, max_steps: int | None = None,
         curve_every: int | str | None = None, curve_metrics: list[str] | None = None,
         metric_names: list[str] | None = None,
         budgets: list[float] | None = None) -> list[Job]:
    """Validate every name and hyperparameter up front (before any training) and expand the
    grid into jobs, one per budget in ``budgets`` (None or empty: no budget)."""
    overrides = overrides or {}
    benchmark_names = list(dict.fromkeys(benchmark_names))  # a name given twice runs once
    method_names = list(dict.fromkeys(method_names))
    seeds = list(dict.fromkeys(seeds))
    if not benchmark_names:
        raise UserError("no benchmark given: pass --benchmark NAME (see `unlearnbench list benchmarks`)")
    if not method_names:
        tasks = {get_spec(b).task for b in benchmark_names}
        method_names = list(dict.fromkeys(m for task in sorted(tasks)
                                          for m in DEFAULT_METHODS[task]))
    if not seeds:
        raise UserError("no seeds: pass --seeds N with N >= 1")
    for name in overrides:
        if name not in method_names:
            raise UserError(f"hyperparameters given for {name!r}, which is not among the methods "
                            f"run ({', '.join(method_names)})")
    curve_metrics = expand_metric_names(curve_metrics or [])
    metric_names = expand_metric_names(metric_names or [])
    curve_every = check_curve(curve_every, curve_metrics)
    budgets = check_budgets(budgets or [None])
    jobs = []
    for benchmark in benchmark_names:
        spec = get_spec(benchmark)
        source = benchmark if spec.name != benchmark else None
        requests = [None] if spec.forget.requests == 1 else range(1, spec.forget.requests + 1)
        for name in method_names:
            entry = methods.get(name)
            params = resolve_params(entry.params,
                                    benchmark_params(spec, name, overrides.get(name)), name)
            if not spec.retain_available and "retain" in method_needs(name, params):
                raise UserError(missing_data_message(name, ["retain"], spec))
            check_request_kind(name, spec)
            resolved = dataclasses.asdict(params) if params is not None else {}
            jobs += [Job(spec.name, name, resolved, seed, max_steps, request, curve_every,
                         tuple(curve_metrics or ()), tuple(metric_names or ()), source, budget)
                     for seed in seeds for budget in method_budgets(name, budgets)
                     for request in requests]
    jobs = list({job.key: job for job in jobs}.values())  # one file given at two paths: once
    return sorted(jobs, key=lambda j: (benchmark_names.index(j.source or j.benchmark), j.seed,
                                       method_names.index(j.method), j.budget is None,
                                       j.budget or 0.0, j.request or 0))


def check_budgets(budgets: list) -> list[float | None]:
    """``--budget``: fractions of the retrain cost, each finite and above 0 (1 is the
    retrain's own cost), each once."""
    checked = []
    for budget in budgets:
        if budget is not None:
            budget = coerce(budget, float, "--budget")
            if not 0 < budget < math.inf:
                raise UserError(f"--budget takes finite fractions of the retrain cost above 0 "
                                f"(such as 0.05,0.1,0.25), got {budget:g}")
        checked.append(budget)
    return list(dict.fromkeys(checked))


def method_budgets(method: str, budgets: list[float | None]) -> list[float | None]:
    """The budgets ``method`` runs within. With budgets given, the two ends of the cost
    frontier also run without one: the original (cost 0: one run, whatever the budget) and
    the retrained reference's full recipe (cost 1) beside its budgeted runs."""
    if budgets == [None] or method not in ("original", "retrain"):
        return budgets
    return [None] if method == "original" else [*budgets, None]


def expand_metric_names(names: list[str]) -> list[str]:
    """Metric names and suite names (``tofu``, ``mia``, ``muse``...: every metric registered
    with that ``suite``), in order, each once. An unknown name raises with suggestions."""
    out = []
    for name in names:
        group = [e.name for e in metrics.entries() if e.attributes.get("suite") == name]
        if name not in metrics and group:
            out += group
        else:
            metrics.get(name)  # an unknown name raises with the nearest suggestions
            out.append(name)
    return list(dict.fromkeys(out))


def applicable(names: tuple[str, ...], scenario) -> list[str] | None:
    """The requested metrics that apply to the scenario (None: all of them)."""
    if not names:
        return None
    available = set(metric_names_for(scenario))
    return [n for n in names if n in available]


def check_curve(every: int | str | None, names: list[str]) -> int | str | None:
    """``--curve-every``: a positive number of steps or "epoch"; ``--curve-metrics``: names."""
    if names and every is None:
        raise UserError("--curve-metrics needs --curve-every (steps, or epoch)")
    if every is None or every == "epoch":
        return every
    steps = coerce(every, int, "--curve-every")
    if steps < 1:
        raise UserError(f"--curve-every must be a positive number of steps or 'epoch', got {every}")
    return steps


def forget_batch_size(params: dict) -> int | None:
    return params.get("forget_batch_size") or params.get("batch_size")


def curve_observer(job: Job, scenario, points: list[tuple[int, dict]]):
    """The learning-curve observer of ``job`` (see ``unlearning.unlearn``) and its step interval: it
    appends (step, {metric: value}) to ``points``. An epoch is one pass over the forget set at
    the method's (forget) batch size; a method without a batch size (no training loop) gets
    its first and last points only."""
    names = applicable(job.curve_metrics or job.metrics, scenario)
    every = job.curve_every
    if every == "epoch":
        forget = scenario.newly_forgotten if scenario.newly_forgotten is not None else scenario.forget
        batch_size = forget_batch_size(job.params)
        every = -(-len(forget) // batch_size) if batch_size else None

    def observe(model, step):
        results = evaluate(scenario, model, names=names)
        points.append((step, {n: r.value for n, r in results.items() if r.value is not None}))
    return observe, every


def environment() -> tuple[dict, str | None]:
    import numpy
    import sklearn
    import torch
    versions = {"unlearnbench": __version__, "python": platform.python_version(),
                "torch": torch.__version__, "numpy": numpy.__version__,
                "scikit-learn": sklearn.__version__}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return versions, commit


def run_job(job: Job, scenario, versions: dict, commit: str | None, start=None,
            cache: InferenceCache | None = None) -> tuple[RunRecord, object]:
    """Unlearn and evaluate one job; failures become failed records, never exceptions.
    Returns the record and the unlearned model (None when it failed). ``cache``: the
    scenario's inference cache, so that the original's and the retain model's outputs are
    computed once for every job of the scenario (the unlearned model's are dropped after)."""
    record = RunRecord(job.key, job.benchmark, job.method, job.params, job.seed, "finished",
                       started_at=time.time(), versions=versions, git_commit=commit,
                       request=job.request, settings=job.settings)
    observer, every = None, 1
    if job.curve_every is not None:
        observer, every = curve_observer(job, scenario, record.curve)
    try:
        check_supports(job.method, scenario, job.params)
        if observer is not None:
            observer(start if start is not None else scenario.original, 0)
        model, timings = unlearn(scenario, job.method, job.params, max_steps=job.max_steps,
                                 start=start, observer=observer, every=every, budget=job.budget)
        start = time.perf_counter()
        cache = cache or InferenceCache(scenario.task)
        results = evaluate(scenario, model, names=applicable(job.metrics, scenario),
                           timings=timings, cache=cache)
        timings["metrics_seconds"] = time.perf_counter() - start
        samples = shown_samples(scenario, model, cache)
        cache.release(model)
    except Diverged as exc:  # recorded with the step it happened at (and any curve so far)
        record.status, record.error, record.timings = "failed", str(exc), {"steps": exc.step}
        return record, None
    except UserError as exc:
        record.status, record.error = "failed", str(exc)
        return record, None
    except Exception as exc:  # a bug or a bad value inside a method: recorded, the grid goes on
        record.status, record.error = "failed", f"{type(exc).__name__}: {exc}"
        return record, None
    record.timings, record.samples = timings, samples
    record.metrics = {name: r.value for name, r in results.items()}
    for name, r in results.items():
        if r.interval is not None:
            record.metrics[f"{name}_low"], record.metrics[f"{name}_high"] = r.interval
    record.per_example = {name: (r.split, r.ids, r.per_example) for name, r in results.items()
                          if r.per_example is not None}
    if observer is not None and (not record.curve or record.curve[-1][0] != timings["steps"]):
        record.curve.append((timings["steps"], {n: v for n, v in record.metrics.items()
                                                if v is not None}))
    return record, model


def shown_samples(scenario, model, cache: InferenceCache):
    """A generative model's samples for the report (``GenerationTask.showcase``), read from
    the images its metrics generated (generated here when no metric asked for them); None for
    other tasks."""
    task = scenario.task
    if task.name != "generation":
        return None
    made = cache.output(model, scenario.splits[task.prompts_name], "generate")
    return task.showcase(made, scenario.spec.forget.class_id)


def scenario_cache(scenario, models: ModelCache | None) -> InferenceCache:
    """The inference cache every job of a scenario shares; the original's and retain model's
    text outputs are also saved beside the model cache and read back by later processes."""
    shared = InferenceCache(scenario.task)
    directory = (models or ModelCache()).root / "outputs"
    for model in (scenario.original, scenario.reference):
        shared.keep_on_disk(model, directory)
    return shared


def run_sequences(pending, stages, jobs, store, done, versions, commit, on_done,
                   caches: dict | None = None):
    """Sequential requests: each (method, hyperparameters) chain starts from the original and
    feeds each request's model to the next. Stages already stored are recomputed (the chain
    needs their models; it is deterministic) but not written again. ``caches``: one inference
    cache per stage, shared by the chains (kept by the caller across calls)."""
    chains = {(j.method, json.dumps(j.params, sort_keys=True), j.max_steps, j.budget)
              for j in pending}
    caches = {} if caches is None else caches
    for method, params, max_steps, budget in sorted(chains):
        chain = sorted((j for j in jobs if j.benchmark == pending[0].benchmark
                        and j.seed == pending[0].seed and j.method == method
                        and json.dumps(j.params, sort_keys=True) == params
                        and j.max_steps == max_steps and j.budget == budget),
                       key=lambda j: j.request)
        model = None
        for job, stage in zip(chain, stages):
            if job.request > 1 and model is None:
                record = RunRecord(job.key, job.benchmark, job.method, job.params, job.seed,
                                   "failed", f"request {job.request - 1} failed, so this one "
                                   "could not run", request=job.request,
                                   settings=job.settings)
            else:
                record, model = run_job(job, stage, versions, commit, start=model,
                                        cache=caches.setdefault(id(stage),
                                                                scenario_cache(stage, stage.cache)))
            if job.key not in done:
                store.write(record)
                on_done(job, record)
