"""The regression task adapter: models with one real output per example, float targets.

What methods see mirrors the classification task, so a method written against
``task.nll`` runs here unchanged:

- ``nll(model, batch)``: the per-example loss, ``loss`` = "mse" (squared error, the default:
  the Gaussian negative log-likelihood up to a constant), "l1" (absolute error) or "huber"
  (quadratic within 1 of the target, linear beyond);
- ``logits``: the model's (N, 1) outputs, ``predictions`` the same as a vector;
- ``features``: the penultimate activations, as for classifiers.

There are no wrong labels to draw (``relabel_wrong``), so methods built on them (RL, SalUn,
Boundary...) do not declare the task and are refused by ``unlearning.check_supports``."""
from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Split
from ..errors import UserError
from .classification import Batch, ClassificationTask

LOSSES = {
    "mse": lambda output, target: (output - target).pow(2),
    "l1": lambda output, target: (output - target).abs(),
    "huber": lambda output, target: F.huber_loss(output, target, reduction="none", delta=1.0),
}


class RegressionTask(ClassificationTask):
    """Batches, per-example loss, predictions, features, fresh models and training for one
    regression data set and one architecture (``ClassificationTask``'s, on float targets)."""

    name = "regression"

    def __init__(self, data, model_name: str, device: str | torch.device = "cpu",
                 loss: str = "mse"):
        if loss not in LOSSES:
            raise UserError(f"unknown regression loss {loss!r}: set the benchmark's "
                            f"model_options loss to one of {', '.join(LOSSES)}")
        super().__init__(data, model_name, device)
        self.loss = loss

    def nll_from_logits(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Per-example loss of the (N, 1) outputs against the batch's targets."""
        return LOSSES[self.loss](logits[:, 0], batch.targets.to(logits.dtype))

    def relabel_wrong(self, split: Split, seed: int) -> Split:
        raise UserError("regression targets have no wrong label to draw; use a method that "
                        "supports regression tasks")

    def fingerprint(self) -> str:
        """The data and the loss the weights were trained with."""
        return hashlib.sha256(f"{self.data.fingerprint()}/{self.loss}".encode()).hexdigest()[:16]

    def predictions(self, model: nn.Module, split: Split, batch_size: int = 512) -> torch.Tensor:
        """The model's prediction for every example of ``split`` (on the CPU), in split order."""
        return self.predict_logits(model, split, batch_size)[:, 0]
