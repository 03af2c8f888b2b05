"""The commands that run jobs and record them in the store: run (a grid of methods x seeds
on benchmarks), tune (a trial budget per method, for `run --tuned`) and population (methods
scored as populations of models)."""
from __future__ import annotations

import json

import click
from rich.markup import escape

from ..errors import UserError
from .common import (
    check_device,
    console,
    recorded_command,
    set_threads,
    split_names,
    store_exists,
    use_cache_dir,
)
from .config import config_option, hyperparameters
from .group import cli


@cli.command()
@click.option("--benchmark", "-b", "benchmark_names", multiple=True,
              help="Benchmark name(s), comma-separated or repeated.")
@click.option("--methods", "-m", "method_names", multiple=True,
              help="Method names, comma-separated or repeated. Default: original, retrain, "
                   "finetune, ga, rl (classification); original, retrain_independent, ga, "
                   "graddiff, npo, simnpo (language).")
@click.option("--seeds", type=int, default=1, show_default=True, help="Number of seeds (0..N-1).")
@click.option("--set", "overrides", multiple=True, metavar="METHOD.PARAM=VALUE",
              callback=hyperparameters,
              help="Override a hyperparameter, e.g. --set ga.lr=0.001 (repeatable).")
@config_option
@click.option("--db", type=click.Path(dir_okay=False), default="unlearnbench.db",
              show_default=True,
              help="The store: a SQLite file, or a database URL such as "
                   "postgresql://user@host:5432/db.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Model cache directory. Default .unlearnbench-cache (or $UNLEARNBENCH_CACHE).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, mps ...")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default=None,
              help="Train and unlearn in mixed precision (autocast; float32 weights, float32 "
                   "evaluation); runs as the variant NAME[precision=...]. Pays on GPUs.")
@click.option("--max-steps", type=int, default=None, help="Cap each method's optimizer steps.")
@click.option("--budget", "budgets", multiple=True, metavar="FRACTION[,FRACTION...]",
              help="Run each method within each compute budget, a fraction of the retrained "
                   "reference's cost in examples passed forward and backward (e.g. "
                   "0.05,0.1,0.25); each budget is a run of its own.")
@click.option("--threads", type=int, default=1, show_default=True,
              help="CPU threads per job (torch intra-op). Small models gain nothing from more, "
                   "and spinning threads slow down many-fold when the cores are shared.")
@click.option("--workers", type=int, default=None,
              help="Run the jobs in N workers, each with --threads threads: this process "
                   "and N-1 spawned ones (default 1: this process alone). With --executor ray: "
                   "N at a time (this process among them when the cluster is this machine).")
@click.option("--executor", type=click.Choice(["serial", "pool", "ray"]), default=None,
              help="Where the jobs run: serial (in this process), pool (--workers processes; "
                   "what --workers N > 1 selects), ray (Ray tasks; pip install "
                   "'unlearnbench[ray]'). Default: serial, or pool with --workers N > 1.")
@click.option("--address", default=None, metavar="auto|ray://HOST:PORT",
              help="With --executor ray: the Ray cluster (default: start a local instance). "
                   "On a cluster, --cache-dir must be a shared file system and --db a server "
                   "database every node reaches.")
@click.option("--model", default=None,
              help="Language benchmarks: another model, a registered name or a Hugging Face "
                   "model directory (runs as the variant NAME[model=...]).")
@click.option("--lora", type=int, default=None,
              help="Language benchmarks: fine-tune and unlearn through LoRA adapters of this rank.")
@click.option("--metrics", "metric_names", multiple=True,
              help="Compute only these metrics, comma-separated (default: every one that "
                   "applies; see `unlearnbench list metrics`).")
@click.option("--curve-every", default=None, metavar="STEPS|epoch",
              help="Record a learning curve: evaluate the model being unlearned every STEPS "
                   "optimizer steps, or every epoch (one pass over the forget set at the "
                   "method's batch size).")
