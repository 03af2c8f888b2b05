"""Min-K%, Min-K%++, exact memorisation and extraction strength score a record's own text
tokens, not the closing <eos> the language task appends (open-unlearning drops the last
label, MUSE's texts have none); TOFU's probability and the NLL-based attacks keep it. All from
the one shared forward pass, on the small real scenario."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import auc, roc_curve

from unlearnbench.metrics.evaluation import evaluate
from unlearnbench.metrics.inference import InferenceCache
from unlearnbench.metrics.mia_text import min_k_score
from unlearnbench.tasks.language import TokenStats

# The metric and the hand computation read the same float64 arrays from one cached pass and
# differ only in summation order: agreement to 1e-12 (values are O(1) to O(10)).
TOL = 1e-12


def lowest_share_mean(values, k=0.4):
    values = sorted(values)
    return sum(values[:max(1, int(len(values) * k))]) / max(1, int(len(values) * k))


@pytest.fixture(scope="module")
def target(language_scenario):
    """The target's metrics and the token statistics of forget they were computed from."""
    scenario = language_scenario
    cache = InferenceCache(scenario.task)
    names = ["mia_mink", "mia_minkpp", "mia_loss", "forget_em", "forget_es", "forget_prob"]
    results = evaluate(scenario, scenario.original, names=names, cache=cache)
    return results, cache.output(scenario.original, scenario.forget, "token_statistics")


def records(stats):
    """(all scored positions, text positions) of each record: the text is all but the last."""
    for start, end in zip(stats.offsets[:-1], stats.offsets[1:]):
        yield range(start, end), range(start, end - 1)


def test_the_closing_eos_is_marked_and_is_each_records_last_token(language_scenario, target):
    scenario, (_, stats) = language_scenario, target
    task = scenario.task
    assert stats.closing.sum() == len(scenario.forget)
    for i, (scored, _) in enumerate(records(stats)):
        assert np.flatnonzero(stats.closing[scored.start:scored.stop]).tolist() == [len(scored) - 1]
        batch = task.make_batch(scenario.forget.records[i:i + 1], scenario.forget.ids[i:i + 1])
        assert int(batch.answer_tokens[-1]) == task.eos_id
        assert len(batch.answer_tokens) == len(scored)


def test_min_k_scores_the_text_tokens_only(target):
    results, stats = target
    expected = [lowest_share_mean([stats.log_probs[t] for t in text]) for _, text in records(stats)]
    np.testing.assert_allclose(results["mia_mink"].per_example, expected, rtol=0, atol=TOL)


def test_min_k_plus_plus_scores_the_text_tokens_only(target):
    results, stats = target
    z = (stats.log_probs - stats.mu) / np.maximum(stats.sigma, 1e-3)
    expected = [lowest_share_mean([z[t] for t in text]) for _, text in records(stats)]
    np.testing.assert_allclose(results["mia_minkpp"].per_example, expected, rtol=0, atol=TOL)


def test_exact_memorisation_and_extraction_strength_without_eos(target):
    results, stats = target
    em, es = [], []
    for _, text in records(stats):
        hits = [bool(stats.hit[t]) for t in text]
        em.append(sum(hits) / len(hits))
        misses = [k for k, h in enumerate(hits) if not h]
        es.append(1 - (misses[-1] + 1 if misses else 0) / len(hits))
    np.testing.assert_allclose(results["forget_em"].per_example, em, rtol=0, atol=TOL)
    np.testing.assert_allclose(results["forget_es"].per_example, es, rtol=0, atol=TOL)


def test_probability_and_loss_keep_the_eos(target):
    """TOFU's labels end with one <eos>: its probability (and the LOSS attack, as
    open-unlearning's) averages over the answer tokens and the <eos>."""
    results, stats = target
    mean_log_p = np.array([np.mean([stats.log_probs[t] for t in scored])
                           for scored, _ in records(stats)])
    np.testing.assert_allclose(results["forget_prob"].per_example, np.exp(mean_log_p),
                               rtol=TOL, atol=0)
    np.testing.assert_allclose(results["mia_loss"].per_example, mean_log_p, rtol=0, atol=TOL)


def test_privleak_is_muses_computation(language_scenario):
    """MUSE: score = −(Min-40% of −log p) over the text, forget labelled 0 and holdout 1,
    sklearn's ROC AUC, then (AUC_u − AUC_R) / AUC_R × 100 with the retain model's AUC. Each
    model's MUSE AUC is 1 − its member-oriented ``mia_mink``."""
    scenario = language_scenario
    cache = InferenceCache(scenario.task)
    target = evaluate(scenario, scenario.original, names=["privleak", "mia_mink"], cache=cache)
    retain = evaluate(scenario, scenario.reference, names=["mia_mink"], cache=cache)

    def muse_auc(model):
        ppl = {}  # MUSE's name for the Min-40% value: −mean of the lowest 40% log p
        for split in ("forget", "holdout"):
            stats = cache.output(model, scenario.splits[split], "token_statistics")
            # MUSE averages an empty slice when int(0.4 n) = 0; ours takes at least one token
            assert min(len(t) for _, t in records(stats)) >= 3
            lowest = [np.sort(stats.log_probs[list(text)])[:int(len(text) * 0.4)]
                      for _, text in records(stats)]
            ppl[split] = [-np.mean(values) for values in lowest]
        y = [0] * len(ppl["forget"]) + [1] * len(ppl["holdout"])
        fpr, tpr, _ = roc_curve(y, -np.array(ppl["forget"] + ppl["holdout"]))
        return auc(fpr, tpr)

    # trapezoid areas versus rank sums: equal up to rounding of sums of O(1) terms (~1e-15),
    # amplified by ×100 / AUC_R (AUC_R about 0.5) for PrivLeak
    auc_u, auc_r = muse_auc(scenario.original), muse_auc(scenario.reference)
    assert 1 - target["mia_mink"].value == pytest.approx(auc_u, abs=1e-12)
    assert 1 - retain["mia_mink"].value == pytest.approx(auc_r, abs=1e-12)
    assert 0.2 < auc_r < 0.8  # the retain model barely tells them apart
    assert target["privleak"].value == pytest.approx((auc_u - auc_r) / auc_r * 100, abs=1e-9)
    assert target["privleak"].value < -50  # the target still leaks: strongly negative


def test_text_only_repacks_offsets():
    stats = TokenStats(log_probs=np.array([-1.0, -2.0, -0.1, -0.2, -3.0, -0.3]),
                       mu=np.zeros(6), sigma=np.ones(6), hit=np.array([1, 0, 1, 1, 0, 1], bool),
                       offsets=np.array([0, 3, 4, 6]),
                       closing=np.array([0, 0, 1, 1, 0, 1], bool))
    text = stats.text_only()
    np.testing.assert_array_equal(text.offsets, [0, 2, 2, 3])
    np.testing.assert_array_equal(text.log_probs, [-1.0, -2.0, -3.0])
    assert not text.closing.any()
    # the record that is only an <eos> has no text: NaN, which the AUC drops
    np.testing.assert_allclose(min_k_score(text.log_probs, text.offsets, 1.0), [-1.5, np.nan, -3.0])
