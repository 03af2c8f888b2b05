"""Class forgetting in a conditional generative model (SalUn's DDPM setting), judged by a
classifier trained on the real images (the scenario's ``judge``, see ``tasks/generation.py``).

Every metric here reads one cached output per model: its DDIM samples for the scenario's
"prompts" split (``samples_per_class`` prompts per class, fixed starting noise) and the
judge's classes and penultimate features for them, so a model is sampled once however many
of these metrics are asked for.

- UA (``gen_ua``): the share of the images generated for the forgotten class that the judge
  does not assign to it (SalUn's unlearning accuracy for generation);
- IRA (``ira``): the judge's accuracy on the images generated for the other classes;
- ``fid_features``: the Fréchet distance between the judge's penultimate features of the real
  test images of the other classes and of the images generated for them. This is not FID:
  FID uses Inception-v3 features of natural images; on 8×8 digits the judge's features are
  the ones that mean something, and few samples bias the value upward, so compare it between
  models scored with the same settings only.

These three need the "prompts" split of a class-conditional scenario. On a style × object grid
(``data/styles.py``; its scenario's prompts are "grid_prompts", ``samples_per_class`` per
(style, object) pair) UnlearnCanvas's three accuracies apply instead, read from a style and an
object classifier trained on the real grid. The request forgets a target: one style, one
object (``forget_factor``) or one pair. For a style or an object target, with acc(v) the
share of the images generated for value v of a factor that its classifier assigns to v:

- UA (``canvas_ua``): 1 − acc(target), over the images generated for the target (every
  value of the other factor);
- IRA (``canvas_ira``): the same factor's classifier on the images of its other values
  (in-domain retain accuracy: the other styles when a style is forgotten);
- CRA (``canvas_cra``): the other factor's classifier on the images that do not involve the
  target (cross-domain retain accuracy: the objects, when a style is forgotten).

- ``canvas_fd``: ``fid_features`` on the grid, the judges' joined penultimate features of
  the real test images and of the generated ones that do not involve the target.

Every generated image weighs the same; with the same number per pair this is UnlearnCanvas's
mean of per-class accuracies. UnlearnCanvas names no score for one pair; here a pair's image
counts as recognised when both classifiers read its pair, UA is over the target pair's
images, IRA over the pairs sharing one factor with it (its style with other objects, its
object in other styles) and CRA over the pairs sharing neither.

The gap to the retrained model (``gen_gap``, ``canvas_gap``) is SalUn's Avg. Gap over these
accuracies: the mean of |value − the retrained model's value| over UA and IRA (and CRA on a
grid); 0 is the retrained model itself."""
from __future__ import annotations

import numpy as np

from ..data.styles import FACTORS
from ..registry import metrics
from .evaluation import Evaluation, MetricResult
from .gap import mean_gap


def generations(ev: Evaluation):
    return ev.output("prompts", "generate")


def forgotten(ev: Evaluation) -> int:
    return ev.scenario.spec.forget.class_id


@metrics.register("gen_ua", tasks=("generation",), splits=("prompts",), goal="higher",
                  unit="%", title="UA", group="forget", column=50)
def generation_ua(ev: Evaluation) -> MetricResult:
    """UA: images generated for the forgotten class that the judge assigns elsewhere, percent."""
    made = generations(ev)
    rows = (made.conditions == forgotten(ev)).numpy()
    missed = (made.predicted.numpy()[rows] != forgotten(ev)).astype(np.float64)
    return MetricResult(100.0 * float(missed.mean()), "prompts", ev.ids("prompts")[rows], missed)


@metrics.register("ira", tasks=("generation",), splits=("prompts",), goal="higher", unit="%",
                  title="IRA", group="utility", column=51)
def in_retain_accuracy(ev: Evaluation) -> MetricResult:
    """IRA: the judge's accuracy on the images generated for the other classes, percent."""
    made = generations(ev)
    rows = (made.conditions != forgotten(ev)).numpy()
    correct = (made.predicted == made.conditions).numpy()[rows].astype(np.float64)
    return MetricResult(100.0 * float(correct.mean()), "prompts", ev.ids("prompts")[rows],
                        correct)


# The registry's units have no "distance"; "ratio" is the unit-less, non-negative one.
@metrics.register("fid_features", tasks=("generation",), splits=("prompts",), goal="lower",
                  unit="ratio", title="FD (judge)", group="utility", column=52)
def fid_features(ev: Evaluation) -> MetricResult:
    """Fréchet distance of the judge's features, real vs generated, other classes (not FID)."""
    made = generations(ev)
    test = ev.scenario.splits["test"]
    keep = np.flatnonzero(test.targets.numpy() != forgotten(ev))
    real = ev.scenario.task.real_features(test.subset(keep, "test-other-classes"))
    generated = made.features[(made.conditions != forgotten(ev)).numpy()]
    return MetricResult(frechet_distance(real.numpy(), generated.numpy()))


@metrics.register("gen_gap", tasks=("generation",), splits=("prompts",), goal="lower",
                  unit="%", title="Gap", group="overall", column=49, headline=True)
