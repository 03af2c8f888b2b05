"""Training loops shared by model training and by methods. Deterministic on CPU under a seed:
shuffling uses a generator seeded by (seed, epoch), initialisation by ``torch.manual_seed``.

Mixed precision: inside ``with precision("bf16")`` (or "fp16") every ``optimise`` loop computes
its loss under ``torch.autocast`` on the model's device type, the weights and the optimizer
state staying float32; fp16 also scales the loss (``torch.amp.GradScaler``) so that small
gradients do not underflow. The recipe's ``precision`` sets it for training and unlearning
alike (``fit_recipe`` and ``unlearning.unlearn``); evaluation always runs in float32."""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterable

import torch
from torch import nn

from .errors import Diverged, UserError


class StepBudget:
    """A cap on optimizer steps and on examples (None = no cap). Loops ask ``take()`` before
    every step, ``within()`` after its forward passes and before its backward pass, and call
    ``stepped(model)`` after it.

    ``examples`` counts the examples of the forward passes run with gradients inside
    ``counting_examples(budget)`` (``unlearning.unlearn`` counts every method's); a step
    whose examples would pass ``max_examples`` is given back and ends the budget.

    ``observer(model, step)``, when given, is called every ``every`` steps (None: never) with
    the model being trained (learning curves); the seconds it takes are kept in
    ``observer_seconds`` so that they can be left out of the method's timing."""

    def __init__(self, max_steps: int | None = None,
                 observer: Callable[[nn.Module, int], None] | None = None,
                 every: int | None = 1, max_examples: int | None = None):
        if max_steps is not None and max_steps < 0:
            raise ValueError("max_steps must be >= 0")
        if max_examples is not None and max_examples < 0:
            raise ValueError("max_examples must be >= 0")
        self.max_steps, self.max_examples = max_steps, max_examples
        self.used = self.examples = 0
        self.spent = False  # a step did not fit in max_examples: no further step is taken
        self._step_start = 0
        self.observer, self.every = observer, every
        self.observer_seconds = self.observer_cpu_seconds = 0.0

    def take(self) -> bool:
        if self.spent or (self.max_steps is not None and self.used >= self.max_steps):
            return False
        self.used += 1
        self._step_start = self.examples
        return True

    def within(self) -> bool:
        """Whether the examples counted so far, the current step's included, fit in
        ``max_examples``; if not, the step is given back (its forward passes are not charged:
        no backward pass follows) and the budget is spent."""
        if self.max_examples is None or self.examples <= self.max_examples:
            return True
        self.used -= 1
        self.examples = self._step_start
        self.spent = True
        return False

    def stepped(self, model: nn.Module) -> None:
        if self.observer is None or not self.every or self.used % self.every:
            return
        wall, cpu = time.perf_counter(), time.process_time()
        training, device = model.training, next(model.parameters()).device
        # The observed run continues exactly as an unobserved one would: the observer's draws
        # come from forked generators (the CPU's, and the accelerator's the model is on).
        try:
            with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device],
                                       device_type=device.type):
                self.observer(model, self.used)
        finally:
            model.train(training)
        self.observer_seconds += time.perf_counter() - wall
        self.observer_cpu_seconds += time.process_time() - cpu


def batch_size_of(output) -> int:
    """The number of examples a forward pass's output holds: the leading dimension of its
    first tensor of at least one dimension (nested in tuples, lists or mappings such as a
    Hugging Face output), times the sizes ``torch.func.vmap`` maps over (per-example gradients
    see one example at a time)."""
    # torch.func has no public way to read the sizes a vmap maps over, so this reads its
    # wrappers through torch's private functorch bindings; torch is pinned (constraints.txt),
    # and test_methods_without_steps_report_what_they_pass fails if they move.
    from torch._C import _functorch

    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        return next((n for n in map(batch_size_of, output) if n), 0)
    if not isinstance(output, torch.Tensor) or not output.dim():
        return 0
    examples = output.shape[0]
    while _functorch.is_functorch_wrapped_tensor(output):  # vmap's (and grad's) wrappers
        inner = _functorch.get_unwrapped(output)
        if _functorch.is_batchedtensor(output):
            examples *= inner.shape[_functorch.maybe_get_bdim(output)]
        output = inner
    return examples


