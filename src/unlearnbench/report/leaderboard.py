"""The leaderboard: per benchmark and method (and hyperparameters, and run settings: step cap,
metrics, learning curve), the mean over seeds of every metric with its seed standard
deviation and 95% bootstrap interval (`stats.uncertainty.seed_summary`), an aggregated rank
over the table's headline metrics, and a mark on the rows whose difference from the best row
is within the noise. Exports as JSON and CSV. (report/across.py ranks methods over every
benchmark of the store.) Every number depends on the runs' contents alone, not on the order
the store holds them in."""
from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter, defaultdict

from ..registry import metrics
from ..stats.ranking import aggregate_order, criteria_counts, orient, ranked_criteria
from ..stats.uncertainty import seed_summary, within_noise

RANKINGS = ("kemeny", "borda", "mean")
# Seeds a row must share with the best row for "≈" to be judged (see `_rank_table`).
MIN_PAIRED_SEEDS = 3
# Method labels longer than this are shown in the terminal as "METHOD #k", with a legend.
MAX_LABEL = 40
RANKING_NAMES = {"kemeny": "Kemeny consensus", "borda": "Borda count", "mean": "mean rank"}
# The method whose runs reproduce the retrained reference (the scenario's seed and recipe):
# a metric whose goal is "retrain" is ranked by its distance to that method's value.
REFERENCE_METHOD = "retrain"
# Units a column heading names; a fraction or a ratio goes without.
SHOWN_UNITS = ("%", "nats", "bits", "s")


# Every table reads its columns, titles and directions from the metrics' registrations
# (`registry.check_metric`): a metric registered with a ``column`` is one a table may show,
# one registered ``headline`` is also ranked on.
def columns() -> list[str]:
    """The metrics a table may show, in column order (each table shows those its runs
    measured)."""
    shown = [e for e in metrics.entries() if e.attributes.get("column") is not None]
    return [e.name for e in sorted(shown, key=lambda e: (e.attributes["column"], e.name))]


def headlines() -> list[str]:
    """The metrics a table is ranked on, in column order; the first one a table can score
    is its sort metric."""
    return [name for name in columns() if metrics.get(name).attributes.get("headline")]


def title(name: str) -> str:
    """A metric's display name (a name no registration knows stays as it is)."""
    return metrics.get(name).attributes["title"] if name in metrics else name


def heading(name: str) -> str:
    """A column's heading: the title, and the unit where it has one worth naming."""
    unit = metrics.get(name).attributes["unit"] if name in metrics else None
    return f"{title(name)} ({unit})" if unit in SHOWN_UNITS else title(name)


def goal_words(name: str) -> str:
    """How a metric is ranked, in words: "lower is better", "closer to 0 is better"..."""
    goal = metrics.get(name).attributes["goal"]
    if goal in ("higher", "lower"):
        return f"{goal} is better"
    return f"closer to {REFERENCE_METHOD if goal == 'retrain' else format(goal, 'g')} is better"


def reference_row(rows: list[dict]) -> dict | None:
    """The table's row of `REFERENCE_METHOD` (one without a step cap or budget first, then
    by label), None where the table has none."""
    candidates = [row for row in rows if row["method"] == REFERENCE_METHOD]
    def limited(row):
        return any((row["settings"] or {}).get(k) for k in ("max_steps", "budget"))
    return min(candidates, default=None, key=lambda row: (limited(row), row["label"]))


def mean_score(row: dict, name: str, reference: dict | None) -> float | None:
    """The row's mean of metric ``name`` oriented by its goal (higher is better); None where
    the row lacks it, or the goal is "retrain" and the reference row lacks it."""
    stat = row["metrics"].get(name)
    if stat is None:
        return None
    ours = reference["metrics"].get(name) if reference else None
    return orient(metrics.get(name).attributes["goal"], stat["mean"], ours and ours["mean"])


def sort_metric(rows: list[dict]) -> str | None:
    """The first headline metric some row of the table can be scored on: the one a table is
    sorted by."""
    reference = reference_row(rows)
    return next((name for name in headlines()
                 if any(mean_score(row, name, reference) is not None for row in rows)), None)


