"""Rank aggregation across criteria (metrics, seeds, benchmarks) that tolerates missing cells.

Input: a table {system: {criterion: score}}, higher is better (callers orient scores
first, with `orient`), a cell missing where a system was not measured on a criterion.
Averaging raw scores across criteria mixes units and lets one criterion dominate; "What are
the best systems? New perspectives on NLP benchmarking" (Colombo et al. 2022) argues for
aggregating the per-criterion *rankings* instead, Kemeny consensus first. ONEBench (Ghosh et al. 2024)
makes this work on sparse tables by comparing two systems only on the criteria both have.

Three aggregations:
- `mean_rank`: mean over criteria of each system's rank (1 = best, ties averaged).
- `borda`: Borda count from pairwise comparisons, as the share of comparisons won.
- `kemeny`: the order with the fewest pairwise disagreements with the criteria.

A criterion on which fewer than two systems were measured ranks nobody and is skipped by all
three (otherwise a lone system would collect a free first place)."""
from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping

import numpy as np
from scipy.stats import rankdata

Table = Mapping[str, Mapping[Hashable, float]]


def orient(goal, value: float, reference: float | None = None) -> float | None:
    """A metric's value as a score where higher is better, by its registered goal: "higher"
    keeps it, "lower" negates it, "retrain" scores −|value − reference| (``reference``: the
    retrained model's value; None without it), and a number t scores −|value − t|."""
    if goal == "higher":
        return value
    if goal == "lower":
        return -value
    if goal == "retrain":
        return None if reference is None else -abs(value - reference)
    return -abs(value - goal)


def ranked_criteria(table: Table) -> list:
    """Criteria on which at least two systems were measured, in first-seen order."""
    seen: dict = {}
    for cells in table.values():
        for criterion in cells:
            seen[criterion] = seen.get(criterion, 0) + 1
    return [criterion for criterion, count in seen.items() if count >= 2]


def criteria_counts(table: Table) -> dict[str, int]:
    """For each system, the number of criteria it was ranked on (criteria with ≥ 2 systems)."""
    criteria = set(ranked_criteria(table))
    return {system: len(criteria & set(cells)) for system, cells in table.items()}


def mean_rank(table: Table) -> tuple[dict[str, float], dict[str, int]]:
    """Mean rank of each system over the criteria it was measured on (rank 1 = best score on
    that criterion, tied scores share the average of their ranks, as
    ``scipy.stats.rankdata``), and the number of criteria each mean is over. A system ranked
    on no criterion gets nan. Lower is better. Missing cells are skipped, so a system's
    ranks come from fewer, possibly easier or harder, comparisons: read the count."""
    ranks: dict[str, list[float]] = {system: [] for system in table}
    for criterion in ranked_criteria(table):
        present = [system for system in table if criterion in table[system]]
        for system, rank in zip(present, rankdata([-table[s][criterion] for s in present])):
            ranks[system].append(float(rank))
    return ({system: float(np.mean(r)) if r else float("nan") for system, r in ranks.items()},
            {system: len(r) for system, r in ranks.items()})


def preference_matrix(table: Table) -> tuple[list[str], np.ndarray]:
    """The systems and P, where P[i, j] = the number of criteria, among those both i and j
    were measured on, on which i scores higher than j (a tie counts ½ to each side)."""
    systems = list(table)
    preferences = np.zeros((len(systems), len(systems)))
    for criterion in ranked_criteria(table):
        present = [i for i, system in enumerate(systems) if criterion in table[system]]
        scores = np.array([table[systems[i]][criterion] for i in present])
        wins = (scores[:, None] > scores[None, :]) + 0.5 * (scores[:, None] == scores[None, :])
        np.fill_diagonal(wins, 0.0)
        preferences[np.ix_(present, present)] += wins
    return systems, preferences


def borda(table: Table) -> dict[str, float]:
    """Borda count from pairwise comparisons: for system i, the share of its comparisons
    won, Σ_j P[i, j] / Σ_j (P[i, j] + P[j, i]) over the criteria both i and j have (ties
    half a win). On a complete table this is the classical Borda count (Σ over criteria of
    the number of systems ranked below i, ties averaged) divided by its maximum
    (n − 1) × criteria, so it orders systems the same way; on a sparse table the division
    keeps a system measured on fewer criteria from losing points it could never earn.
    Higher is better; a system compared with nobody gets nan."""
    systems, preferences = preference_matrix(table)
    comparisons = (preferences + preferences.T).sum(axis=1)
    won = preferences.sum(axis=1)
    return {system: float(won[i] / comparisons[i]) if comparisons[i] else float("nan")
            for i, system in enumerate(systems)}


