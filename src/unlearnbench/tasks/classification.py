"""The classification task adapter: image (or tabular) classifiers with integer labels."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import DataBundle, Split
from ..registry import models
from ..specs import Recipe
from ..train import StepBudget, epochs_of, fit_recipe


@dataclass
class Batch:
    inputs: torch.Tensor
    targets: torch.Tensor
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


def batch_positions(length: int, batch_size: int, shuffle: bool, seed: int
                    ) -> Iterator[tuple[int, np.ndarray]]:
    """(start, positions) of each batch over ``length`` examples: in order, or in a shuffle
    seeded by ``seed`` (torch's generator, so the order is the same on every machine)."""
    order = np.arange(length)
    if shuffle:
        order = torch.randperm(length, generator=torch.Generator().manual_seed(seed)).numpy()
    for start in range(0, length, batch_size):
        yield start, order[start:start + batch_size]


class ClassificationTask:
    """Batches, per-example NLL (−log p(y|x)), logits, fresh models and training for one data
    set and one architecture."""

    name = "classification"

    def __init__(self, data: DataBundle, model_name: str, device: str | torch.device = "cpu",
                 make_model: Callable[[int], nn.Module] | None = None):
        """``make_model(seed)``, when given, builds the architecture instead of the registered
        model ``model_name`` (a user's own classifier, see ``deletion``)."""
        self.data = data
        self.model_name = model_name
        self.make_model = make_model
        self.model_entry = None if make_model is not None else models.get(model_name)
        self.device = torch.device(device)

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    def batches(self, split: Split, batch_size: int, shuffle: bool = False,
                seed: int = 0) -> Iterator[Batch]:
        for _, index in batch_positions(len(split), batch_size, shuffle, seed):
            positions = torch.from_numpy(index)
            yield Batch(split.inputs[positions].to(self.device),
                        split.targets[positions].to(self.device), split.ids[index])

    def epochs(self, split: Split, batch_size: int, epochs: int, seed: int) -> Iterator[Batch]:
        """Shuffled batches over several epochs, each epoch with its own seed."""
        return epochs_of(lambda e: self.batches(split, batch_size, True, seed * 1000 + e), epochs)

    def logits(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return model(batch.inputs)

    def nll(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Per-example negative log-likelihood of the batch's targets."""
        return self.nll_from_logits(self.logits(model, batch), batch)

    def nll_from_logits(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The same from logits already computed (methods that need both: one forward pass)."""
        return F.cross_entropy(logits, batch.targets, reduction="none")

    def join(self, name: str, splits: list[Split]) -> Split:
        """One split holding the examples of ``splits`` in order."""
        return Split(name, torch.cat([s.inputs for s in splits]),
                     torch.cat([s.targets for s in splits]),
                     np.concatenate([s.ids for s in splits]))

    def relabel_wrong(self, split: Split, seed: int) -> Split:
        """The split with each label replaced by a uniformly drawn different class (the random
        labels of RL and SalUn)."""
        generator = torch.Generator().manual_seed(seed)
        shift = torch.randint(1, self.num_classes, split.targets.shape, generator=generator)
        return Split(split.name + "-relabelled", split.inputs,
                     (split.targets + shift) % self.num_classes, split.ids)

    def retraining_set(self, retain: Split) -> Split:
        """What retraining from scratch trains on: the retain set itself."""
        return retain

    def fingerprint(self) -> str:
        """What trained weights depend on besides architecture, recipe and seed: the data."""
        return self.data.fingerprint()

    def fresh_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        model = (self.make_model(seed) if self.make_model is not None
                 else self.model_entry.obj(self.data.input_shape, self.data.num_classes))
        return model.to(self.device).eval()

    def fit(self, model: nn.Module, split: Split, recipe: Recipe, seed: int,
            budget: StepBudget | None = None,
            after_batch: Callable[[Batch], None] | None = None) -> nn.Module:
        """Train ``model`` in place on ``split`` with ``recipe`` (cosine learning-rate decay,
        unless ``recipe.schedule`` is "constant").
        ``after_batch(batch)`` runs after each optimizer step (Amnesiac records updates)."""
        return fit_recipe(self, model, split, recipe, seed, budget, after_batch,
                          lambda optimizer, total: torch.optim.lr_scheduler.CosineAnnealingLR(
                              optimizer, T_max=total))

    @torch.no_grad()
    def features(self, model: nn.Module, split: Split, batch_size: int = 512) -> torch.Tensor:
        """Penultimate activations (the input of the last weight layer) for every example."""
        from ..models.inspect import last_layers

        captured = []
        hook = last_layers(model, 1)[0].register_forward_hook(
            lambda module, inputs, output: captured.append(inputs[0].flatten(1).float().cpu()))
        try:
            self.predict_logits(model, split, batch_size)
        finally:
            hook.remove()
        return torch.cat(captured) if captured else torch.zeros(0, 0)

    @torch.no_grad()
    def predict_logits(self, model: nn.Module, split: Split, batch_size: int = 512) -> torch.Tensor:
        """Logits of every example of ``split`` (on the CPU), in split order."""
        model.eval()
        parts = [self.logits(model, b).float().cpu() for b in self.batches(split, batch_size)]
        return torch.cat(parts) if parts else torch.zeros(0, self.num_classes)
