"""The values a hyperparameter (or a recipe or forget-request field) allows, declared beside its
typed field and checked before anything trains, in the manner of scikit-learn's parameter
validation::

    @dataclass
    class FinetuneParams:
        epochs: int = param(5, ge=1)
        lr: float = param(0.01, gt=0)
        momentum: float = param(0.9, ge=0, lt=1)
        optimizer: str = param("sgd", choices=OPTIMIZERS)

``check_values(instance, owner)`` refuses the first field outside its range, and any float that
is not finite (declared or not), with one line naming ``owner.field``, the value and what is
allowed. None, where a field's type admits it, always passes: it means "the default from
elsewhere" (the recipe's learning rate, say). A tuple's items are checked one by one."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .errors import UserError

# The names ``train.make_optimizer`` and ``train.PRECISIONS`` take (spelled out here so that
# declaring a field does not import torch).
OPTIMIZERS = ("sgd", "adam", "adamw")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Allowed:
    """A set of choices, or a numeric interval: a bound of None is unbounded, an open bound
    excludes its value."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()

    def admits(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above_low = self.low is None or value > self.low or (not self.low_open
                                                             and value == self.low)
        below_high = self.high is None or value < self.high or (not self.high_open
                                                                and value == self.high)
        return above_low and below_high

    def describe(self) -> str:
        if self.choices:
            return f"one of {', '.join(map(str, self.choices))}"
        if self.low is not None and self.high is not None:
            return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return ""


def param(default: Any, *, ge: float | None = None, gt: float | None = None,
          le: float | None = None, lt: float | None = None, choices: tuple = (),
          **metadata: Any):
    """A dataclass field with ``default`` and its allowed values: ``ge``/``gt`` (at least /
    above), ``le``/``lt`` (at most / below), or ``choices``; no bound at all declares any
    finite value allowed. Other keywords go to the field's metadata (``search=`` for tuning)."""
    if (ge is not None and gt is not None) or (le is not None and lt is not None):
        raise TypeError("param: give at most one lower bound (ge or gt) and one upper (le or lt)")
    rule = Allowed(gt if gt is not None else ge, lt if lt is not None else le,
                   gt is not None, lt is not None, tuple(choices))
    return dataclasses.field(default=default, metadata={"allowed": rule, **metadata})


def allowed(field: dataclasses.Field) -> Allowed | None:
    """What ``field`` declares it allows (None: nothing declared)."""
    return field.metadata.get("allowed")


def check_values(instance: Any, owner: str) -> None:
    """Raise ``UserError`` for the first field of dataclass ``instance`` whose value its
    declaration does not allow, or that is a float other than a finite number."""
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        rule = allowed(field) or Allowed()
        for item in value if isinstance(value, tuple) else (value,):
            if item is None or isinstance(item, bool):
                continue
            if not rule.choices and not isinstance(item, (int, float)):
                continue  # free text (a method name, say): checked where it is used
            if not rule.admits(item):
                kind = "" if rule.choices else (
                    "an integer " if isinstance(item, int) else "a finite number ")
                subject = "each item" if isinstance(value, tuple) else "it"
                raise UserError(f"{owner}.{field.name}={value!r} is not allowed: {subject} must "
                                f"be {kind}{rule.describe()}".rstrip())