@click.option("--curve-metrics", "curve_metrics", multiple=True,
              help="Metrics of the learning curve, comma-separated (default: all).")
@click.option("--retry-failed", is_flag=True,
              help="Run again the jobs recorded as failed (by default every recorded job is skipped).")
@click.option("--no-progress", is_flag=True, help="Print one line per job instead of a bar.")
@click.option("--tuned", is_flag=True,
              help="Use the hyperparameters `unlearnbench tune` stored in --db for each method "
                   "(--set still overrides them).")
@click.option("--tuned-objective", default=None,
              help="With --tuned: the tuning objective whose choice to use (default: the task's, "
                   "avg_gap or forget_quality_at_utility).")
def run(benchmark_names, method_names, seeds, overrides, db, cache_dir, device, precision,
        max_steps, budgets, threads, workers, executor, address, model, lora, metric_names, curve_every,
        curve_metrics, retry_failed, no_progress, tuned, tuned_objective):
    """Run methods x seeds on benchmarks; results go to the store as each job completes."""
    from ..sweep.spawning import spawn_workers

    # A pool's processes start first, and import torch while this one does and plans.
    spawned = (spawn_workers(workers - 1, threads)
               if executor in (None, "pool") and (workers or 1) > 1 and threads >= 1 else [])
    from ..cache import ModelCache
    from ..spec_names import variant
    from ..store import Store
    from ..sweep.executors import ProcessPool

    set_threads(threads)
    # chosen first: a missing Ray or a wrong combination fails before any planning
    executor = choose_executor(executor, workers, threads, address, device)
    if isinstance(executor, ProcessPool):
        executor.start(spawned)
    benchmarks = [variant(name, model, lora, precision) for name in split_names(benchmark_names)]
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    settings = dict(max_steps=max_steps, curve_every=curve_every,
                    curve_metrics=split_names(curve_metrics),
                    metric_names=split_names(metric_names), budgets=split_names(budgets))
    jobs = plan_jobs(benchmarks, split_names(method_names), list(range(seeds)), overrides,
                     settings, tuned_from=db if tuned or tuned_objective else None,
                     objective=tuned_objective)
    use_cache_dir(cache_dir)
    cache = ModelCache(cache_dir)
    # the command line is recorded with each run, for the report's provenance table
    store = Store(db, command=recorded_command())
    if retry_failed:
        store.forget_failed([job.key for job in jobs])
    counts = run_jobs(jobs, store, cache, device, executor, no_progress)
    console.print(f"{counts['finished']} finished, {counts['failed']} failed, "
                  f"{counts['skipped']} already in {store.name}")


def choose_executor(name: str | None, workers: int | None, threads: int, address: str | None,
                    device: str):
    """The executor of --executor, --workers and --address; the device is checked here,
    unless the jobs run on a Ray cluster, which checks its own GPUs."""
    from ..sweep.executors import make_executor
    from ..sweep.executors.ray import RayExecutor

    executor = make_executor(name, workers, threads, address)
    if not isinstance(executor, RayExecutor):
        check_device(device)
    return executor


def plan_jobs(benchmarks: list[str], methods: list[str], seeds: list[int], overrides: dict,
              settings: dict, tuned_from: str | None, objective: str | None) -> list:
    """The grid's jobs (``sweep.jobs.plan`` with ``settings``: step cap, curve, metrics); with
    ``tuned_from`` (``run --tuned``), each benchmark's with the tuning stored in that store."""
    from ..sweep.jobs import plan

    def plan_some(names, values):
        return plan(names, methods, seeds, values, **settings)

    if tuned_from is None:
        return plan_some(benchmarks, overrides)
    return tuned_jobs(tuned_from, benchmarks, methods, overrides, objective, plan_some)


