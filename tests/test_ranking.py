"""Rank aggregation: mean rank and Borda on hand-computed tables, Kemeny against a brute force
over permutations written here, and the approximation used beyond the exact limit."""
import itertools
import math

import numpy as np
import pytest

from unlearnbench.stats.ranking import (aggregate_order, borda, criteria_counts, kemeny,
                                        mean_rank)

# c1 ranks A 1, B 2, C 3; c2 ranks B 1, C 2, A 3; c3 ties A and B (1.5 each), C missing.
SPARSE = {"A": {"c1": 3.0, "c2": 1.0, "c3": 2.0},
          "B": {"c1": 2.0, "c2": 3.0, "c3": 2.0},
          "C": {"c1": 1.0, "c2": 2.0}}


def test_mean_rank_by_hand():
    ranks, counts = mean_rank(SPARSE)
    assert ranks == pytest.approx({"A": (1 + 3 + 1.5) / 3, "B": (2 + 1 + 1.5) / 3,
                                   "C": (3 + 2) / 2})
    assert counts == {"A": 3, "B": 3, "C": 2}
    assert aggregate_order(SPARSE, "mean") == ["B", "A", "C"]


def test_a_criterion_with_one_system_ranks_nobody():
    table = {"A": {"c1": 1.0, "solo": 9.0}, "B": {"c1": 2.0}}
    assert mean_rank(table) == ({"A": 2.0, "B": 1.0}, {"A": 1, "B": 1})
    assert criteria_counts(table) == {"A": 1, "B": 1}
    assert math.isnan(mean_rank({"A": {"x": 1.0}, "B": {"y": 1.0}})[0]["A"])


def test_borda_by_hand():
    # Pairwise: A-B 1.5 each (c1 A, c2 B, c3 tie); A-C 1 each (c1 A, c2 C); B-C 2 to 0.
    # Shares of comparisons won: A 2.5/5, B 3.5/5, C 1/4.
    assert borda(SPARSE) == pytest.approx({"A": 0.5, "B": 0.7, "C": 0.25})
    assert aggregate_order(SPARSE, "borda") == ["B", "A", "C"]


def test_borda_on_a_complete_table_is_the_classical_count_scaled():
    # a: Z 1st, Y 2nd, X 3rd; b: X and Y tie (1.5), Z 3rd. Classical Borda points (n − rank):
    # X 0 + 1.5, Y 1 + 1.5, Z 2 + 0; maximum (n − 1) × criteria = 4.
    table = {"X": {"a": 1.0, "b": 5.0}, "Y": {"a": 2.0, "b": 5.0}, "Z": {"a": 3.0, "b": 0.0}}
    assert borda(table) == pytest.approx({"X": 1.5 / 4, "Y": 2.5 / 4, "Z": 2.0 / 4})


def disagreements(order, table):
    """Kendall-tau distance of an order to the criteria, counted directly: for each pair
    placed i before j and each criterion both have, 1 if it prefers j, ½ if it ties them."""
    total = 0.0
    for a, i in enumerate(order):
        for j in order[a + 1:]:
            for criterion in set(table[i]) & set(table[j]):
                if sum(criterion in cells for cells in table.values()) < 2:
                    continue
                x, y = table[i][criterion], table[j][criterion]
                total += 1.0 if y > x else 0.5 if y == x else 0.0
    return total


def brute_force(table):
    return min(disagreements(list(order), table) for order in itertools.permutations(table))


def random_profile(rng, systems, criteria, missing=0.25):
    """Integer scores 0..4 (so ties happen), each cell missing with probability ``missing``."""
    return {f"s{i}": {f"c{k}": float(rng.integers(0, 5)) for k in range(criteria)
                      if rng.random() >= missing} for i in range(systems)}


@pytest.mark.parametrize("seed", range(12))
def test_kemeny_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    table = random_profile(rng, systems=int(rng.integers(3, 8)), criteria=int(rng.integers(2, 7)),
                           missing=0.0 if seed < 3 else 0.3)
    order, cost = kemeny(table)
    assert sorted(order) == sorted(table)
    assert cost == disagreements(order, table)
    assert cost == brute_force(table)


def test_kemeny_by_hand():
    # Every order of SPARSE costs 2.5 except those putting C before B (B beats C on both
    # criteria they share: 2 more disagreements).
    order, cost = kemeny(SPARSE)
    assert cost == 2.5 and order.index("B") < order.index("C")


BORDA_IS_NOT_CONDORCET = (
    # 3 criteria say A > B > C, 2 say B > C > A. Pairwise majorities: A > B 3-2, A > C 3-2,
    # B > C 5-0, so A, B, C is the Condorcet (and Kemeny) order, cost 2 + 2 + 0 = 4; Borda
    # puts B first (B wins 3 + 5 = 8 comparisons of 10, A 6).
    {"A": {f"c{k}": 3.0 if k < 3 else 1.0 for k in range(5)},
     "B": {f"c{k}": 2.0 if k < 3 else 3.0 for k in range(5)},
     "C": {f"c{k}": 1.0 if k < 3 else 2.0 for k in range(5)}})


def test_approximation_finds_the_condorcet_order_borda_misses():
    table = BORDA_IS_NOT_CONDORCET
    assert aggregate_order(table, "borda") == ["B", "A", "C"]
    assert kemeny(table, exact_limit=0) == (["A", "B", "C"], 4.0)  # the approximation
    assert kemeny(table) == (["A", "B", "C"], 4.0)  # exact


def test_approximation_recovers_a_condorcet_order_on_many_systems():
    # 12 systems in a hidden order; criterion k swaps the adjacent pair (2k, 2k + 1) and
    # misses one system, so every pair keeps a strict majority for the hidden order.
    truth = [f"m{i:02d}" for i in range(12)]
    table = {name: {} for name in truth}
    for k in range(6):
        order = list(truth)
        order[2 * k], order[2 * k + 1] = order[2 * k + 1], order[2 * k]
        for place, name in enumerate(order):
            if place != (5 * k) % 12:
                table[name][f"c{k}"] = float(-place)
    order, cost = kemeny(table)  # 12 > exact_limit: the approximation
    assert order == truth and cost == disagreements(truth, table)


def test_approximation_is_never_worse_than_borda_and_mostly_exact():
    equal = 0
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        table = random_profile(rng, systems=int(rng.integers(4, 8)), criteria=5)
        order, cost = kemeny(table, exact_limit=0)
        assert cost == disagreements(order, table)
        assert cost <= disagreements(aggregate_order(table, "borda"), table)
        equal += cost == kemeny(table)[1]
    assert equal >= 36  # local optima are rare on profiles this small


def test_aggregate_order_rejects_unknown_names():
    with pytest.raises(ValueError, match="kemeny, borda or mean"):
        aggregate_order(SPARSE, "median")
