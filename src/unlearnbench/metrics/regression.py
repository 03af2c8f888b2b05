"""Regression metrics (Tarun et al., ICML 2023, "Deep Regression Unlearning"), on the
standardised targets of ``data/regression.py`` (an MSE of 1 is the error of predicting the
training mean). Every value reads the cached (N, 1) outputs of one pass per (model, split).

- ``forget_mse`` / ``retain_mse`` / ``test_mse`` and the ``_mae`` of each: the mean squared
  and absolute errors of a split (the paper reports MAE on its forget and retain cohorts);
- ``reg_gap``: mean |value − retrained value| over the three MSEs (SalUn's Avg. Gap, on
  errors);
- ``loss_auc``: a loss-threshold membership attack, the ROC AUC of −|error| telling forget
  examples (members) from test examples (0.5: no signal);
- ``reg_mia``: the paper's attack: ``SVC(C=3, rbf, gamma="auto")`` trained on the absolute
  errors of retain (member) vs test (non-member) examples, balanced, at most 2,500 each
  (``metrics/mia.py``); the share of forget examples it calls members;
- ``w1_forget``: the Wasserstein-1 distance between the unlearned and the retrained models'
  predictions on the forget set (the paper's "Wasserstein distance"; 0 for retraining).

The paper's Anamnesis Index (steps to relearn the forget cohort, unlearned versus
retrained) is ``metrics/anamnesis.py``: it scores classifiers too."""
from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance
from sklearn.metrics import roc_auc_score

from ..registry import metrics
from .evaluation import Evaluation, MetricResult
from .gap import mean_gap
from .mia import svc_mia_efficacy

TASKS = ("regression",)
SPLITS = ("forget", "retain", "test")
GAP_METRICS = ("forget_mse", "retain_mse", "test_mse")


def predictions(ev: Evaluation, split: str) -> np.ndarray:
    return ev.logits(split)[:, 0].double().numpy()


def errors(ev: Evaluation, split: str) -> np.ndarray:
    """Prediction − target for every example of the split (float64)."""
    return predictions(ev, split) - ev.targets(split).double().numpy()


def split_error(ev: Evaluation, split: str, squared: bool) -> MetricResult:
    per_example = errors(ev, split) ** 2 if squared else np.abs(errors(ev, split))
    value = float(per_example.mean()) if len(per_example) else float("nan")
    return MetricResult(value, split, ev.ids(split), per_example)


def _register_errors(split: str, squared: bool, column: int | None) -> None:
    kind = "MSE" if squared else "MAE"
    goal = "retrain" if split == "forget" else "lower"
    group = "forget" if split == "forget" else "utility"

    def metric(ev: Evaluation) -> MetricResult:
        return split_error(ev, split, squared)

    metric.__doc__ = (f"{kind} on the {split} set, standardised target units (per example: "
                      f"the {'squared' if squared else 'absolute'} error).")
    extra = {} if column is None else {"column": column}
    metrics.register(f"{split}_{kind.lower()}", tasks=TASKS, goal=goal, unit="ratio",
                     title=f"{split.capitalize()} {kind}", group=group, **extra)(metric)


for _index, _split in enumerate(SPLITS):
    _register_errors(_split, True, 60 + _index)
    _register_errors(_split, False, None)


@metrics.register("reg_gap", tasks=TASKS, goal="lower", unit="ratio", title="MSE Gap",
                  group="overall", column=66, headline=True)
def regression_gap(ev: Evaluation) -> MetricResult:
    """MSE Gap: mean |value − retrained value| over forget, retain and test MSE (0 = retrain)."""
    return mean_gap(ev, GAP_METRICS)


def loss_threshold_auc(member_loss: np.ndarray, non_member_loss: np.ndarray) -> float:
    """ROC AUC of a loss-threshold attack: the chance that a member's loss is below a
    non-member's (ties count half)."""
    labels = np.concatenate([np.ones(len(member_loss)), np.zeros(len(non_member_loss))])
    return float(roc_auc_score(labels, -np.concatenate([member_loss, non_member_loss])))


@metrics.register("loss_auc", tasks=TASKS, goal="retrain", unit="fraction", title="Loss AUC",
                  group="privacy", column=63)
def loss_auc(ev: Evaluation) -> MetricResult:
    """Loss-threshold MIA: AUC of −|error| telling forget (members) from test examples."""
    forget = np.abs(errors(ev, "forget"))
    return MetricResult(loss_threshold_auc(forget, np.abs(errors(ev, "test"))), "forget",
                        ev.ids("forget"), forget)


@metrics.register("reg_mia", tasks=TASKS, goal="retrain", unit="fraction", title="MIA (SVC)",
                  group="privacy", column=64)
def regression_mia(ev: Evaluation) -> MetricResult:
    """The paper's MIA: the share of forget examples an SVC on |error| calls members."""
    def loss(split):
        return np.abs(errors(ev, split))

    # The SVC reads one feature; the negated loss makes "higher = member" as for confidences.
    share_non_member, predicted = svc_mia_efficacy(-loss("retain"), -loss("test"),
                                                   -loss("forget"))
    return MetricResult(1.0 - share_non_member / 100.0, "forget", ev.ids("forget"),
                        predicted.astype(np.float64))


@metrics.register("w1_forget", tasks=TASKS, goal="lower", unit="ratio", title="W1 to retrain",
                  group="forget", column=65)
def wasserstein_forget(ev: Evaluation) -> MetricResult:
    """Wasserstein-1 distance between the unlearned and retrained predictions on the forget set."""
    return MetricResult(float(wasserstein_distance(predictions(ev, "forget"),
                                                   predictions(ev.reference, "forget"))))
