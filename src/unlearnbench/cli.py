"""The command line: run, tune, show, report, list, data fetch, unlearn.

Errors in the user's input print one line (what is wrong, what to do) and exit with 2;
``--debug`` shows the traceback instead."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from .errors import UserError
from .registry import ALL

# Tables are wide; when the output is a file or a pipe, do not squeeze them to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def split_names(values: tuple[str, ...] | list[str] | str | None) -> list[str]:
    """Accept repeated options, comma lists or YAML lists (commas inside a variant's brackets,
    ``entities-forget05[n_entities=20,epochs=1]``, do not separate names)."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [name.strip() for value in values for name in re.split(r",(?![^\[]*\])", str(value))
            if name.strip()]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx, debug):
    """unlearnbench: machine unlearning methods and evaluations behind one API."""
    ctx.obj = {"debug": debug}


@cli.command()
@click.option("--benchmark", "-b", "benchmark_names", multiple=True,
              help="Benchmark name(s), comma-separated or repeated.")
@click.option("--methods", "-m", "method_names", multiple=True,
              help="Method names, comma-separated or repeated. Default: original, retrain, "
                   "finetune, ga, rl (classification); original, ga, graddiff, npo, simnpo "
                   "(language).")
@click.option("--seeds", type=int, default=None, help="Number of seeds (0..N-1). Default 1.")
@click.option("--set", "assignments", multiple=True, metavar="METHOD.PARAM=VALUE",
              help="Override a hyperparameter, e.g. --set ga.lr=0.001 (repeatable).")
@click.option("--config", type=click.Path(dir_okay=False), help="YAML file with any of these options.")
@click.option("--db", type=click.Path(dir_okay=False), default=None,
              help="The store: a SQLite file, or a database URL such as "
                   "postgresql://user@host:5432/db. Default unlearnbench.db.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Model cache directory. Default .unlearnbench-cache (or $UNLEARNBENCH_CACHE).")
@click.option("--device", default=None, help="cpu (default), cuda, cuda:1, mps ...")
@click.option("--max-steps", type=int, default=None, help="Cap each method's optimizer steps.")
@click.option("--threads", type=int, default=1, show_default=True,
              help="CPU threads per job (torch intra-op). Small models gain nothing from more, "
                   "and spinning threads slow down many-fold when the cores are shared.")
@click.option("--workers", type=int, default=None,
              help="Run the jobs in N worker processes, each with --threads threads "
                   "(default 1: in this process). With --executor ray: N tasks at a time.")
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
def run(benchmark_names, method_names, seeds, assignments, config, db, cache_dir, device,
        max_steps, threads, workers, executor, address, model, lora, metric_names, curve_every,
        curve_metrics, retry_failed, no_progress, tuned, tuned_objective):
    """Run methods x seeds on benchmarks; results go to the store as each job completes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .cache import ModelCache
    from .executors import make_executor
    from .executors_ray import RayExecutor
    from .runner import plan, run_grid
    from .scenario import variant
    from .specs import load_config, parse_assignments
    from .store import Store


    options = load_config(config) if config else {}
    threads = int(options.get("threads", threads))
    set_threads(threads)
    workers = workers if workers is not None else options.get("workers")
    executor = executor or options.get("executor")
    # checked now: a missing Ray or a wrong combination fails before any planning
    executor = make_executor(executor, None if workers is None else int(workers), threads,
                             address or options.get("address"))
    benchmarks = split_names(benchmark_names) or split_names(
        options.get("benchmarks", options.get("benchmark")))
    model, lora = model or options.get("model"), lora if lora is not None else options.get("lora")
    benchmarks = [variant(name, model, lora) for name in benchmarks]
    methods = split_names(method_names) or split_names(options.get("methods"))
    seeds = seeds if seeds is not None else int(options.get("seeds", 1))
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    overrides = {m: dict(p) for m, p in (options.get("params") or {}).items()}
    for method, values in parse_assignments(assignments).items():
        overrides.setdefault(method, {}).update(values)
    device = device or options.get("device", "cpu")
    if not isinstance(executor, RayExecutor):  # Ray checks its cluster's GPUs instead
        check_device(device)
    max_steps = max_steps if max_steps is not None else options.get("max_steps")
    curve_every = curve_every if curve_every is not None else options.get("curve_every")
    curve_metrics = split_names(curve_metrics) or split_names(options.get("curve_metrics"))
    metric_names = split_names(metric_names) or split_names(options.get("metrics"))
    db = db or options.get("db", "unlearnbench.db")
    if tuned or tuned_objective:
        jobs = tuned_jobs(db, benchmarks, methods, overrides, tuned_objective,
                          lambda names, values: plan(names, methods, list(range(seeds)), values,
                                                     max_steps, curve_every, curve_metrics,
                                                     metric_names))
    else:
        jobs = plan(benchmarks, methods, list(range(seeds)), overrides, max_steps, curve_every,
                    curve_metrics, metric_names)
    # the command line is recorded with each run, for the report's provenance table
    store = Store(db, command=shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    cache_dir = cache_dir or options.get("cache_dir")
    use_cache_dir(cache_dir)
    cache = ModelCache(cache_dir)
    if retry_failed or options.get("retry_failed"):
        store.forget_failed([job.key for job in jobs])

    if no_progress or not console.is_terminal:
        def report(job, record):
            status = record.status + (f" ({record.error})" if record.error else "")
            gap = record.metrics.get("avg_gap")
            gap_text = f" avg_gap={gap:.3f}" if gap is not None else ""
            request = f" request={job.request}" if job.request else ""
            console.print(f"{job.benchmark} {job.method} seed={job.seed}{request}: {status}{gap_text}",
                          markup=False, highlight=False)
        counts = run_grid(jobs, store, cache, device, on_done=report, executor=executor)
    else:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            bar = progress.add_task("jobs", total=len(jobs))
            progress.update(bar, completed=len(jobs) - len(
                [j for j in jobs if not store.has(j.key)]))

            def advance(job, record):
                progress.update(bar, advance=1, description=f"{job.benchmark} {job.method} s{job.seed}")
            counts = run_grid(jobs, store, cache, device, on_done=advance, executor=executor)
    console.print(f"{counts['finished']} finished, {counts['failed']} failed, "
                  f"{counts['skipped']} already in {store.name}")


def tuned_jobs(db: str, benchmarks: list[str], methods: list[str], overrides: dict,
               objective: str | None, plan_one) -> list:
    """``run --tuned``: each benchmark's jobs planned with its stored tuning (``plan_one``
    takes the benchmark names and the overrides), the user's --set values over it."""
    from .store import Store
    from .tune import tuned_overrides

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


