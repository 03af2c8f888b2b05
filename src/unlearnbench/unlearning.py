"""One unlearning run: the scenario it runs on (the splits, the original and the retrained
reference, trained and cached by ``train_cached``) and ``unlearn``, which runs a registered
method on it with its resolved hyperparameters, inside its step budget, timed.

Scenarios are built by ``scenarios.build_scenario``; the public facade is ``api.py``."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from .cache import ModelCache, content_key
from .data import Split
from .errors import Diverged, UserError
from .methods.base import UnlearnContext
from .registry import methods
from .specs import BenchmarkSpec, resolve_params
from .tasks.classification import ClassificationTask
from .train import StepBudget, counting_examples, precision, synchronize, weights_finite

# The data a method may declare in ``needs`` (see ``Scenario.available_data``).
DATA_KINDS = ("forget", "retain", "refusals")


@dataclass
class Scenario:
    spec: BenchmarkSpec
    seed: int
    task: ClassificationTask
    splits: dict[str, Split]
    original: nn.Module
    reference: nn.Module
    original_meta: dict = field(default_factory=dict)
    reference_meta: dict = field(default_factory=dict)
    # Sequential requests: which request this stage is (1-based) and the examples it newly
    # asks to forget; ``forget`` then holds every example requested so far.
    request: int | None = None
    newly_forgotten: Split | None = None
    # Where the scenario's models are cached; methods with cached artefacts of their own
    # (SISA's shard checkpoints) use it too.
    cache: ModelCache | None = None

    @property
    def forget(self) -> Split:
        return self.splits["forget"]

    @property
    def retain(self) -> Split:
        return self.splits["retain"]

    def available_data(self) -> set[str]:
        """What an unlearning method may read here, in the vocabulary of a method's ``needs``:
        the forget set, the retain set (unless withheld), the data set's refusal strings."""
        refusals = getattr(getattr(self.task, "data", None), "refusals", ())
        return ({"forget"} | ({"retain"} if self.spec.retain_available else set())
                | ({"refusals"} if refusals else set()))

    @property
    def retrain_seconds(self) -> float:
        return float(self.reference_meta["train_seconds"])

    @property
    def retrain_examples(self) -> int | None:
        """The retrained reference's cost in the unit of ``train.counting_examples``: the
        recipe's epochs over its training set (None where no reference was trained: a
        deletion request on a user's model)."""
        if "examples" not in self.reference_meta:
            return None
        return self.spec.recipe.epochs * int(self.reference_meta["examples"])


def train_cached(cache: ModelCache, task: ClassificationTask, spec: BenchmarkSpec,
                  train_split: Split, seed: int, role: str) -> tuple[nn.Module, dict]:
    """The model ``task`` trains on ``train_split`` with the spec's recipe and ``seed``, from
    the model cache when it holds one trained so (keyed by data, model, recipe, seed, device
    and training ids), with the metadata of its training (``role`` names what it is for)."""
    # The device is part of the key: a model trained on a GPU is not the CPU's bit for bit
    # (Amnesiac's replay needs that), and its training time is another device's.
    key = content_key({"data": task.fingerprint(), "model": spec.model,
                       "recipe": spec.recipe, "seed": seed, "device": task.device.type,
                       "train_ids": np.asarray(train_split.ids)})

    def train(model):
        wall, cpu = time.perf_counter(), time.process_time()
        task.fit(model, train_split, spec.recipe, seed)
        synchronize(task.device)
        return {"role": role, "benchmark": spec.name, "seed": seed, "examples": len(train_split),
                "train_seconds": time.perf_counter() - wall,
                "train_cpu_seconds": time.process_time() - cpu}

    return cache.get_or_train(key, lambda: task.fresh_model(seed), train)


def method_needs(method: str, params=None) -> set[str]:
    """The data ``method`` reads, in the vocabulary of ``DATA_KINDS``. A method declares
    ``needs`` as a tuple, or as a function of its resolved hyperparameters where one of them
    decides (NPO with ``retain_term="none"`` reads no retain set); ``params`` None means the
    defaults."""
    entry = methods.get(method)
    needs = entry.attributes.get("needs", ())
    if callable(needs):
        needs = needs(params if params is not None else resolve_params(entry.params, {}, method))
    return set(needs)


def check_supports(method: str, scenario: Scenario, params: dict | None = None) -> None:
    """Refuse a method whose task or data (its ``needs`` with the benchmark's hyperparameters
    overridden by ``params``) the scenario does not have."""
    entry = methods.get(method)
    tasks = entry.attributes.get("tasks", ())
    if scenario.task.name not in tasks:
        raise UserError(f"method {method!r} does not support {scenario.task.name} tasks "
                        f"(it supports: {', '.join(tasks)})")
    check_request_kind(method, scenario.spec)
    check_data(method, scenario.spec, scenario.available_data(), params)