def table_name(run: dict) -> str:
    """The table a run belongs to (each request of a sequential benchmark is one of its own)."""
    return run["benchmark"] + (f" request {run['request']}" if run.get("request") else "")


def group_key(benchmark: str, method: str, params: dict, settings: dict | None) -> tuple:
    """A row's identity within the leaderboard: runs share a row only if all of it matches."""
    return (benchmark, method, json.dumps(params, sort_keys=True),
            json.dumps(settings, sort_keys=True))


def _setting(value) -> str:
    if isinstance(value, list):  # metric names; none listed means every one
        return "+".join(value) or "all"
    return "none" if value is None else str(value)


def _label(method: str, params: dict, settings: dict | None,
           variants: list[tuple[dict, dict | None]], rounded: bool = False) -> str:
    """The method name, plus the hyperparameters (``ga[lr=0.001]``) and the run settings
    (``ga (max_steps=5)``) that differ between its variants: (params, settings) pairs, settings
    None for runs stored before settings were recorded. ``rounded``: floats to 3 significant
    digits (the terminal's label for tuned values such as lr=0.0012345678)."""
    label = method
    differing = sorted(k for k in params if len({json.dumps(p.get(k)) for p, _ in variants}) > 1)
    if differing:
        label += f"[{','.join(f'{k}={_value(params[k], rounded)}' for k in differing)}]"
    if len({json.dumps(s, sort_keys=True) for _, s in variants}) == 1:
        return label
    if settings is None:
        return label + " (settings not recorded)"
    recorded = [s for _, s in variants if s is not None]
    differing = [k for k in settings if len({json.dumps(s.get(k)) for s in recorded}) > 1]
    if not differing:
        return label
    return f"{label} ({', '.join(f'{k}={_setting(settings[k])}' for k in differing)})"


def _value(value, rounded: bool) -> str:
    return f"{value:.3g}" if rounded and isinstance(value, float) else str(value)


def _latest_per_seed(group: list[dict]) -> list[dict]:
    """One run per seed, the latest (by finish time, then key: never by storage order), in
    seed order: runs with the same settings on one seed (written by other versions, or
    before the settings were recorded) must not count twice."""
    latest = {}
    for run in sorted(group, key=lambda r: (r["seed"], r.get("finished_at") or 0.0, r["key"])):
        latest[run["seed"]] = run
    return list(latest.values())


