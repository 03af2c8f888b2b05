"""Regression data sets, bundled with scikit-learn (no download): diabetes (tabular) and the
slant of the handwritten digits (images). Targets are float32 and standardised with the
training pool's mean and standard deviation (diabetes' features too), so an MSE of 1 is the
error of predicting the mean.

A regression request that is not random is defined by the data set: the loader option
``forget`` names a column and ``low`` / ``high`` an interval of it in raw units; the training
examples whose value lies in [low, high) are the bundle's ``forget_positions`` (the benchmark's
forget kind is then "dataset"). Forget options never change the arrays, so every request on
one data set shares its original model."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_diabetes as sklearn_diabetes

from ..errors import UserError
from ..registry import datasets
from . import DataBundle, Split
from .digits import load_digits

# Raw-unit columns a diabetes request can name (the target, and the age in years).
DIABETES_COLUMNS = ("target", "age")
TEST_FRACTION, VALIDATION_FRACTION, SPLIT_SEED = 0.2, 0.1, 0


@dataclass(frozen=True)
class RegressionBundle(DataBundle):
    """A DataBundle with float targets (``num_classes`` is the output size, 1) and, where a
    loader option defines the request, the training positions to forget."""

    forget_positions: np.ndarray | None = None


def float_split(name: str, inputs: np.ndarray, targets: np.ndarray, ids: np.ndarray) -> Split:
    return Split(name, torch.as_tensor(np.ascontiguousarray(inputs), dtype=torch.float32),
                 torch.as_tensor(np.asarray(targets), dtype=torch.float32),
                 np.asarray(ids, np.int64))


def in_interval(values: np.ndarray, low: float, high: float, option: str) -> np.ndarray:
    """Positions whose value lies in [low, high); refuses an empty or total request."""
    positions = np.flatnonzero((values >= low) & (values < high))
    if len(positions) == 0 or len(positions) == len(values):
        raise UserError(f"forget={option} with low={low}, high={high} names "
                        f"{len(positions)} of {len(values)} training examples; choose an "
                        "interval that holds some but not all of them")
    return positions


@datasets.register("diabetes", source="scikit-learn (bundled)")
def load_diabetes(forget: str = "none", low: float = 200.0, high: float = 1e9) -> RegressionBundle:
    """scikit-learn diabetes: 442 patients, 10 features, disease progression after a year.

    A seeded 20% test split and 10% of the rest as validation; features and target
    standardised with the training pool's statistics. ``forget=target``: forget the patients
    whose raw progression score lies in [low, high) (the regression analogue of forgetting a
    class); ``forget=age``: those whose age in years does (a feature-defined group)."""
    raw = sklearn_diabetes(scaled=False)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(raw.target))
    n_test = int(round(TEST_FRACTION * len(order)))
    n_validation = int(round(VALIDATION_FRACTION * (len(order) - n_test)))
    test, validation, train = (order[:n_test], order[n_test:n_test + n_validation],
                               order[n_test + n_validation:])
    train, validation, test = np.sort(train), np.sort(validation), np.sort(test)
    x, y = raw.data, raw.target
    x_mean, x_std = x[train].mean(0), x[train].std(0)
    y_mean, y_std = y[train].mean(), y[train].std()
    bundle = RegressionBundle(
        "diabetes",
        *(float_split(name, (x[rows] - x_mean) / x_std, (y[rows] - y_mean) / y_std,
                      np.arange(len(rows)))
          for name, rows in (("train", train), ("validation", validation), ("test", test))),
        num_classes=1)
    if forget == "none":
        return bundle
    if forget not in DIABETES_COLUMNS:
        raise UserError(f"diabetes: unknown forget={forget!r}; use one of "
                        f"{', '.join(DIABETES_COLUMNS)} (or none for a random request)")
    column = y[train] if forget == "target" else x[train, 0]
    return RegressionBundle(bundle.name, bundle.train, bundle.validation, bundle.test, 1,
                            in_interval(column, low, high, forget))


def slant(images: np.ndarray) -> np.ndarray:
    """The shear ``mu11 / mu02`` of each (N, H, W) image's ink: the ratio of its second
    central moments, how far the x-centre moves per row down the image (positive: the
    digit leans left-to-right toward its foot, as deskewing MNIST measures it)."""
    height, width = images.shape[1:]
    rows, cols = np.mgrid[0:height, 0:width]
    mass = images.sum((1, 2))
    cx = (images * cols).sum((1, 2)) / mass
    cy = (images * rows).sum((1, 2)) / mass
    dx, dy = cols - cx[:, None, None], rows - cy[:, None, None]
    return (images * dx * dy).sum((1, 2)) / (images * dy * dy).sum((1, 2))


@datasets.register("digits-slant", source="scikit-learn (bundled)")
def load_digits_slant(forget: str = "none", low: float = 0.15, high: float = 1e9
                      ) -> RegressionBundle:
    """scikit-learn digits (the ``digits`` splits), target: the slant of the digit.

    The slant is the shear mu11/mu02 of the ink's second central moments (``slant``): a
    ratio of pixel moments, not a weighted pixel sum, so no linear read-out of the pixels
    gives it and it is nearly uncorrelated with the amount of ink (r = 0.00); it varies
    within every class. Standardised by the training pool. ``forget=slant``: forget the
    training images whose raw shear lies in [low, high) (default: the ~15% leaning most)."""
    digits = load_digits()
    raw = {name: slant(getattr(digits, name).inputs[:, 0].numpy().astype(np.float64))
           for name in ("train", "validation", "test")}
    mean, std = raw["train"].mean(), raw["train"].std()
    splits = [float_split(name, getattr(digits, name).inputs.numpy(), (raw[name] - mean) / std,
                          getattr(digits, name).ids)
              for name in ("train", "validation", "test")]
    if forget == "none":
        return RegressionBundle("digits-slant", *splits, num_classes=1)
    if forget != "slant":
        raise UserError(f"digits-slant: unknown forget={forget!r}; use slant (or none for a "
                        "random request)")
    return RegressionBundle("digits-slant", *splits, num_classes=1,
                            forget_positions=in_interval(raw["train"], low, high, forget))