def check_request_kind(method: str, spec) -> None:
    """Refuse a method registered ``class_only`` (it erases one whole class) on another request."""
    if methods.get(method).attributes.get("class_only") and spec.forget.kind != "class":
        raise UserError(f"method {method!r} erases one whole class; benchmark {spec.name!r} "
                        f"forgets {spec.forget.kind} examples: use a class request "
                        "(digits-class, mnist-cnn-class)")


def check_data(method: str, spec, available: set[str], params: dict | None = None) -> None:
    resolved = resolve_params(methods.get(method).params,
                              benchmark_params(spec, method, params), method)
    missing = sorted(method_needs(method, resolved) - available)
    if missing:
        raise UserError(missing_data_message(method, missing, spec))


def missing_data_message(method: str, missing: list[str], spec) -> str:
    able = [e.name for e in methods.entries() if spec.task in e.attributes.get("tasks", ())
            and not method_needs(e.name, resolve_params(
                e.params, benchmark_params(spec, e.name, None), e.name)) & set(missing)]
    hint = ""
    if callable(methods.get(method).attributes.get("needs")):
        hint = f", or set {method}'s hyperparameters so that it does (`unlearnbench list methods`)"
    return (f"method {method!r} needs {' and '.join(missing)} data, which benchmark "
            f"{spec.name!r} does not give methods; choose one that does without it: "
            f"{', '.join(able)}{hint}")


def benchmark_params(spec, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The benchmark's tuned hyperparameters for ``method``, overridden by ``params``."""
    return {**spec.method_params.get(method, {}), **(params or {})}


def max_examples(scenario: Scenario, budget: float | None) -> int | None:
    """The examples a ``budget`` (a fraction of the retrained reference's) allows."""
    if budget is None:
        return None
    if not 0 < budget < math.inf:
        raise UserError(f"a budget must be a finite fraction of the retrain cost above 0, "
                        f"got {budget}")
    if scenario.retrain_examples is None:
        raise UserError(f"a budget is a fraction of the retrained reference's cost, and "
                        f"{scenario.spec.name} trains no reference; run without a budget")
    # rounded first: 0.29 × 100 is 28.999999999999996 in floating point
    return math.floor(round(budget * scenario.retrain_examples, 6))


def unlearn(scenario: Scenario, method: str, params: dict[str, Any] | None = None,
            seed: int | None = None, max_steps: int | None = None,
            start: nn.Module | None = None, observer=None, every: int | None = 1,
            budget: float | None = None) -> tuple[nn.Module, dict[str, float]]:
    """Run ``method`` on the scenario's original model with its hyperparameters: the method's
    defaults, then the benchmark's tuned values, then ``params``. Returns the unlearned model and the
    timings of the unlearning step alone. Raises ``Diverged`` if its weights end non-finite.

    For a stage of sequential requests, ``start`` is the model the previous request left and
    the method is asked to forget only the stage's new request.

    ``observer(model, step)`` is called every ``every`` optimizer steps with the model being
    unlearned (learning curves, see ``sweep.jobs.curve_observer``); its time is not counted.

    ``budget``: the examples the method may pass forward and backward, as a fraction of the
    retrained reference's (``Scenario.retrain_examples``); the timings hold the examples it
    did pass (``train.counting_examples``) and their fraction of the reference's."""
    entry = methods.get(method)
    check_supports(method, scenario, params)
    resolved = resolve_params(entry.params, benchmark_params(scenario.spec, method, params), method)
    forget = scenario.newly_forgotten if scenario.newly_forgotten is not None else scenario.forget
    retain = (scenario.retain if scenario.spec.retain_available
              else scenario.retain.subset(np.arange(0), "retain"))  # withheld: nothing to read
    ctx = UnlearnContext(scenario.task, start if start is not None else scenario.original,
                         forget, retain,
                         scenario.spec.recipe, scenario.seed if seed is None else seed,
                         StepBudget(max_steps, observer, every, max_examples(scenario, budget)),
                         scenario.cache)
    prepare = entry.attributes.get("prepare")
    if prepare is not None:
        # One-off work that belongs to original training (SISA's shard checkpoints): cached
        # by the method, outside the timing and the step budget.
        prepare(ctx, resolved)
    wall, cpu = time.perf_counter(), time.process_time()
    with precision(ctx.recipe.precision), counting_examples(ctx.budget):
        model = entry.obj(ctx, resolved)
    synchronize(scenario.task.device)
    if scenario.spec.recipe.lora_rank:
        from .models.pretrained import merge_lora
        model = merge_lora(model)
    budget = ctx.budget
    timings = {"unlearn_seconds": time.perf_counter() - wall - budget.observer_seconds,
               "unlearn_cpu_seconds": time.process_time() - cpu - budget.observer_cpu_seconds,
               "steps": budget.used, "examples": budget.examples,
               "cost_fraction": (None if scenario.retrain_examples is None
                                 else budget.examples / scenario.retrain_examples)}
    if not weights_finite(model):
        raise Diverged("weights became NaN or infinite")
    return model.eval(), timings