def leaderboard(runs: list[dict], rank_by: str = "kemeny") -> list[dict]:
    """Rows of {benchmark, method, label, params, settings, seeds, failed, errors, metrics:
    {name: {mean, std, std_of_mean, n, low, high}}, rank, within_noise_of_best,
    paired_seeds}, sorted by benchmark, then by rank (so that row order and the Rank column
    agree), then, for rows without a rank, by the table's sort metric (best first, missing
    last), then by label. A row holds one run per seed (`_latest_per_seed`); ``failed``
    counts its seeds whose run failed. ``rank``, ``within_noise_of_best`` and
    ``paired_seeds`` are explained in `_rank_table`."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        groups[group_key(table_name(run), run["method"], run["params"],
                         run.get("settings"))].append(run)
    variants: dict[tuple, list[tuple]] = defaultdict(list)
    for benchmark, method, params, settings in groups:
        variants[(benchmark, method)].append((json.loads(params), json.loads(settings)))
    rows, per_seed = [], {}
    for key in sorted(groups):  # rows, hence rank ties, in an order of their contents
        benchmark, method, params_json, settings_json = key
        params, settings = json.loads(params_json), json.loads(settings_json)
        group = _latest_per_seed(groups[key])
        finished = [r for r in group if r["status"] == "finished"]
        values: dict[str, list[float]] = defaultdict(list)
        by_seed: dict[str, dict[int, float]] = defaultdict(dict)
        for run in finished:
            metrics = dict(run["metrics"])
            # the unlearning time and cost are columns of every run, metrics only where computed
            metrics["unlearn_seconds"] = run.get("unlearn_seconds")
            if run.get("cost_fraction") is not None:
                metrics["cost_fraction"] = run["cost_fraction"]
            for name, value in metrics.items():
                if value is not None and math.isfinite(value):
                    values[name].append(value)
                    by_seed[name][run["seed"]] = value
        row = {"benchmark": benchmark, "method": method,
               "label": _label(method, params, settings, variants[(benchmark, method)]),
               "params": params, "settings": settings, "seeds": [r["seed"] for r in finished],
               "failed": len(group) - len(finished),
               "errors": sorted({r["error"] for r in group if r["error"]}),
               "metrics": {name: seed_summary(v) for name, v in sorted(values.items())}}
        rows.append(row)
        per_seed[(benchmark, row["label"])] = by_seed
    places = {}
    for benchmark in dict.fromkeys(row["benchmark"] for row in rows):
        mine = [row for row in rows if row["benchmark"] == benchmark]
        metric, reference = sort_metric(mine), reference_row(mine)
        _rank_table(mine, per_seed, rank_by, metric, reference)
        places.update({id(row): _place(row, metric, reference) for row in mine})
    return sorted(rows, key=lambda row: (row["benchmark"], *places[id(row)]))


def _place(row: dict, metric: str | None, reference: dict | None) -> tuple:
    """A row's place in its table: by rank, then (unranked rows) by the sort metric's
    oriented mean, best first, missing last, then by label."""
    score = mean_score(row, metric, reference) if metric else None
    position = row["rank"]["position"] if row["rank"] else math.inf
    return position, score is None, -(score or 0.0), row["label"]


def _oriented_seeds(row: dict, name: str, per_seed: dict, reference: dict | None) -> dict:
    """{seed: the row's value of metric ``name`` on that seed, oriented by its goal} (a
    "retrain" goal compares with the reference row's value on the same seed)."""
    seeds = per_seed[(row["benchmark"], row["label"])].get(name, {})
    theirs = per_seed[(reference["benchmark"], reference["label"])].get(name, {}) \
        if reference else {}
    goal = metrics.get(name).attributes["goal"]
    scores = {seed: orient(goal, value, theirs.get(seed)) for seed, value in seeds.items()}
    return {seed: score for seed, score in scores.items() if score is not None}


def _rank_table(rows: list[dict], per_seed: dict, rank_by: str, metric: str | None,
                reference: dict | None) -> None:
    """Set ``rank`` and ``within_noise_of_best`` on one benchmark's rows (``metric``: the
    table's sort metric; ``reference``: its `reference_row`).

    rank = {by, position, criteria, of}: the row's place (1 = best) in the ``rank_by``
    aggregation (`stats.ranking`) of the per-seed rankings on the table's headline metrics:
    one criterion per (metric, seed), scores oriented by the metric's registered goal (a
    "retrain" goal by the distance to the reference row's value on that seed: without a
    reference row, or on a seed it lacks, no criterion), a row missing a seed compared on
    the others; ``criteria`` of ``of`` are the criteria it was ranked on. None where fewer
    than two rows have a headline metric (nothing to rank), or for a row ranked on no
    criterion.

    within_noise_of_best: whether the row's oriented sort-metric values over seeds are
    within noise of the best row's, the first in the table's order (`_place`) with the sort
    metric (`stats.uncertainty.within_noise`: paired t-test over the shared seeds, p ≥ 0.05);
    None for the best row, rows without the sort metric, and rows sharing fewer than
    `MIN_PAIRED_SEEDS` seeds with the best (a t-test on 2 pairs has one degree of freedom:
    its p-value says next to nothing). paired_seeds: the number of seeds shared with the
    best row (None where within_noise_of_best is not judged for that reason)."""
    table = {row["label"]: {(name, seed): score for name in headlines()
                            for seed, score in _oriented_seeds(row, name, per_seed,
                                                               reference).items()}
             for row in rows}
    ranked = {label: cells for label, cells in table.items() if cells}
    counts = criteria_counts(ranked)
    order = aggregate_order(ranked, rank_by) if len(ranked) >= 2 else []
    total = len(ranked_criteria(ranked))
    for row in rows:
        ranked_on = counts.get(row["label"], 0)
        row["rank"] = ({"by": rank_by, "position": order.index(row["label"]) + 1,
                        "criteria": ranked_on, "of": total} if order and ranked_on else None)
        row["within_noise_of_best"] = row["paired_seeds"] = None

    if metric is None:
        return
    scored = [row for row in rows if mean_score(row, metric, reference) is not None]
    best = min(scored, key=lambda row: _place(row, metric, reference))

    def oriented(row):
        return _oriented_seeds(row, metric, per_seed, reference)

    for row in scored:
        if row is not best:
            row["paired_seeds"] = len(set(oriented(best)) & set(oriented(row)))
            if row["paired_seeds"] >= MIN_PAIRED_SEEDS:
                row["within_noise_of_best"] = within_noise(oriented(best), oriented(row))


def to_json(rows: list[dict]) -> str:
    return json.dumps(rows, indent=1)


def to_csv(rows: list[dict]) -> str:
    """One line per row; per metric its mean, seed std and bootstrap interval
    (``<metric>_ci_low``/``_ci_high``, named apart from metrics stored with their own
    per-run interval as ``<metric>_low``/``_high``)."""
    names = sorted({name for row in rows for name in row["metrics"]})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["benchmark", "method", "label", "params", "seeds", "failed", "rank",
                     "rank_criteria", "within_noise_of_best"]
                    + [f"{n}_{s}" for n in names for s in ("mean", "std", "ci_low", "ci_high")])
    for row in rows:
        rank = row.get("rank")
        noise = row.get("within_noise_of_best")
        cells = [row["benchmark"], row["method"], row["label"], json.dumps(row["params"]),
                 len(row["seeds"]), row["failed"], rank["position"] if rank else "",
                 rank["criteria"] if rank else "", "" if noise is None else int(noise)]
        for name in names:
            stat = row["metrics"].get(name)
            cells += [stat["mean"], stat["std"], stat["low"], stat["high"]] if stat else [""] * 4
        writer.writerow(cells)
    return out.getvalue()