def generation_gap(ev: Evaluation) -> MetricResult:
    """Gap: mean |value − retrained value| over UA and IRA, percentage points (0 = retrain)."""
    return mean_gap(ev, ("gen_ua", "ira"))


def grid_sets(ev: Evaluation, score: str) -> tuple[np.ndarray, np.ndarray]:
    """Which of the grid's prompts ``score`` ("ua", "ira" or "cra") reads, and whether the
    classifier it reads recognised each of them (for a pair target: both classifiers)."""
    task = ev.scenario.task
    made = ev.output("grid_prompts", "generate")
    grid, factor, target = task.grid, task.forget_factor, ev.scenario.spec.forget.class_id
    asked = {f: grid.factor_values(made.conditions, f).numpy() for f in FACTORS}
    right = {f: asked[f] == grid.factor_values(made.predicted, f).numpy() for f in FACTORS}
    if factor is None:
        shared = sum(asked[f] == grid.factor_values(target, f) for f in FACTORS)
        rows = {"ua": shared == 2, "ira": shared == 1, "cra": shared == 0}[score]
        return rows, right["style"] & right["object"]
    involved = asked[factor] == target
    other = FACTORS[1 - FACTORS.index(factor)]
    return (involved if score == "ua" else ~involved), right[other if score == "cra" else factor]


def grid_accuracy(ev: Evaluation, score: str) -> MetricResult:
    rows, right = grid_sets(ev, score)
    correct = right[rows].astype(np.float64)
    return MetricResult(100.0 * float(correct.mean()), "grid_prompts",
                        ev.ids("grid_prompts")[rows], correct)


@metrics.register("canvas_ua", tasks=("generation",), splits=("grid_prompts",), goal="higher",
                  unit="%", title="UA", group="forget", column=50)
def canvas_ua(ev: Evaluation) -> MetricResult:
    """UA (UnlearnCanvas): the target's images not recognised as the target, percent."""
    recognised = grid_accuracy(ev, "ua")
    return MetricResult(100.0 - recognised.value, recognised.split, recognised.ids,
                        1.0 - recognised.per_example)


@metrics.register("canvas_ira", tasks=("generation",), splits=("grid_prompts",), goal="higher",
                  unit="%", title="IRA", group="utility", column=51)
def canvas_ira(ev: Evaluation) -> MetricResult:
    """IRA (UnlearnCanvas): the forgotten factor's other values recognised, percent."""
    return grid_accuracy(ev, "ira")


@metrics.register("canvas_cra", tasks=("generation",), splits=("grid_prompts",), goal="higher",
                  unit="%", title="CRA", group="utility", column=53)
def canvas_cra(ev: Evaluation) -> MetricResult:
    """CRA (UnlearnCanvas): the other factor recognised off the target, percent."""
    return grid_accuracy(ev, "cra")


@metrics.register("canvas_fd", tasks=("generation",), splits=("grid_prompts",), goal="lower",
                  unit="ratio", title="FD (judges)", group="utility", column=55)
def canvas_fd(ev: Evaluation) -> MetricResult:
    """Fréchet distance of the judges' features, real vs generated, off the target (not FID)."""
    made = ev.output("grid_prompts", "generate")
    test = ev.scenario.splits["test"]
    keep = np.flatnonzero(~involves_target(ev, test.targets.numpy()))
    real = ev.scenario.task.real_features(test.subset(keep, "test-off-target"))
    generated = made.features[~involves_target(ev, made.conditions.numpy())]
    return MetricResult(frechet_distance(real.numpy(), generated.numpy()))


def involves_target(ev: Evaluation, labels: np.ndarray) -> np.ndarray:
    """Which grid labels (pairs) involve the request's target: its style or object, or the
    pair itself."""
    task, target = ev.scenario.task, ev.scenario.spec.forget.class_id
    if task.forget_factor is None:
        return labels == target
    return task.grid.factor_values(labels, task.forget_factor) == target


@metrics.register("canvas_gap", tasks=("generation",), splits=("grid_prompts",), goal="lower",
                  unit="%", title="Gap", group="overall", column=49, headline=True)
def canvas_gap(ev: Evaluation) -> MetricResult:
    """Gap: mean |value − retrained value| over UA, IRA and CRA, percentage points."""
    return mean_gap(ev, ("canvas_ua", "canvas_ira", "canvas_cra"))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to the rows of ``a`` and of ``b``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return gaussian_frechet_distance(a.mean(0), np.cov(a, rowvar=False),
                                     b.mean(0), np.cov(b, rowvar=False))


def gaussian_frechet_distance(mean_a, cov_a, mean_b, cov_b) -> float:
    """‖μ_a − μ_b‖² + tr Σ_a + tr Σ_b − 2 tr (Σ_a Σ_b)^½. The last trace is the sum of the
    square roots of the eigenvalues of Σ_a^½ Σ_b Σ_a^½ (the same spectrum), a symmetric
    matrix: no complex square root, and singular covariances (dead ReLU features) are fine."""
    cov_a, cov_b = np.atleast_2d(cov_a), np.atleast_2d(cov_b)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a).clip(min=0)
    value = (np.sum((np.asarray(mean_a) - np.asarray(mean_b)) ** 2)
             + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(cross).sum())
    return max(0.0, float(value))
