"""The cost frontier (``show --frontier`` and the HTML report's frontier plot): each
leaderboard row's cost, as a fraction of the retrained reference's (examples passed forward
and backward, ``train.counting_examples``), against its table's headline metric (Avg. Gap for
classification, forget quality for language), and which rows are Pareto-optimal: no other row
costs as little or less and scores as well or better, one of the two strictly. The original
model sits at cost 0 and the retrained reference at cost 1."""
from __future__ import annotations

from .leaderboard import goal_words, heading, mean_score, reference_row, sort_metric

# A run's cost is measured, its budget given: a cost above the budget by more than this share
# is one the method does not bound (no optimizer steps to stop, e.g. the Fisher diagonal).
OVER_BUDGET = 1e-9


def pareto(points: list[tuple[float, float]]) -> list[bool]:
    """Whether each (cost, score) point is Pareto-optimal, lower cost and higher score being
    better: no other point is at least as good on both and better on one."""
    return [not any(c <= cost and s >= score and (c < cost or s > score) for c, s in points)
            for cost, score in points]


def frontier(rows: list[dict]) -> list[dict]:
    """One point per leaderboard row that has both a cost and the table's headline metric:
    {benchmark, label, method, budget, cost, metric, value, score (oriented: higher is
    better), pareto, over_budget}, each benchmark's points by cost, then best score first."""
    points = []
    for benchmark in dict.fromkeys(row["benchmark"] for row in rows):
        mine = [row for row in rows if row["benchmark"] == benchmark]
        metric, reference = sort_metric(mine), reference_row(mine)
        found = []
        for row in mine:
            cost = row["metrics"].get("cost_fraction")
            score = mean_score(row, metric, reference) if metric else None
            if cost is None or score is None:
                continue
            budget = (row["settings"] or {}).get("budget")
            found.append({"benchmark": benchmark, "label": row["label"],
                          "method": row["method"], "budget": budget, "cost": cost["mean"],
                          "metric": metric, "value": row["metrics"][metric]["mean"],
                          "score": score,
                          "over_budget": budget is not None
                          and cost["mean"] > budget * (1 + OVER_BUDGET)})
        for point, optimal in zip(found, pareto([(p["cost"], p["score"]) for p in found])):
            point["pareto"] = optimal
        points += sorted(found, key=lambda p: (p["cost"], -p["score"], p["label"]))
    return points


def render_frontier(points: list[dict], console) -> None:
    """One rich table per benchmark: cost, headline metric, budget and the Pareto mark."""
    from rich.markup import escape
    from rich.table import Table

    for benchmark in dict.fromkeys(p["benchmark"] for p in points):
        mine = [p for p in points if p["benchmark"] == benchmark]
        metric = mine[0]["metric"]
        table = Table(title=f"{escape(benchmark)} cost frontier ({heading(metric)}, "
                            f"{goal_words(metric)}; cost: examples passed forward and "
                            "backward / the retrain's)")
        for name in ("Method", "Budget", "Cost / retrain", heading(metric), "Pareto"):
            table.add_column(name, justify="left" if name == "Method" else "right",
                             no_wrap=True)
        for p in mine:
            table.add_row(escape(p["label"]), "—" if p["budget"] is None else f"{p['budget']:g}",
                          f"{p['cost']:.3f}" + (" (over budget)" if p["over_budget"] else ""),
                          f"{p['value']:.3f}", "★" if p["pareto"] else "")
        console.print(table)
        console.print("  ★ Pareto-optimal: no other row is as cheap or cheaper and as good or "
                      "better, one of them strictly. Mean over seeds.", markup=False,
                      highlight=False)