def format_cell(stat: dict | None) -> str:
    """mean±std, and under it the bootstrap interval [low, high], where there are 2 seeds or
    more; the mean alone for one seed."""
    if stat is None:
        return "—"
    # p-values such as TOFU's forget quality span many orders of magnitude
    form = ".1e" if 0 < abs(stat["mean"]) < 0.01 else ".2f"
    if stat["n"] > 1:
        return (f"{stat['mean']:{form}}±{stat['std']:{form}}\n"
                f"[{stat['low']:{form}}, {stat['high']:{form}}]")
    return f"{stat['mean']:{form}}"


def format_rank(row: dict) -> str:
    """The position, "≈" when within noise of the best row, and "(k/K)" when the row was
    ranked on fewer than all of the table's criteria."""
    rank = row.get("rank")
    if rank is None:
        return "—"
    text = str(rank["position"]) + (" ≈" if row.get("within_noise_of_best") else "")
    return text + (f" ({rank['criteria']}/{rank['of']})" if rank["criteria"] < rank["of"] else "")


def render(rows: list[dict], console) -> None:
    """Print one rich table per benchmark, with the footnotes its marks need."""
    from rich.markup import escape
    from rich.table import Table

    for benchmark in dict.fromkeys(row["benchmark"] for row in rows):
        mine = [row for row in rows if row["benchmark"] == benchmark]
        shown = [name for name in columns() if any(name in row["metrics"] for row in mine)]
        metric = sort_metric(mine)
        ranked = any(row.get("rank") for row in mine)
        if ranked:
            sorted_by = f"; sorted by {' + '.join(map(title, ranked_headlines(mine)))} rank"
        else:
            sorted_by = f"; sorted by {title(metric)}, {goal_words(metric)}" if metric else ""
        labels, legend = _terminal_labels(mine)
        table = Table(title=f"{escape(benchmark)} (mean ± std over seeds{sorted_by})")
        table.add_column("Method", no_wrap=True)
        table.add_column("Seeds", justify="right")
        if ranked:
            table.add_column("Rank", justify="right", no_wrap=True)
        for name in shown:
            table.add_column(heading(name), justify="right", no_wrap=True)
        for row in mine:
            seeds = str(len(row["seeds"])) + (f" ({row['failed']} failed)" if row["failed"] else "")
            # Labels such as ga[lr=0.001] would otherwise be read as rich markup and lose
            # their brackets, making variants indistinguishable.
            table.add_row(escape(labels[id(row)]), seeds, *([format_rank(row)] if ranked else []),
                          *(escape(format_cell(row["metrics"].get(name))) for name in shown))
        console.print(table)
        for line in [*legend, *_footnotes(mine, metric, ranked)]:
            console.print(f"  {line}", markup=False, highlight=False)
        for row in mine:
            if row["errors"]:
                console.print(f"  {row['label']} failed: {'; '.join(row['errors'])}", markup=False,
                              highlight=False)


