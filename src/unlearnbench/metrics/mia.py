"""SalUn's membership-inference efficacy (confidence-feature SVC attack)."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.svm import SVC

from ..registry import metrics
from .evaluation import Evaluation, MetricResult


def true_label_confidence(logits: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    probabilities = torch.softmax(logits.double(), dim=1)
    return probabilities.gather(1, targets[:, None]).squeeze(1).numpy()


# The SVC costs O(n^2) to O(n^3) in its training set: SalUn's 10k + 10k takes minutes on a
# CPU for each evaluated model. Above this many examples per class the attack is trained on
# the first MAX_SHADOW_PER_CLASS of each (a documented deviation; it changes nothing on
# digits and little elsewhere, the 1-D confidence boundary being well estimated by 2,500).
MAX_SHADOW_PER_CLASS = 2500


def svc_mia_efficacy(member: np.ndarray, non_member: np.ndarray, target: np.ndarray,
                     max_per_class: int = MAX_SHADOW_PER_CLASS) -> tuple[float, np.ndarray]:
    """Train ``SVC(C=3, gamma="auto", rbf)`` on member (1) vs non-member (0) confidences and
    predict ``target``. Returns (100 × share predicted non-member, per-target predictions).

    As in SalUn's code, the member set is the first len(non_member) retain examples; when
    the retain set is smaller, the non-member set is cut to match so the classes stay
    balanced. At most ``max_per_class`` of each are used (see MAX_SHADOW_PER_CLASS)."""
    size = min(len(member), len(non_member), max_per_class)
    features = np.concatenate([member[:size], non_member[:size]])[:, None]
    labels = np.concatenate([np.ones(size), np.zeros(size)])
    if len(np.unique(labels)) < 2 or len(target) == 0:
        return float("nan"), np.zeros(len(target))
    attack = SVC(C=3, gamma="auto", kernel="rbf").fit(features, labels)
    predicted_member = attack.predict(target[:, None])
    return 100.0 * float(1.0 - predicted_member.mean()), predicted_member


@metrics.register("mia_efficacy", tasks=("classification",), goal="retrain", unit="%", title="MIA",
                  group="privacy", column=13)
def mia_efficacy(ev: Evaluation) -> MetricResult:
    """MIA-efficacy: % of forget examples an SVC confidence attack judges non-members (SalUn)."""
    def confidence(split):
        return true_label_confidence(ev.logits(split), ev.targets(split))

    value, predicted = svc_mia_efficacy(confidence("retain"), confidence("test"),
                                        confidence("forget"))
    return MetricResult(value, "forget", ev.ids("forget"), predicted.astype(np.float64))


def split_confidence(ev: Evaluation, split: str) -> MetricResult:
    confidence = true_label_confidence(ev.logits(split), ev.targets(split))
    value = float(confidence.mean()) if len(confidence) else float("nan")
    return MetricResult(value, split, ev.ids(split), confidence)


@metrics.register("forget_confidence", tasks=("classification",), goal="retrain", unit="fraction",
                  title="Forget confidence", group="privacy")
def forget_confidence(ev: Evaluation) -> MetricResult:
    """Mean softmax probability of the true label on the forget set (per example: the
    membership feature of MIA-efficacy, kept so the report can draw the attack's ROC)."""
    return split_confidence(ev, "forget")


@metrics.register("test_confidence", tasks=("classification",), goal="higher", unit="fraction",
                  title="Test confidence", group="utility")
def test_confidence(ev: Evaluation) -> MetricResult:
    """Mean softmax probability of the true label on the test set (per example, as
    ``forget_confidence``: the non-members of the report's ROC)."""
    return split_confidence(ev, "test")
