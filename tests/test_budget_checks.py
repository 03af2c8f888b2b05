"""An infinite budget is refused in one line, by planning before anything trains and by
``unlearn`` (0, negative and non-numeric budgets: tests/test_budget_frontier.py)."""
import math

import pytest

import unlearnbench
from unlearnbench.cache import ModelCache
from unlearnbench.errors import UserError
from unlearnbench.sweep.jobs import plan
from unlearnbench.unlearning import unlearn


@pytest.mark.parametrize("budget", ["inf", "1e400"])
def test_an_infinite_budget_is_refused_in_one_line(budget):
    with pytest.raises(UserError, match="--budget") as info:
        plan(["digits-random10"], ["ga"], [0], budgets=[budget])
    assert "\n" not in str(info.value)


def test_unlearn_refuses_an_infinite_budget_in_one_line(tmp_path):
    scenario = unlearnbench.scenario("digits-random10", seed=0, cache=ModelCache(tmp_path))
    with pytest.raises(UserError, match="budget") as info:
        unlearn(scenario, "ga", budget=math.inf)
    assert "\n" not in str(info.value)
