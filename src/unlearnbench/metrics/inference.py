"""The shared inference cache: one forward pass per (model, split), however many metrics ask.

Models are identified by a fingerprint of their weights, so two model objects with the same
weights share a pass. The fingerprint is remembered per model object for the cache's
lifetime: a model changed in place after it was evaluated needs a new cache."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np

import torch
from torch import nn

from ..data import Split
from ..models.inspect import model_fingerprint
from ..tasks.language import TokenStats


class InferenceCache:
    """Task outputs per (model fingerprint, split name, output): a classifier's logits, a
    language model's per-token statistics or greedy answers. ``passes`` counts real passes
    over a split, ``counts`` the same per output and ``seconds`` their time."""

    def __init__(self, task):
        self.task = task
        self.passes = 0
        self.counts: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self._outputs: dict[tuple[str, str, str], object] = {}
        self._fingerprints: dict[int, tuple[nn.Module, str]] = {}
        self._on_disk: dict[str, Path] = {}  # fingerprint -> directory of its saved outputs

    def keep_on_disk(self, model: nn.Module, directory: str | Path) -> None:
        """Save ``model``'s text outputs under ``directory`` and read them back in later
        processes: the scenario's original and retain model are scored once, ever (their
        outputs are what metrics comparing with them read; open-unlearning's retain logs,
        without a path to pass by hand)."""
        self._on_disk[self.fingerprint(model)] = Path(directory)

    def fingerprint(self, model: nn.Module) -> str:
        # Hashing weights costs far less than a pass but is still repeated per call; remember
        # it per model object for the lifetime of this cache (models are not changed while
        # they are evaluated).
        known = self._fingerprints.get(id(model))
        if known is None or known[0] is not model:
            known = (model, model_fingerprint(model))
            self._fingerprints[id(model)] = known
        return known[1]

    def output(self, model: nn.Module, split, what: str):
        """``task.<what>(model, split)``, computed once per model and split."""
        key = (self.fingerprint(model), split.name, what)
        if key in self._outputs:
            return self._outputs[key]
        path = self._saved_path(key[0], split, what)
        value = read_output(path) if path is not None else None
        if value is None:
            start = time.perf_counter()
            value = getattr(self.task, what)(model, split)
            self.seconds[what] += time.perf_counter() - start
            self.passes += 1
            self.counts[what] += 1
            if path is not None:
                write_output(path, value)
        self._outputs[key] = value
        return value

    def _saved_path(self, fingerprint: str, split, what: str) -> Path | None:
        directory = self._on_disk.get(fingerprint)
        if directory is None or not hasattr(split, "records"):  # text sets only: cheap to hash
            return None
        content = hashlib.sha1(json.dumps([list(split.records), np.asarray(split.ids).tolist()],
                                          sort_keys=True, default=str).encode()).hexdigest()
        return directory / f"{fingerprint[:20]}-{content[:20]}-{what}"

    def release(self, model: nn.Module) -> None:
        """Drop ``model`` and its outputs (an unlearned model, once scored), unless another
        model held here has the same weights."""
        known = self._fingerprints.pop(id(model), None)
        if known is None or known[0] is not model:
            return
        if any(fingerprint == known[1] for _, fingerprint in self._fingerprints.values()):
            return
        self._outputs = {k: v for k, v in self._outputs.items() if k[0] != known[1]}

    def keys(self) -> list[tuple[str, str, str]]:
        """(model fingerprint, split name, output) of every output computed so far."""
        return list(self._outputs)

    def logits(self, model: nn.Module, split: Split) -> torch.Tensor:
        return self.output(model, split, "predict_logits")


def write_output(path: Path, value) -> None:
    """Token statistics as .npz, generations as .json (written under a temporary name, then
    renamed); other outputs are not saved."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(value, TokenStats):
        target = path.with_suffix(".npz")
        temporary = target.with_name(f"{target.stem}.tmp{os.getpid()}.npz")  # one per writer
        np.savez(temporary, **dataclasses.asdict(value))
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        target = path.with_suffix(".json")
        temporary = target.with_name(f"{target.name}.tmp{os.getpid()}")
        temporary.write_text(json.dumps(value))
    else:
        return
    os.replace(temporary, target)


def read_output(path: Path):
    """What ``write_output`` saved at ``path``, or None (absent or unreadable: recomputed)."""
    try:
        if path.with_suffix(".npz").exists():
            with np.load(path.with_suffix(".npz")) as arrays:
                return TokenStats(**{name: arrays[name] for name in arrays.files})
        if path.with_suffix(".json").exists():
            return json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return None