def kendall_cost(order: list[int], preferences: np.ndarray) -> float:
    """Total Kendall-tau distance of an order (indices, best first) to the criteria's
    rankings: the sum over pairs placed i before j of P[j, i], the criteria preferring j."""
    order = np.asarray(order, dtype=int)
    return float(np.triu(preferences[np.ix_(order, order)].T, k=1).sum())


def _exact_order(preferences: np.ndarray) -> list[int]:
    """Brute force over every permutation, vectorised: position matrices of all n! orders
    at once (n! × n × n booleans, 2.6 M for n = 8)."""
    n = len(preferences)
    permutations = np.array(list(itertools.permutations(range(n))), dtype=np.int64)
    positions = np.argsort(permutations, axis=1)  # positions[p, i] = place of system i
    before = positions[:, :, None] < positions[:, None, :]  # i placed before j
    costs = (before * preferences.T[None]).sum(axis=(1, 2))
    return permutations[int(np.argmin(costs))].tolist()


def _local_search(order: list[int], preferences: np.ndarray) -> list[int]:
    """Improve an order by moving one system to another place (insertions, which include
    adjacent swaps) while some move lowers the Kendall cost, taking the best move each time.
    Moving the system at position a to position b < a puts it ahead of those in [b, a):
    the cost changes by Σ (P[x, e] − P[e, x]) over them; moving it to b > a puts it behind
    those in (a, b], with the opposite sign."""
    order = list(order)
    while True:
        best_delta, best_move = -1e-12, None
        for a, element in enumerate(order):
            gain = preferences[order, element] - preferences[element, order]  # by position
            deltas = np.concatenate([np.cumsum(gain[:a][::-1]),  # to a-1, a-2, ..., 0
                                     -np.cumsum(gain[a + 1:])])  # to a+1, ..., n-1
            targets = np.concatenate([np.arange(a - 1, -1, -1), np.arange(a + 1, len(order))])
            if len(deltas) and deltas.min() < best_delta:
                k = int(np.argmin(deltas))
                best_delta, best_move = float(deltas[k]), (a, int(targets[k]))
        if best_move is None:
            return order
        a, b = best_move
        order.insert(b, order.pop(a))


def kemeny(table: Table, exact_limit: int = 8) -> tuple[list[str], float]:
    """Kemeny consensus: the order of systems (best first) minimising the total Kendall-tau
    distance to the per-criterion rankings, and that distance. With missing cells the
    distance counts, for each pair of systems, only the criteria both were measured on
    (ONEBench): cost = Σ over pairs placed i before j of P[j, i] (`preference_matrix`).

    Up to ``exact_limit`` systems the order is exact (brute force over all permutations;
    among equal-cost orders, which missing cells make common, the lexicographically first
    when systems are listed in Borda order, so pairs no criterion compares follow Borda).
    Beyond, a documented approximation: start from the Borda order and apply the best
    single move (one system moved to another place) until none lowers the cost. The result
    is never worse than the Borda order, equals the exact answer when the pairwise majority
    is a strict linear order (a Condorcet order: then some adjacent pair is out of majority
    order until the order is reached), and is a local optimum in general."""
    systems, preferences = preference_matrix(table)
    points = borda(table)
    by_borda = sorted(range(len(systems)),
                      key=lambda i: -np.nan_to_num(points[systems[i]], nan=-1.0))
    if len(systems) <= exact_limit:
        # permuting the Borda order: the first optimal order found is the closest to it
        order = [by_borda[i] for i in _exact_order(preferences[np.ix_(by_borda, by_borda)])]
    else:
        order = _local_search(by_borda, preferences)
    return [systems[i] for i in order], kendall_cost(order, preferences)


def aggregate_order(table: Table, how: str) -> list[str]:
    """The systems best first by ``how``: "mean" (mean rank, lower first), "borda" (share of
    pairwise wins, higher first) or "kemeny". Equal scores keep the table's order; systems
    ranked on no criterion come last."""
    if how == "kemeny":
        return kemeny(table)[0]
    if how == "mean":
        key = mean_rank(table)[0]
    elif how == "borda":
        key = {s: -v for s, v in borda(table).items()}
    else:
        raise ValueError(f"unknown rank aggregation {how!r}; choose kemeny, borda or mean")
    return sorted(table, key=lambda s: (np.isnan(key[s]), np.nan_to_num(key[s])))