def store_exists(db: str) -> bool:
    """Whether ``--db`` names an existing SQLite file; always True for a server database's URL
    (opening the store then says whether the server can be reached)."""
    from .store import sqlite_file

    file = sqlite_file(db)
    return file is None or file.exists()


def set_threads(threads: int) -> None:
    """``--threads``: torch's intra-op threads in this process."""
    import torch

    if threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)


def use_cache_dir(cache_dir: str | None) -> None:
    """``--cache-dir``: data sets fetched into the cache (MNIST...) are found through the
    same variable, so it is set for the whole process."""
    if cache_dir:
        os.environ["UNLEARNBENCH_CACHE"] = str(cache_dir)


def check_device(device: str) -> None:
    import torch
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:
        raise UserError(f"device {device!r} is not usable here ({str(exc).splitlines()[0]}); "
                        "use --device cpu") from None


@cli.command()
@click.option("--benchmark", "-b", "benchmark", required=True,
              help="A classification benchmark (one request).")
@click.option("--methods", "-m", "method_names", multiple=True, required=True,
              help="Method names, comma-separated or repeated, or all (every classification method).")
@click.option("--models", "n_models", type=int, default=None,
              help="Models per population, retrained and unlearned alike (default 32).")
@click.option("--set", "assignments", multiple=True, metavar="METHOD.PARAM=VALUE",
              help="Override a hyperparameter, e.g. --set ga.lr=0.001 (repeatable).")
@click.option("--seed", "seed0", type=int, default=0, show_default=True,
              help="Scenario seed: the forget/retain split and the original model.")
@click.option("--db", type=click.Path(dir_okay=False), default="unlearnbench.db", show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Model cache directory. Default .unlearnbench-cache (or $UNLEARNBENCH_CACHE).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--threads", type=int, default=1, show_default=True, help="CPU threads (torch).")
def population(benchmark, method_names, n_models, assignments, seed0, db, cache_dir, device,
               threads):
    """Score methods as populations: N unlearning seeds against N retrained models
    (NeurIPS 2023 challenge score, U-LiRA, KLoM); one record per method and N."""
    from rich.table import Table

    from .cache import ModelCache
    from .population import COLUMNS, DEFAULT_MODELS, population_name, run_population
    from .specs import parse_assignments
    from .store import Store

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
                            ModelCache(cache_dir), parse_assignments(assignments), seed0, device,
                            on_done=report)
    console.print(f"{counts['finished']} finished, {counts['failed']} failed, "
                  f"{counts['skipped']} already in {store.name}; retrained population "
                  f"{counts['retrained_seconds']:.1f} s")
    name = population_name(benchmark, n_models, seed0)
    table = Table(title=f"{name} (sorted by challenge score, higher is better)")
    for title in ["Method"] + [title for _, title in COLUMNS]:
        table.add_column(title, justify="left" if title == "Method" else "right", no_wrap=True)
    runs = sorted(store.runs(name), key=lambda r: -r["metrics"].get("challenge_score", -1.0))
    for run in runs:
        cells = [f"{run['metrics'][key]:.3f}" if key in run["metrics"] else "—"
                 for key, _ in COLUMNS]
        table.add_row(escape(run["method"]), *cells)
    console.print(table)