def _terminal_labels(rows: list[dict]) -> tuple[dict[int, str], list[str]]:
    """One table's labels as the terminal shows them ({id(row): label}), and the legend lines
    they need: hyperparameters rounded to 3 significant digits; a label still longer than
    `MAX_LABEL`, or one the rounding made ambiguous, becomes "METHOD #k" with its full label
    in the legend. (JSON, CSV and the HTML report keep the full label.)"""
    shown = {}
    for row in rows:
        variants = [(r["params"], r["settings"]) for r in rows if r["method"] == row["method"]]
        shown[id(row)] = _label(row["method"], row["params"], row["settings"], variants,
                                rounded=True)
    taken = Counter(shown.values())
    legend, numbered = [], Counter()
    for row in rows:
        if len(shown[id(row)]) > MAX_LABEL or taken[shown[id(row)]] > 1:
            numbered[row["method"]] += 1
            shown[id(row)] = f"{row['method']} #{numbered[row['method']]}"
            legend.append(f"{shown[id(row)]}: {row['label']}")
    return shown, legend


def ranked_headlines(rows: list[dict]) -> list[str]:
    """The headline metrics the rows were ranked on: those measured, less those whose goal
    is "retrain" where the table has no reference row to compare with (`unranked`)."""
    left_out = unranked(rows)
    return [name for name in headlines()
            if any(name in row["metrics"] for row in rows) and name not in left_out]


def unranked(rows: list[dict]) -> list[str]:
    """The measured headline metrics whose goal is "retrain" that the table cannot rank on:
    it has no `REFERENCE_METHOD` row measuring them."""
    reference = reference_row(rows)
    return [name for name in headlines()
            if metrics.get(name).attributes["goal"] == "retrain"
            and any(name in row["metrics"] for row in rows)
            and (reference is None or name not in reference["metrics"])]


def _footnotes(rows: list[dict], metric: str | None, ranked: bool) -> list[str]:
    lines = []
    if any(stat["n"] > 1 for row in rows for stat in row["metrics"].values()):
        lines.append("[low, high]: 95% bootstrap interval of the mean over seeds.")
    if ranked:
        by = next(row["rank"]["by"] for row in rows if row.get("rank"))
        criteria = ", ".join(f"{title(name)} ({goal_words(name)})"
                             for name in ranked_headlines(rows))
        partial = any(row["rank"] and row["rank"]["criteria"] < row["rank"]["of"] for row in rows)
        lines.append(f"Rank (1 = best): {RANKING_NAMES[by]} of the per-seed rankings on "
                     f"{criteria}" + ("; (k/K): ranked on k of the table's K metric × seed "
                                      "rankings (seeds missing)." if partial else "."))
    left_out = unranked(rows)
    if left_out:
        lines.append(f"Not ranked on {', '.join(map(title, left_out))} (closer to "
                     f"{REFERENCE_METHOD} is better): no {REFERENCE_METHOD} run measured "
                     f"{'it' if len(left_out) == 1 else 'them'}; add --methods "
                     f"{REFERENCE_METHOD}.")
    if any(row["within_noise_of_best"] for row in rows):
        lines.append(f"≈: within noise of the best row on {title(metric)} (paired t-test over "
                     f"the seeds shared with it, at least {MIN_PAIRED_SEEDS}, p ≥ 0.05).")
    if any(row["paired_seeds"] is not None and row["paired_seeds"] < MIN_PAIRED_SEEDS
           for row in rows):
        lines.append(f"Too few seeds to tell rows within noise of the best (≈): rows sharing "
                     f"fewer than {MIN_PAIRED_SEEDS} seeds with it are not compared; run "
                     f"--seeds {MIN_PAIRED_SEEDS} or more.")
    return lines
