"""MUFAC's attack: its one-feature logistic regression against scikit-learn's."""
from __future__ import annotations

import numpy as np
import pytest

from unlearnbench.metrics.mufac import balanced_loss_samples, loss_lr_mia


def test_the_one_feature_fit_is_sklearns_logistic_regression():
    """``logistic_fit_1d`` finds the optimum ``LogisticRegression()`` (L-BFGS, tolerance 1e-4)
    approaches: the same coefficients to that tolerance on loss-like samples, and the attack's
    accuracy over sklearn's own cross-validation equal but for a test point on the boundary."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score

    from unlearnbench.metrics.mufac import logistic_fit_1d, split_test_size

    rng = np.random.default_rng(0)
    differing = 0
    for trial in range(40):
        forget = rng.lognormal(-3, 1.5, int(rng.integers(10, 200)))
        unseen = rng.lognormal(rng.uniform(-3, 0), 1.5, int(rng.integers(10, 200)))
        x = np.concatenate([unseen, forget])
        y = np.r_[np.zeros(len(unseen)), np.ones(len(forget))].astype(int)
        reference = LogisticRegression().fit(x[:, None], y)
        weight, intercept = logistic_fit_1d(x, y)
        assert weight == pytest.approx(reference.coef_[0, 0], rel=1e-2, abs=1e-3)
        assert intercept == pytest.approx(reference.intercept_[0], rel=1e-2, abs=1e-3)
        a, b = balanced_loss_samples(forget, unseen, seed=0)
        features = np.concatenate([b, a])[:, None]
        labels = np.r_[np.zeros(len(b)), np.ones(len(a))].astype(int)
        splits = StratifiedShuffleSplit(n_splits=10, test_size=split_test_size(len(labels)),
                                        random_state=0)
        expected = np.mean(cross_val_score(LogisticRegression(), features, labels, cv=splits))
        got = loss_lr_mia(forget, unseen, seed=0)
        differing += got != expected
        assert got == pytest.approx(expected, abs=0.02)
    assert differing <= 2
