"""The HTML report: one self-contained file built from the store (`unlearnbench report`).

Per benchmark (each request of a sequential benchmark apart, as in the leaderboard): the
leaderboard with mean ± std, bootstrap interval and aggregated rank; every metric; the
forget–utility trade-off; the cost frontier; membership-inference ROC curves; per-seed
distributions of the sort metric; a generative benchmark's samples per method; learning
curves; the forget examples the methods failed to forget; and the environment and command line
behind each run. Figures are PNGs inlined as ``data:`` URIs, the style sheet is inline, the page
has no script and a Content-Security-Policy that allows nothing else, so it opens offline. Every
text from the store goes through `esc`."""
from __future__ import annotations

import datetime
import os
from pathlib import Path

from ..version import __version__
from ..errors import UserError
from ..store import Store, sqlite_file
from . import plots, views
from ..registry import GROUPS, metrics
from .leaderboard import (RANKING_NAMES, REFERENCE_METHOD, columns, goal_words, group_key, heading,
                          leaderboard, ranked_headlines, sort_metric, table_name, title,
                          unranked)
from .markup import esc, header, number

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em 2em;color:#1d1d1f}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em;margin-top:1.4em}
table{border-collapse:collapse;font-size:.85em;margin:.4em 0}
th,td{border:1px solid #d0d0d0;padding:.25em .5em;vertical-align:top}
th{background:#f3f3f5;text-align:left}td.num{text-align:right;white-space:nowrap}
td.num small{color:#666}.note{color:#555;font-size:.85em;max-width:60em}
td.code{font-family:ui-monospace,monospace;font-size:.9em;word-break:break-all}
img{max-width:100%;border:1px solid #eee}nav a{margin-right:1em}
details summary{cursor:pointer;color:#0a58ca;margin:.5em 0}.scroll{overflow-x:auto}
"""
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def build_report(store: Store, benchmark: str | None = None) -> str:
    """The report of every run in ``store`` (of ``benchmark`` only, when given), as HTML."""
    runs = store.runs(benchmark)
    if not runs:
        raise UserError(f"the store {store.name!r} holds no runs"
                        + (f" for {benchmark!r}" if benchmark else ""))
    rows = leaderboard(runs)
    labels = {group_key(row["benchmark"], row["method"], row["params"], row["settings"]):
              row["label"] for row in rows}
    for run in runs:
        run["label"] = labels[group_key(table_name(run), run["method"], run["params"],
                                        run["settings"])]
    names = list(dict.fromkeys(row["benchmark"] for row in rows))
    sections = [section(name, f"benchmark-{i}", [r for r in rows if r["benchmark"] == name],
                        [r for r in runs if table_name(r) == name], store)
                for i, name in enumerate(names)]
    made = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    navigation = "".join(f'<a href="#benchmark-{i}">{esc(name)}</a>'
                         for i, name in enumerate(names))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="icon" href="data:,"><title>unlearnbench report</title>'
            f"<style>{STYLE}</style></head><body>"
            f"<h1>unlearnbench report</h1>"
            f'<p class="note">Store <code>{esc(store.name)}</code>: {len(runs)} runs on '
            f"{len(names)} benchmark table(s). Made {made} by unlearnbench {esc(__version__)}."
            f"</p><nav>{navigation}</nav>{''.join(sections)}</body></html>\n")


def write_report(db: str | Path, out: str | Path, benchmark: str | None = None) -> Path:
    """Build the report of the store at ``db`` and write it to ``out`` (replaced whole)."""
    out, file = Path(out), sqlite_file(db)  # file: None for a server database's URL
    if file is not None and not file.is_file():
        raise UserError(f"no store at {str(db)!r}: run `unlearnbench run` first or pass --db PATH")
    if out.parent.exists() and not out.parent.is_dir():
        raise UserError(f"the directory of --out {str(out)!r} is a file; give a path in a "
                        "directory")
    if not out.parent.is_dir():
        raise UserError(f"the directory of --out {str(out)!r} does not exist; create it first")
    if out.is_dir():
        raise UserError(f"--out {str(out)!r} is a directory; give a file name such as report.html")
    page = build_report(Store(db), benchmark)
    partial = out.with_name(out.name + ".partial")
    try:
        partial.write_text(page, encoding="utf-8")
        os.replace(partial, out)
    except OSError as exc:
        if partial.is_file():  # written, then not renamed
            partial.unlink()
        raise UserError(f"cannot write --out {str(out)!r} ({exc.strerror or exc}: "
                        f"{exc.filename}); give a path in a directory you can write") from None
    return out


def section(name: str, anchor: str, rows: list[dict], runs: list[dict], store: Store) -> str:
    measured = {metric for row in rows for metric in row["metrics"]}
    colour = plots.colours([row["label"] for row in rows])
    finished = [run for run in runs if run["status"] == "finished"]
    parts = [f'<section id="{anchor}" data-benchmark="{esc(name)}"><h2>{esc(name)}</h2>',
             leaderboard_table(rows), all_metrics_table(rows),
             views.tradeoff_figure(rows, finished, measured, colour),
             views.frontier_figure(rows, colour),
             views.roc_figure(rows, finished, store, colour),
             views.distribution_figure(rows, finished, measured, colour),
             views.samples_figure(rows, finished, store)]
    if not any(run.get("request") for run in runs):
        parts.append(views.curves_figure(name, store, colour))
    parts += [views.worst_examples(rows, finished, store), views.provenance(runs), "</section>"]
    return "".join(parts)


def stat_cell(metric: str, stat: dict | None) -> str:
    if stat is None:
        return f'<td class="num" data-metric="{esc(metric)}">—</td>'
    attributes = " ".join(f'data-{key}="{float(stat[key])!r}"'
                          for key in ("mean", "std", "low", "high") if stat.get(key) is not None)
    text = number(stat["mean"])
    if stat.get("n", 1) > 1:
        text += f" ± {number(stat['std'])}"
        if stat.get("low") is not None and stat.get("high") is not None:
            text += f"<br><small>[{number(stat['low'])}, {number(stat['high'])}]</small>"
    return (f'<td class="num" data-metric="{esc(metric)}" data-n="{stat.get("n", 1)}" '
            f"{attributes}>{text}</td>")


def rank_text(row: dict) -> str:
    rank = row.get("rank")
    if not rank:
        return "—"
    text = str(rank["position"]) + (" ≈" if row.get("within_noise_of_best") else "")
    return text + (f" ({rank['criteria']}/{rank['of']})" if rank["criteria"] < rank["of"] else "")


def method_cells(row: dict) -> str:
    seeds = str(len(row["seeds"])) + (f" ({row['failed']} failed)" if row["failed"] else "")
    return f'<td class="method">{esc(row["label"])}</td><td class="num seeds">{esc(seeds)}</td>'


def leaderboard_table(rows: list[dict]) -> str:
    shown = [m for m in columns() if any(m in row["metrics"] for row in rows)]
    ranked = any(row.get("rank") for row in rows)
    head = "<tr><th>Method</th><th>Seeds</th>" + ("<th>Rank</th>" if ranked else "") + "".join(
        f'<th data-metric="{esc(m)}">{esc(heading(m))}</th>' for m in shown) + "</tr>"
    body = "".join(
        f'<tr data-label="{esc(row["label"])}">{method_cells(row)}'
        + (f'<td class="num rank">{esc(rank_text(row))}</td>' if ranked else "")
        + "".join(stat_cell(m, row["metrics"].get(m)) for m in shown) + "</tr>"
        for row in rows)
    notes = ["Mean ± seed standard deviation over seeds; [low, high]: 95% bootstrap interval of "
             "the mean."]
    metric = sort_metric(rows)
    if metric and not ranked:
        notes.append(f"Sorted by {esc(title(metric))}, {esc(goal_words(metric))}.")
    if ranked:
        by = next(row["rank"]["by"] for row in rows if row.get("rank"))
        criteria = ", ".join(f"{esc(title(m))} ({esc(goal_words(m))})"
                             for m in ranked_headlines(rows))
        notes.append(f"Sorted by rank: {RANKING_NAMES.get(by, esc(by))} of the per-seed "
                     f"rankings on {criteria}; ≈: within noise of the best row (judged with at "
                     "least 3 shared seeds); (k/K): ranked on k of K criteria.")
    left_out = unranked(rows)
    if left_out:
        notes.append(f"Not ranked on {esc(', '.join(map(title, left_out)))}: no "
                     f"{REFERENCE_METHOD} run to compare with.")
    errors = "".join(f"<li>{esc(row['label'])} failed: {esc('; '.join(row['errors']))}</li>"
                     for row in rows if row["errors"])
    return (f'<h3>Leaderboard</h3><div class="scroll"><table class="leaderboard">{head}{body}'
            "</table></div>"
            f'<p class="note">{" ".join(notes)}</p>' + (f"<ul>{errors}</ul>" if errors else ""))


def all_metrics_table(rows: list[dict]) -> str:
    """Every stored metric (one row each: its registered group, name, title, unit and
    direction; by group, then name; names no registration knows last) against every method
    (one column each)."""
    def order(m):
        return (GROUPS.index(metrics.get(m).attributes["group"]) if m in metrics else len(GROUPS),
                m)

    def described(m):
        if m not in metrics:
            return f'<td></td><td class="code">{esc(m)}</td><td></td><td></td>'
        attributes = metrics.get(m).attributes
        return (f'<td>{esc(attributes["group"])}</td><td class="code">{esc(m)}</td>'
                f'<td>{esc(title(m))}</td><td>{esc(attributes["unit"])}, '
                f'{esc(goal_words(m))}</td>')

    names = sorted({m for row in rows for m in row["metrics"]}, key=order)
    head = header(["Group", "Metric", "Title", "Unit, direction", *(row["label"] for row in rows)])
    body = "".join(f"<tr>{described(m)}"
                   + "".join(stat_cell(m, row["metrics"].get(m)) for row in rows) + "</tr>"
                   for m in names)
    return (f"<details><summary>All {len(names)} metrics</summary>"
            f'<div class="scroll"><table class="all-metrics">{head}{body}</table></div></details>')