@cli.command()
@click.option("--benchmark", "-b", default=None, help="Only this benchmark.")
@click.option("--db", type=click.Path(dir_okay=False), default="unlearnbench.db", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the leaderboard as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the leaderboard as CSV.")
@click.option("--curves", is_flag=True,
              help="Print the learning-curve points (runs made with --curve-every) instead, "
                   "one CSV row per (run, step, metric); --json for JSON.")
@click.option("--rank", "rank_by", type=click.Choice(["kemeny", "borda", "mean"]),
              default="kemeny", show_default=True,
              help="How the Rank column aggregates the per-seed rankings on each table's "
                   "headline metrics: Kemeny consensus, Borda count or mean rank.")
@click.option("--across", "across_benchmarks", is_flag=True,
              help="One table ranking methods across every benchmark in the store (criteria: "
                   "benchmark × headline metric; methods missing from a benchmark are compared "
                   "where they ran, their number of cells shown).")
def show(benchmark, db, as_json, as_csv, curves, rank_by, across_benchmarks):
    """Print the leaderboard: mean ± std and 95% bootstrap interval over seeds, an aggregated
    rank, and "≈" on rows within noise of the best; sorted by each table's headline metric
    (Avg. Gap for classification)."""
    from .report.across import across, across_csv, render_across
    from .report.leaderboard import leaderboard, render, to_csv, to_json
    from .store import Store

    if not store_exists(db):
        raise UserError(f"no store at {db!r}: run `unlearnbench run` first or pass --db PATH")
    if curves:
        points = Store(db).curves(benchmark)
        if not points:
            raise UserError(f"the store {db!r} holds no learning curves: run with --curve-every")
        click.echo(json.dumps(points, indent=1) if as_json else points_csv(points), nl=False)
        return
    rows = leaderboard(Store(db).runs(benchmark), rank_by)
    if not rows:
        raise UserError(f"the store {db!r} holds no runs" + (f" for {benchmark!r}" if benchmark else ""))
    if across_benchmarks:
        rows = across(rows, rank_by)
        if not rows:
            raise UserError(f"no run in {db!r} has a headline metric to rank (Avg. Gap, forget "
                            "quality, challenge score, ...)")
    if as_json:
        click.echo(to_json(rows))
    elif as_csv:
        click.echo((across_csv if across_benchmarks else to_csv)(rows), nl=False)
    elif across_benchmarks:
        render_across(rows, rank_by, console)
    else:
        render(rows, console)


def points_csv(points: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(points[0]))
    writer.writeheader()
    writer.writerows(points)
    return out.getvalue()


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
              help="A metric with a goal, or forget_quality_at_utility. Default: avg_gap "
                   "(classification), forget_quality_at_utility (language).")
@click.option("--utility-fraction", type=float, default=0.9, show_default=True,
              help="forget_quality_at_utility: the share of the original's model utility a "
                   "trial must keep to be feasible.")
@click.option("--max-steps", type=int, default=None, help="Cap each trial's optimizer steps.")
@click.option("--db", type=click.Path(dir_okay=False), default="unlearnbench.db",
              show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
@click.option("--device", default="cpu", show_default=True)
@click.option("--threads", type=int, default=1, show_default=True, help="CPU threads (torch).")
def tune(benchmark, method_names, trials, seed, objective, utility_fraction, max_steps, db,
         cache_dir, device, threads):
    """Tune methods with the same trial budget on a validation forget request; the choice
    goes to the store for `run --tuned`."""

    from .cache import ModelCache
    from .store import Store
    from .tune import tune as tune_methods

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
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="The HTML file to write (replaced whole).")
@click.option("--db", type=click.Path(dir_okay=False), default="unlearnbench.db", show_default=True)
@click.option("--benchmark", "-b", default=None, help="Only this benchmark.")
def report(out, db, benchmark):
    """Write one self-contained HTML report (no network needed to view it): leaderboards,
    trade-off, MIA ROC, per-seed, learning-curve and per-example views, and provenance."""
    from .report.html import write_report

    path = write_report(db, out, benchmark)
    console.print(f"wrote {path}", markup=False, highlight=False)


@cli.command("list")
@click.argument("kind", required=False,
                type=click.Choice(["methods", "metrics", "benchmarks", "datasets", "models"]))
def list_components(kind):
    """List registered components with their descriptions and hyperparameters."""
    for name in [kind] if kind else list(ALL):
        console.print(f"[bold]{name}[/bold]")
        for entry in ALL[name].entries():
            console.print(f"  [cyan]{escape(entry.name)}[/cyan]  {escape(entry.description)}",
                          highlight=False)
            for field, type_name, default in entry.param_fields():
                console.print(f"      {field}: {type_name} = {default!r}", highlight=False,
                              markup=False)