def run_jobs(jobs: list, store, cache, device: str, executor, no_progress: bool) -> dict:
    """Run the jobs not yet stored, showing a progress bar on a terminal, else (or with
    --no-progress) one line per job; returns ``run_grid``'s counts."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..sweep.grid import run_grid

    def waiting(held):  # another `unlearnbench run` on the same store holds these jobs
        console.print(f"waiting for {len(held)} job(s) that other processes are running",
                      markup=False, highlight=False)

    if no_progress or not console.is_terminal:
        def report(job, record):
            status = record.status + (f" ({record.error})" if record.error else "")
            gap = record.metrics.get("avg_gap")
            gap_text = f" avg_gap={gap:.3f}" if gap is not None else ""
            budget = f" budget={job.budget:g}" if job.budget is not None else ""
            request = f" request={job.request}" if job.request else ""
            console.print(f"{job.benchmark} {job.method} seed={job.seed}{budget}{request}: {status}{gap_text}",
                          markup=False, highlight=False)
        return run_grid(jobs, store, cache, device, on_done=report, executor=executor,
                        on_wait=waiting)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("jobs", total=len(jobs))
        progress.update(bar, completed=len(jobs) - len([j for j in jobs if not store.has(j.key)]))

        def advance(job, record):
            progress.update(bar, advance=1, description=f"{job.benchmark} {job.method} s{job.seed}")
        return run_grid(jobs, store, cache, device, on_done=advance, executor=executor,
                        on_wait=waiting)


def tuned_jobs(db: str, benchmarks: list[str], methods: list[str], overrides: dict,
               objective: str | None, plan_one) -> list:
    """``run --tuned``: each benchmark's jobs planned with its stored tuning (``plan_one``
    takes the benchmark names and the overrides), the user's --set values over it."""
    from ..store import Store
    from ..studies.tune import tuned_overrides

    if not store_exists(db):
        raise UserError(f"no store at {db!r} holds tuned hyperparameters: run `unlearnbench "
                        "tune` first or pass --db PATH")
    if not benchmarks:
        return plan_one([], overrides)  # says what is missing
    store, jobs = Store(db), []
    for benchmark in benchmarks:
        values = tuned_overrides(store, benchmark, methods, objective)
        for method, user in overrides.items():
            values.setdefault(method, {}).update(user)
        jobs += plan_one([benchmark], values)
    return jobs


@cli.command()
@click.option("--benchmark", "-b", "benchmark", required=True,
              help="The benchmark to tune for (its validation variant NAME[validation=1] is "
                   "what the trials run on).")
@click.option("--methods", "-m", "method_names", multiple=True, required=True,
              help="Method names, comma-separated or repeated.")
@click.option("--trials", type=int, default=20, show_default=True,
              help="Trials per method (the same for every method).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the sampler, the validation request and the unlearning.")
@click.option("--objective", default=None,
              help="A metric whose goal is lower, higher or a number (PrivLeak's 0), or "
                   "METRIC@UTILITY: METRIC among the trials whose UTILITY reaches "
                   "--utility-fraction of the retain model's (privleak@retain_prob). Default: "
                   "avg_gap (classification), forget_quality_at_utility (language: "
                   "forget_quality@model_utility).")
@click.option("--utility-fraction", type=float, default=0.9, show_default=True,
              help="METRIC@UTILITY: the share of the retain model's UTILITY a trial must "
                   "reach to be feasible.")
@click.option("--max-steps", type=int, default=None, help="Cap each trial's optimizer steps.")
@click.option("--db", type=click.Path(dir_okay=False), default="unlearnbench.db",
              show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
@click.option("--device", default="cpu", show_default=True)
@click.option("--threads", type=int, default=1, show_default=True, help="CPU threads (torch).")
@config_option
def tune(benchmark, method_names, trials, seed, objective, utility_fraction, max_steps, db,
         cache_dir, device, threads):
    """Tune methods with the same trial budget on a validation forget request; the choice
    goes to the store for `run --tuned`."""

    from ..cache import ModelCache
    from ..store import Store
    from ..studies.tune import tune as tune_methods

    set_threads(threads)
    check_device(device)
    use_cache_dir(cache_dir)

    def report(method, trial):
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in trial["params"].items())
        outcome = (f"{trial['value']:.4g}" if trial["state"] == "complete"
                   else f"failed ({trial['error']})")
        console.print(f"{method} trial {trial['number'] + 1}: {outcome} {shown}", markup=False,
                      highlight=False)

    results = tune_methods(benchmark, split_names(method_names), trials, Store(db), seed,
                           objective, utility_fraction, max_steps, ModelCache(cache_dir), device,
                           on_trial=report)
    for method, tuning in results.items():
        if tuning["params"] is None:
            line = f"{method}: every trial failed; nothing stored to run with --tuned"
        else:
            line = (f"{method}: {tuning['objective']}={tuning['value']:.4g} with "
                    f"{json.dumps(tuning['params'], sort_keys=True)}")
        console.print(line + (" (already tuned)" if tuning["skipped"] else ""), markup=False,
                      highlight=False)


