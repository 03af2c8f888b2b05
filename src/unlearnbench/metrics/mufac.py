"""MUFAC / MUCAC metrics (Choi & Na; github.com/ndb796/MachineUnlearning): a loss-based
logistic-regression membership-inference attack, its forgetting score, and NoMUS.

Reference code (ndb796/MachineUnlearning, ``cal_mia`` / ``simple_mia``, itself the NeurIPS
2023 unlearning challenge's starting kit): per-sample cross-entropy losses of the forget set
(label 1) and of the unseen test set (label 0), the forget set shuffled and cut to the size
of the unseen set; ``LogisticRegression()`` with sklearn's defaults on the raw loss (fitted
here by ``logistic_fit_1d``, the same optimum);
``cross_val_score`` accuracy over ``StratifiedShuffleSplit(n_splits=10, random_state=0)``
(default test_size, i.e. 10%); MIA = mean accuracy, 0.5 = the attacker cannot tell forget
from unseen. NoMUS = (TestAcc + (1 − 2·|MIA − 0.5|)) / 2. (The README's results tables label
the forgetting score |MIA − 0.5| as "MIA": Original 0.5951 / 0.2136 -> NoMUS 0.5839.)

Differences from the reference, all documented here:
- the subsample is drawn with ``numpy.random.default_rng(scenario seed)`` (the notebooks
  shuffle with the global numpy state after ``set_seed(42)``), so it is reproducible per
  scenario seed and independent of anything else that ran in the process;
- MUFAC's notebooks only cut the forget set (an unseen set larger than the forget set is
  left as is, and the attack's classes are then unbalanced); here, as in code derived from
  it, the larger of the two is cut, so the classes are always balanced and 0.5 is chance;
- on tiny sets, where 10% would leave fewer than 2 test samples (StratifiedShuffleSplit needs
  one per class), 2 test samples are used instead; from 12 samples up (6 per class) the split
  is exactly the reference's. Fewer than 2 samples per class: the value is NaN.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit
from sklearn.model_selection import StratifiedShuffleSplit

from ..registry import metrics
from .evaluation import Evaluation, MetricResult

N_SPLITS = 10          # stratified shuffle splits, as in the reference
TEST_SIZE = 0.1        # sklearn's default test_size, which the reference leaves as is
SPLIT_RANDOM_STATE = 0  # the reference's fixed random_state


def per_sample_loss(logits: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """Cross-entropy (−log softmax of the true label) of each example, float64."""
    return F.cross_entropy(logits.double(), targets, reduction="none").numpy()


def balanced_loss_samples(forget_losses: np.ndarray, unseen_losses: np.ndarray,
                          seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut the larger of the two sets to the size of the smaller: a random subset drawn with
    ``default_rng(seed)`` (in shuffled order, as the reference shuffles and takes the head);
    the smaller set is returned as given."""
    forget_losses = np.asarray(forget_losses, dtype=np.float64)
    unseen_losses = np.asarray(unseen_losses, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if len(forget_losses) > len(unseen_losses):
        forget_losses = forget_losses[rng.permutation(len(forget_losses))[:len(unseen_losses)]]
    elif len(unseen_losses) > len(forget_losses):
        unseen_losses = unseen_losses[rng.permutation(len(unseen_losses))[:len(forget_losses)]]
    return forget_losses, unseen_losses


def split_test_size(n_samples: int) -> float | int:
    """The reference's 10% test share, or 2 samples (one per class) where 10% is fewer."""
    return TEST_SIZE if math.ceil(TEST_SIZE * n_samples) >= 2 else 2


def loss_lr_mia(forget_losses: np.ndarray, unseen_losses: np.ndarray, seed: int) -> float:
    """MUFAC's MIA: mean accuracy of ``LogisticRegression()`` telling forget losses (1) from
    unseen losses (0), balanced by subsampling the larger set (``seed``), over
    ``StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=0)``."""
    forget, unseen = balanced_loss_samples(forget_losses, unseen_losses, seed)
    if len(forget) < 2:
        return float("nan")
    features = np.concatenate([unseen, forget])
    labels = np.concatenate([np.zeros(len(unseen), np.int64), np.ones(len(forget), np.int64)])
    splits = StratifiedShuffleSplit(n_splits=N_SPLITS, test_size=split_test_size(len(labels)),
                                    random_state=SPLIT_RANDOM_STATE)
    scores = []
    for train, test in splits.split(features[:, None], labels):
        weight, intercept = logistic_fit_1d(features[train], labels[train])
        predicted = (weight * features[test] + intercept > 0).astype(np.int64)
        scores.append(np.mean(predicted == labels[test]))
    return float(np.mean(scores))


def logistic_fit_1d(x: np.ndarray, y: np.ndarray, max_iter: int = 100) -> tuple[float, float]:
    """``LogisticRegression()``'s fit on one feature: the minimiser of Σ log(1 + e^{−ŷ z}) +
    ½ w² (C = 1, the intercept unpenalised), z = w x + b, by Newton's method with step
    halving. The same optimum as sklearn's L-BFGS, reached to 1e-10 rather than its 1e-4
    gradient tolerance, in a hundredth of the time: sklearn's fits were three quarters of a
    digits evaluation."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    theta = np.zeros(2)  # w, b

    def objective(t):
        z = t[0] * x + t[1]
        return np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * t[0] ** 2

    value = objective(theta)
    for _ in range(max_iter):
        p = expit(theta[0] * x + theta[1])
        gradient = np.array([np.sum((p - y) * x) + theta[0], np.sum(p - y)])
        s = p * (1 - p)
        hessian = np.array([[np.sum(s * x * x) + 1.0, np.sum(s * x)],
                            [np.sum(s * x), np.sum(s) + 1e-12]])
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-8:  # halve until the objective does not rise
            candidate = theta - scale * step
            candidate_value = objective(candidate)
            if candidate_value <= value:
                break
            scale /= 2
        else:
            break
        theta, previous, value = candidate, value, candidate_value
        if previous - value <= 1e-12 * max(1.0, abs(value)) and np.abs(gradient).max() < 1e-8:
            break
    return float(theta[0]), float(theta[1])


def nomus_score(test_accuracy: float, mia: float) -> float:
    """NoMUS = (TestAcc + (1 − 2·|MIA − 0.5|)) / 2, TestAcc a fraction in [0, 1]."""
    return (test_accuracy + (1.0 - 2.0 * abs(mia - 0.5))) / 2.0


@metrics.register("mia_loss_lr", tasks=("classification",), goal=0.5, unit="fraction",
                  title="MUFAC MIA", group="privacy")
def mia_loss_lr(ev: Evaluation) -> MetricResult:
    """MUFAC MIA: accuracy of a loss-based logistic regression, forget vs test (0.5 = ideal)."""
    def losses(split):
        return per_sample_loss(ev.logits(split), ev.targets(split))

    return MetricResult(loss_lr_mia(losses("forget"), losses("test"), ev.scenario.seed))


@metrics.register("forgetting_score", tasks=("classification",), goal="lower", unit="fraction",
                  title="Forgetting score", group="privacy")
def forgetting_score(ev: Evaluation) -> MetricResult:
    """MUFAC forgetting score: |MIA − 0.5| of the loss-based LR attack (0 = ideal)."""
    return MetricResult(abs(ev.value("mia_loss_lr").value - 0.5))


@metrics.register("nomus", tasks=("classification",), goal="higher", unit="fraction",
                  title="NoMUS", group="overall")
def nomus(ev: Evaluation) -> MetricResult:
    """NoMUS: (test accuracy + 1 − 2·|MIA − 0.5|) / 2, in [0, 1] (MUFAC; higher is better)."""
    return MetricResult(nomus_score(ev.value("ta").value / 100.0,
                                    ev.value("mia_loss_lr").value))