@cli.group()
def data():
    """Fetch data sets and models into the cache; export generated data."""


@data.command()
@click.argument("name")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
def fetch(name, cache_dir):
    """Fetch a data set or model into the cache (those registered with a fetcher: mnist,
    cifar10, books, ...; `unlearnbench list datasets` shows their sources)."""
    from .cache import default_cache_dir
    from .registry import datasets, models

    fetchable = {e.name: e.attributes["fetch"] for registry in (datasets, models)
                 for e in registry.entries() if e.attributes.get("fetch")}
    if name not in fetchable:
        raise UserError(f"nothing called {name!r} can be fetched; choose one of: "
                        f"{', '.join(sorted(fetchable))}")
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    path = fetchable[name](root)
    console.print(f"{name} is ready at {path}", markup=False, highlight=False)


@data.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Directory to write.")
@click.option("--format", "layout", type=click.Choice(["jsonl", "hf"]), default="jsonl",
              show_default=True, help="TOFU's JSON-lines files or a saved Hugging Face DatasetDict.")
@click.option("--n-entities", type=int, default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def export(out_dir, layout, n_entities, seed):
    """Write the generated fictitious-people data in TOFU's layout (forget01/05/10,
    retain90/95/99, holdout01/05/10, world_facts, real_entities, idontknow); the `tofu` data
    set loads it back, as it loads real TOFU files."""
    from .data.entities import REFUSALS, generate_entities
    from .data.tofu_format import write_tofu_dataset, write_tofu_jsonl

    splits = generate_entities(n_entities, seed)
    if layout == "jsonl":
        write_tofu_jsonl(splits, out_dir)
        refusals = Path(out_dir) / "idontknow.jsonl"
        refusals.write_text("".join(f"{line}\n" for line in REFUSALS))
    else:
        write_tofu_dataset(splits, out_dir)
    console.print(f"wrote {len(splits)} splits to {out_dir}", markup=False, highlight=False)


@cli.command("unlearn")
@click.option("--model", "model_path", required=True,
              help="Your model: FILE.py:CLASS,WEIGHTS.safetensors; a directory with model.py, "
                   "model.safetensors and model.json ({\"class\": ..., \"kwargs\": {...}}); a "
                   "TorchScript file; or a Hugging Face causal LM directory.")
@click.option("--data", "data_path", required=True,
              help="What the model was trained on: .npz with x, y (and ids) for a classifier; "
                   "JSONL of {\"text\"} or {\"question\", \"answer\"} (and \"id\") for a "
                   "language model.")
@click.option("--forget", required=True,
              help="Ids of the records to forget, comma-separated, or @FILE with one per line "
                   "(row numbers when the data has no ids).")
@click.option("--method", required=True, help="A registered method (`unlearnbench list methods`).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="New directory for the unlearned model and the audit (audit.json, audit.md).")
@click.option("--holdout", default=None,
              help="Data of the same kind the model never saw: holdout scores and the "
                   "membership-inference test.")
@click.option("--set", "assignments", multiple=True, metavar="PARAM=VALUE",
              help="A hyperparameter of the method (lr=0.001), or of the training recipe "
                   "(recipe.epochs=20) that --retrain and some methods use (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--db", type=click.Path(dir_okay=False), default="unlearnbench.db",
              show_default=True,
              help="The store the run is recorded in: a SQLite file or a database URL.")
@click.option("--retrain", is_flag=True,
              help="Also retrain from scratch without the forget records and compare "
                   "(classifiers given as a module, with the recipe given by --set recipe.*).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--threads", type=int, default=1, show_default=True, help="CPU threads (torch).")
def unlearn_request(model_path, data_path, forget, method, out, holdout, assignments, seed, db,
                    retrain, device, threads):
    """Unlearn records from your own model; write the unlearned model and an audit report."""
    import shlex


    from .deletion.audit import summary
    from .deletion.workflow import delete, parse_settings

    set_threads(threads)
    check_device(device)
    params, recipe = parse_settings(assignments, method)
    audit = delete(model_path, data_path, forget, method, out, holdout=holdout, params=params,
                   recipe=recipe, seed=seed, db=db, retrain=retrain, device=device,
                   command=shlex.join(["unlearnbench", *sys.argv[1:]]))
    for line in summary(audit):
        console.print(line, markup=False, highlight=False)

def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UserError as exc:
        if debug:
            raise
        err_console.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    except Exception as exc:  # anything unexpected: still one line, unless --debug
        if debug:
            raise
        err_console.print(f"error: {type(exc).__name__}: {exc} (rerun with --debug for the "
                          "traceback)", highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
