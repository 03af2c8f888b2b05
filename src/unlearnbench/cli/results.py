"""The commands that read what is recorded: show (the leaderboard or learning curves),
report (one HTML file) and list (the registered components)."""
from __future__ import annotations

import csv
import io
import json

import click
from rich.markup import escape

from ..errors import UserError
from ..registry import ALL
from .common import console, store_exists
from .group import cli


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
@click.option("--frontier", is_flag=True,
              help="Print the cost frontier instead: per method (and budget, see run --budget) "
                   "its cost as a fraction of the retrain's and the table's headline metric, "
                   "Pareto-optimal rows marked; --json or --csv for data.")
def show(benchmark, db, as_json, as_csv, curves, rank_by, across_benchmarks, frontier):
    """Print the leaderboard: mean ± std and 95% bootstrap interval over seeds, an aggregated
    rank, and "≈" on rows within noise of the best; sorted by each table's headline metric
    (Avg. Gap for classification)."""
    from ..report.across import across, across_csv, render_across
    from ..report.leaderboard import leaderboard, render, to_csv, to_json
    from ..store import Store

    if as_json and as_csv:
        raise UserError("--json and --csv each choose the output format: give one of them")
    if not store_exists(db):
        raise UserError(f"no store at {db!r}: run `unlearnbench run` first or pass --db PATH")
    if curves:
        points = Store(db).curves(benchmark)
        if not points:
            raise UserError(f"the store {db!r} holds no learning curves: run with --curve-every")
        click.echo(json.dumps(points, indent=1) if as_json else points_csv(points), nl=False)
        return
    runs = Store(db).runs(benchmark)
    rows = leaderboard(runs, rank_by)
    if not rows:
        raise UserError(f"the store {db!r} holds no runs" + (f" for {benchmark!r}" if benchmark else ""))
    if frontier:
        show_frontier(rows, db, as_json, as_csv)
        return
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
        # Deletion requests on users' own models: a row per request, never averaged.
        from ..deletion.history import is_deletion, render_deletions

        render([row for row in rows if not is_deletion(row["benchmark"])], console)
        render_deletions([run for run in runs if is_deletion(run["benchmark"])], console)


def show_frontier(rows: list[dict], db: str, as_json: bool, as_csv: bool) -> None:
    from ..report.frontier import frontier, render_frontier

    points = frontier(rows)
    if not points:
        raise UserError(f"no run in {db!r} has both a measured cost and a headline metric: "
                        "run `unlearnbench run` with this version (and without --metrics "
                        "leaving out the headline metric)")
    if as_json:
        click.echo(json.dumps(points, indent=1))
    elif as_csv:
        click.echo(points_csv(points), nl=False)
    else:
        render_frontier(points, console)


def points_csv(points: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(points[0]))
    writer.writeheader()
    writer.writerows(points)
    return out.getvalue()


@cli.command()
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="The HTML file to write (replaced whole).")
@click.option("--db", type=click.Path(dir_okay=False), default="unlearnbench.db", show_default=True)
@click.option("--benchmark", "-b", default=None, help="Only this benchmark.")
def report(out, db, benchmark):
    """Write one self-contained HTML report (no network needed to view it): leaderboards,
    trade-off, MIA ROC, per-seed, learning-curve and per-example views, and provenance."""
    from ..report.html import write_report

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
