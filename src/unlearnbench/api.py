"""The public functions: build a scenario, unlearn, evaluate, run a grid.

    >>> import unlearnbench as ub
    >>> scenario = ub.scenario("digits-random10", seed=0)
    >>> model, timings = ub.unlearn(scenario, "finetune", {"epochs": 3})
    >>> ub.evaluate(scenario, model, timings=timings)["avg_gap"].value
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
from torch import nn

from .errors import Diverged, UserError
from .methods.base import UnlearnContext
from .metrics.evaluation import MetricResult, evaluate
from .registry import methods
from .scenarios import Scenario, build_scenario
from .specs import resolve_params
from .train import StepBudget, precision, synchronize, weights_finite

scenario = build_scenario


def check_supports(method: str, scenario: Scenario) -> None:
    """Refuse a method whose task or data (its ``needs``) the scenario does not have."""
    entry = methods.get(method)
    tasks = entry.attributes.get("tasks", ())
    if scenario.task.name not in tasks:
        raise UserError(f"method {method!r} does not support {scenario.task.name} tasks "
                        f"(it supports: {', '.join(tasks)})")
    missing = sorted(set(entry.attributes.get("needs", ())) - scenario.available_data())
    if missing:
        raise UserError(missing_data_message(method, missing, scenario.spec))


def missing_data_message(method: str, missing: list[str], spec) -> str:
    able = [e.name for e in methods.entries() if spec.task in e.attributes.get("tasks", ())
            and not set(e.attributes.get("needs", ())) & set(missing)]
    return (f"method {method!r} needs {' and '.join(missing)} data, which benchmark "
            f"{spec.name!r} does not give methods; choose one that does without it: "
            f"{', '.join(able)}")


def benchmark_params(spec, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The benchmark's tuned hyperparameters for ``method``, overridden by ``params``."""
    return {**spec.method_params.get(method, {}), **(params or {})}


def unlearn(scenario: Scenario, method: str, params: dict[str, Any] | None = None,
            seed: int | None = None, max_steps: int | None = None,
            start: nn.Module | None = None, observer=None, every: int | None = 1
            ) -> tuple[nn.Module, dict[str, float]]:
    """Run ``method`` on the scenario's original model with its hyperparameters: the method's
    defaults, then the benchmark's tuned values, then ``params``. Returns the unlearned model and the
    timings of the unlearning step alone. Raises ``Diverged`` if its weights end non-finite.

    For a stage of sequential requests, ``start`` is the model the previous request left and
    the method is asked to forget only the stage's new request.

    ``observer(model, step)`` is called every ``every`` optimizer steps with the model being
    unlearned (learning curves, see ``runner.curve_observer``); its time is not counted."""
    entry = methods.get(method)
    check_supports(method, scenario)
    resolved = resolve_params(entry.params, benchmark_params(scenario.spec, method, params), method)
    forget = scenario.newly_forgotten if scenario.newly_forgotten is not None else scenario.forget
    retain = (scenario.retain if scenario.spec.retain_available
              else scenario.retain.subset(np.arange(0), "retain"))  # withheld: nothing to read
    ctx = UnlearnContext(scenario.task, start if start is not None else scenario.original,
                         forget, retain,
                         scenario.spec.recipe, scenario.seed if seed is None else seed,
                         StepBudget(max_steps, observer, every), scenario.cache)
    prepare = entry.attributes.get("prepare")
    if prepare is not None:
        # One-off work that belongs to original training (SISA's shard checkpoints): cached
        # by the method, outside the timing and the step budget.
        prepare(ctx, resolved)
    wall, cpu = time.perf_counter(), time.process_time()
    with precision(ctx.recipe.precision):
        model = entry.obj(ctx, resolved)
    synchronize(scenario.task.device)
    if scenario.spec.recipe.lora_rank:
        from .models.pretrained import merge_lora
        model = merge_lora(model)
    budget = ctx.budget
    timings = {"unlearn_seconds": time.perf_counter() - wall - budget.observer_seconds,
               "unlearn_cpu_seconds": time.process_time() - cpu - budget.observer_cpu_seconds,
               "steps": budget.used}
    if not weights_finite(model):
        raise Diverged("weights became NaN or infinite")
    return model.eval(), timings


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