@cli.command()
@click.option("--benchmark", "-b", "benchmark", required=True,
              help="A classification benchmark (one request).")
@click.option("--methods", "-m", "method_names", multiple=True, required=True,
              help="Method names, comma-separated or repeated, or all (every classification method).")
@click.option("--models", "n_models", type=int, default=None,
              help="Models per population, retrained and unlearned alike (default 32).")
@click.option("--set", "overrides", multiple=True, metavar="METHOD.PARAM=VALUE",
              callback=hyperparameters,
              help="Override a hyperparameter, e.g. --set ga.lr=0.001 (repeatable).")
@click.option("--seed", "seed0", type=int, default=0, show_default=True,
              help="Scenario seed: the forget/retain split and the original model.")
@click.option("--db", type=click.Path(dir_okay=False), default="unlearnbench.db", show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Model cache directory. Default .unlearnbench-cache (or $UNLEARNBENCH_CACHE).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--threads", type=int, default=1, show_default=True, help="CPU threads (torch).")
@click.option("--float32", is_flag=True,
              help="The challenge's confidences, rates and ε in float32, as its official code "
                   "computes them (stored as a table of their own).")
@config_option
def population(benchmark, method_names, n_models, overrides, seed0, db, cache_dir, device,
               threads, float32):
    """Score methods as populations: N unlearning seeds against N retrained models
    (NeurIPS 2023 challenge score, U-LiRA, KLoM); one record per method and N."""
    from rich.table import Table

    from ..cache import ModelCache
    from ..registry import metrics
    from ..studies.population import COLUMNS, DEFAULT_MODELS, population_name, run_population
    from ..store import Store

    set_threads(threads)
    check_device(device)
    use_cache_dir(cache_dir)
    n_models = DEFAULT_MODELS if n_models is None else n_models
    store = Store(db)

    def report(record):
        outcome = (f"score={record.metrics['challenge_score']:.3f} "
                   f"({record.metrics['population_seconds']:.1f} s)"
                   if record.status == "finished" else f"failed ({record.error})")
        console.print(f"{record.benchmark} {record.method}: {outcome}", markup=False,
                      highlight=False)

    counts = run_population(benchmark, split_names(method_names), n_models, store,
                            ModelCache(cache_dir), overrides, seed0, device,
                            on_done=report, float32=float32)
    console.print(f"{counts['finished']} finished, {counts['failed']} failed, "
                  f"{counts['skipped']} already in {store.name}; retrained population "
                  f"{counts['retrained_seconds']:.1f} s")
    name = population_name(benchmark, n_models, seed0, float32)
    table = Table(title=f"{name} (sorted by challenge score, higher is better)")
    titles = [metrics.get(key).attributes["title"] for key in COLUMNS]
    for title in ["Method", *titles]:
        table.add_column(title, justify="left" if title == "Method" else "right", no_wrap=True)
    runs = sorted(store.runs(name), key=lambda r: -r["metrics"].get("challenge_score", -1.0))
    for run in runs:
        cells = [f"{run['metrics'][key]:.3f}" if key in run["metrics"] else "—"
                 for key in COLUMNS]
        table.add_row(escape(run["method"]), *cells)
    console.print(table)