@contextmanager
def counting_examples(budget: StepBudget):
    """Add to ``budget.examples`` the examples of every forward pass run inside with
    gradients enabled (the passes a backward pass follows): the unit of the cost of
    unlearning. A training step on a batch of B examples costs B; a model's outermost call is
    counted, not the layers it calls; passes without gradients (a teacher's outputs,
    evaluation) are not counted."""
    depth = 0

    def enter(module, args):
        nonlocal depth
        depth += 1

    def leave(module, args, output):
        nonlocal depth
        depth -= 1
        if depth == 0 and torch.is_grad_enabled():
            budget.examples += batch_size_of(output)

    hooks = (nn.modules.module.register_module_forward_pre_hook(enter),
             nn.modules.module.register_module_forward_hook(leave, always_call=True))
    try:
        yield budget
    finally:
        for hook in hooks:
            hook.remove()


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
_precision: ContextVar[str] = ContextVar("precision", default="fp32")


@contextmanager
def precision(name: str):
    """Run the ``optimise`` loops inside in precision ``name`` (a key of ``PRECISIONS``)."""
    if name not in PRECISIONS:
        raise UserError(f"unknown precision {name!r}: use {', '.join(PRECISIONS)}")
    token = _precision.set(name)
    try:
        yield
    finally:
        _precision.reset(token)


def synchronize(device: str | torch.device) -> None:
    """Wait for the work queued on an accelerator, so that a timing ends when the work does
    (GPU kernels run asynchronously); nothing to wait for on the CPU."""
    device = torch.device(device)
    if device.type != "cpu":
        torch.accelerator.synchronize(device)


def make_optimizer(parameters, name: str, lr: float, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    raise UserError(f"unknown optimizer {name!r}: use sgd, adam or adamw")


def check_finite(loss: torch.Tensor, step: int) -> None:
    if not math.isfinite(float(loss.detach())):
        raise Diverged(f"loss became {float(loss.detach())}", step)


def weights_finite(model: nn.Module) -> bool:
    return all(torch.isfinite(p).all() for p in model.state_dict().values()
               if p.is_floating_point())


def optimise(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable,
             loss_fn: Callable, budget: StepBudget, after_step: Callable | None = None,
             observed: bool = True) -> int:
    """Minimise ``loss_fn(batch)`` over ``batches``, one optimizer step per batch, until the
    batches or the budget (steps, or examples: a step whose forward passes would pass the
    cap is not taken) run out. Raises ``Diverged`` on a NaN/inf loss. Returns steps taken.
    ``observed=False`` for a model that is not the one being unlearned (Task Vector's
    fine-tuned copy): the budget's learning-curve observer then skips these steps."""
    model.train()
    dtype = PRECISIONS[_precision.get()]
    device_type = next(model.parameters()).device.type
    # With scaling disabled (fp32, bf16) scale() returns the loss and step() steps.
    scaler = torch.amp.GradScaler(device_type, enabled=dtype is torch.float16)
    steps = 0
    for batch in batches:
        if not budget.take():
            break
        with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
            loss = loss_fn(batch)
        if not budget.within():
            break
        check_finite(loss, budget.used)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if after_step is not None:
            after_step()
        if observed:
            budget.stepped(model)
        steps += 1
    model.eval()
    return steps


def epochs_of(make_batches: Callable[[int], Iterable], epochs: int):
    """Chain ``make_batches(epoch)`` for each epoch (each epoch reshuffles with its own seed)."""
    for epoch in range(epochs):
        yield from make_batches(epoch)


def fit_recipe(task, model: nn.Module, split, recipe, seed: int, budget: StepBudget | None,
               after_batch: Callable | None, make_schedule: Callable) -> nn.Module:
    """Train ``model`` in place on ``split`` as ``recipe`` says (a task's ``fit``): mean NLL,
    the recipe's optimizer over the trainable parameters, the task's learning-rate schedule
    ``make_schedule(optimizer, total_steps)`` stepped after every optimizer step where
    ``recipe.schedule`` is "cosine" (with "constant" the rate stays ``recipe.lr``), then
    ``after_batch(batch)`` (Amnesiac records updates there)."""
    budget = budget or StepBudget()
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad],
                               recipe.optimizer, recipe.lr, recipe.momentum, recipe.weight_decay)
    total = max(1, recipe.epochs * -(-len(split) // recipe.batch_size))
    schedule = make_schedule(optimizer, total) if recipe.schedule == "cosine" else None
    torch.manual_seed(seed)
    current = []

    def batches():
        for batch in task.epochs(split, recipe.batch_size, recipe.epochs, seed):
            current[:] = [batch]
            yield batch

    def after_step():
        if schedule is not None:
            schedule.step()
        if after_batch is not None:
            after_batch(current[0])

    with precision(recipe.precision):
        optimise(model, optimizer, batches(), lambda b: task.nll(model, b).mean(), budget,
                 after_step=after_step)
    return model
