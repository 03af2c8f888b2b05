"""One table ranking methods across every benchmark of the store (`unlearnbench show
--across`): the per-benchmark headline metrics of the leaderboard, aggregated by rank
(`stats.ranking`), tolerating methods that were not run everywhere."""
from __future__ import annotations

import csv
import io
import math
from collections import defaultdict

from ..stats.ranking import aggregate_order, borda, mean_rank, ranked_criteria
from .leaderboard import RANKING_NAMES, headlines, mean_score, reference_row


def across(rows: list[dict], rank_by: str = "kemeny") -> list[dict]:
    """Methods ranked across every benchmark table in ``rows`` (leaderboard rows): one
    criterion per (benchmark, headline metric) pair, a method's score on it the mean over its
    seeds oriented by the metric's goal (a "retrain" goal: the distance to that benchmark's
    `reference_row`). A method (its label: variants of a method are systems of their own)
    missing from a benchmark is compared only where it has cells (ONEBench). Rows of
    {method, position, cells, of, mean_rank, borda}, best first: ``cells`` of ``of``
    criteria ranked on, ``mean_rank`` its mean per-criterion rank, ``borda`` its share of
    pairwise comparisons won (both None for a method sharing no criterion with another);
    ``position`` is its place by ``rank_by``."""
    table: dict[str, dict] = defaultdict(dict)
    references = {benchmark: reference_row([row for row in rows if row["benchmark"] == benchmark])
                  for benchmark in {row["benchmark"] for row in rows}}
    # systems and criteria in an order of their own (not the rows'), which breaks rank ties
    for row in sorted(rows, key=lambda row: (row["label"], row["benchmark"])):
        for name in headlines():
            score = mean_score(row, name, references[row["benchmark"]])
            if score is not None:
                table[row["label"]][(row["benchmark"], name)] = score
    table = dict(table)
    if not table:
        return []
    ranks, counts = mean_rank(table)
    points = borda(table)
    total = len(ranked_criteria(table))
    return [{"method": label, "position": place + 1, "cells": counts[label], "of": total,
             "mean_rank": _finite(ranks[label]), "borda": _finite(points[label])}
            for place, label in enumerate(aggregate_order(table, rank_by))]


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def across_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["method", "position", "cells", "of", "mean_rank",
                                             "borda"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def render_across(rows: list[dict], rank_by: str, console) -> None:
    """Print the table of `across`."""
    from rich.markup import escape
    from rich.table import Table

    of = rows[0]["of"]
    table = Table(title=f"All benchmarks ({RANKING_NAMES[rank_by]} of {of} benchmark × "
                        "headline-metric rankings)")
    for title in ("Rank", "Method", "Cells", "Mean rank", "Borda wins"):
        table.add_column(title, justify="left" if title == "Method" else "right", no_wrap=True)
    for row in rows:
        table.add_row(str(row["position"]), escape(row["method"]), f"{row['cells']}/{of}",
                      "—" if row["mean_rank"] is None else f"{row['mean_rank']:.2f}",
                      "—" if row["borda"] is None else f"{row['borda']:.0%}")
    console.print(table)
    console.print("  Cells: the (benchmark, metric) rankings a method is in; a method missing "
                  "cells is compared only where it has them. Borda wins: share of pairwise "
                  "comparisons won.", markup=False, highlight=False)
