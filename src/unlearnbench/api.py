"""The public functions: build a scenario, unlearn, evaluate, delete. A facade: nothing in
the package imports it; each function lives in the module that owns it.

    >>> import unlearnbench as ub
    >>> scenario = ub.scenario("digits-random10", seed=0)
    >>> model, timings = ub.unlearn(scenario, "finetune", {"epochs": 3})
    >>> ub.evaluate(scenario, model, timings=timings)["avg_gap"].value
"""
from __future__ import annotations

from .metrics.evaluation import MetricResult, evaluate
from .scenarios import build_scenario
from .unlearning import Scenario, unlearn

scenario = build_scenario


def delete(model: str, data: str, forget, method: str, out: str, **options) -> dict:
    """A deletion request on a user's own model: unlearn the records ``forget`` names from it
    with ``method``, save the unlearned model and an audit report into ``out``, record the run
    in the store; returns the audit. Options: ``holdout``, ``params``, ``recipe``, ``seed``,
    ``db``, ``retrain``, ``device`` (see ``deletion.workflow.delete``).

    >>> audit = ub.delete(model="net.py:MLP,net.safetensors", data="data.npz",
    ...                   forget=[3, 17], method="ga", out="unlearned", holdout="holdout.npz")
    """
    from .deletion import delete as run_request

    return run_request(model, data, forget, method, out, **options)


__all__ = ["scenario", "build_scenario", "unlearn", "evaluate", "delete", "MetricResult",
           "Scenario"]
