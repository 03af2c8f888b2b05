"""The calibration checks of ``benchmarks/calibrate.py`` on a MUSE corpus (news-mini): MUSE's
criteria (VerbMem and KnowMem on forget, KnowMem on retain, PrivLeak) on synthetic numbers,
and which metrics the script asks each benchmark for."""
from __future__ import annotations

import pytest

from test_calibration import REFERENCE as ENTITIES_REFERENCE, calibrate
from test_calibration import ORIGINAL as ENTITIES_ORIGINAL, null_runs as entities_null
from unlearnbench.scenarios import get_spec

# Values on MUSE's scales: VerbMem and KnowMem are ROUGE-L F1 x100, PrivLeak in points.
REFERENCE = {"verbmem_forget": 20.0, "knowmem_forget": 30.0, "knowmem_retain": 60.0,
             "forget_prob": 0.30, "retain_prob": 0.90, "privleak": 0.0}
ORIGINAL = {"verbmem_forget": 90.0, "knowmem_forget": 70.0, "knowmem_retain": 62.0,
            "forget_prob": 0.95, "retain_prob": 0.92, "privleak": -95.0}
MUSE_CHECKS = ["null verbmem_forget", "null knowmem_forget", "null knowmem_retain",
               "original verbmem_forget", "original knowmem_forget", "KnowMem on retain"]


def null_runs(n: int = 5, **values) -> list[dict]:
    return [dict(REFERENCE, privleak=3.0, **values) for _ in range(n)]


def verdicts(reference: dict, original: dict, null: list[dict]) -> dict[str, str]:
    return {c.name: c.verdict for c in calibrate.checks(reference, original, null)}


def test_a_calibrated_muse_corpus_passes_and_skips_the_tofu_checks():
    results = verdicts(REFERENCE, ORIGINAL, null_runs(verbmem_forget=23.0, knowmem_forget=27.0))
    assert all(results[name] == "PASS" for name in MUSE_CHECKS), results
    assert results["null privleak"] == "PASS" and results["original PrivLeak"] == "PASS"
    for name in ("null forget quality", "null forget_truth_ratio", "original forget quality",
                 "original forget truth ratio", "model utility"):
        assert results[name] == "SKIP", name


def test_the_entities_skip_the_muse_checks_and_pass_the_others():
    results = verdicts(ENTITIES_REFERENCE, ENTITIES_ORIGINAL,
                       entities_null([0.9, 0.6, 0.3, 0.04, 0.7], forget_truth_ratio=0.76))
    assert all(results[name] == "SKIP" for name in MUSE_CHECKS), results
    assert all(v == "PASS" for name, v in results.items() if name not in MUSE_CHECKS), results


@pytest.mark.parametrize("metric, near, far", [("verbmem_forget", 24.0, 26.0),
                                               ("knowmem_forget", 26.0, 24.0),
                                               ("knowmem_retain", 55.5, 54.0)])
def test_the_null_memorisation_must_lie_near_the_reference(metric, near, far):
    """Within 5 points (x100) of the reference's value, for every seed."""
    assert calibrate.near_reference(metric, REFERENCE, null_runs(**{metric: near})).passed
    mixed = null_runs(4, **{metric: near}) + null_runs(1, **{metric: far})
    assert calibrate.near_reference(metric, REFERENCE, mixed).passed is False


@pytest.mark.parametrize("metric", calibrate.MEMORISED)
def test_the_original_must_remember_the_forget_set(metric):
    null = null_runs()
    assert calibrate.separation_memory(metric, ORIGINAL, REFERENCE, null).passed
    # above the reference, but within the margin
    close = dict(ORIGINAL, **{metric: REFERENCE[metric] + 4.0})
    check = calibrate.separation_memory(metric, close, REFERENCE, null)
    assert check.passed is False and check.verdict == "FAIL"
    # above the reference by the margin, but an independent retrain remembers more
    noisy = null_runs(1, **{metric: ORIGINAL[metric] + 1.0})
    assert calibrate.separation_memory(metric, ORIGINAL, REFERENCE, noisy).passed is False


def test_knowmem_on_retain_within_ten_percent_and_far_from_zero():
    assert calibrate.retain_knowledge(ORIGINAL, REFERENCE).passed
    assert calibrate.retain_knowledge(dict(ORIGINAL, knowmem_retain=52.0), REFERENCE).passed is False
    # within 10% of each other, but both near 0: a model that knows nothing
    low = {"knowmem_retain": 5.0}
    assert calibrate.retain_knowledge(dict(ORIGINAL, **low), dict(REFERENCE, **low)).passed is False
    assert calibrate.retain_knowledge({}, REFERENCE).verdict == "SKIP"


def test_muse_metrics_are_asked_only_of_a_muse_corpus():
    """news-mini gets MUSE's three metrics after the TOFU list; the entities keep exactly the
    TOFU list (a job's key holds it, so their stored runs stay valid)."""
    assert calibrate.requested(get_spec("entities-forget01")) == calibrate.METRICS
    assert calibrate.requested(get_spec("news-mini")) == calibrate.METRICS + calibrate.MUSE
    table = calibrate.table({"reference": REFERENCE, "original": ORIGINAL})
    assert "| knowmem_retain | 60.000 | 62.000 |" in table
    assert "forget_quality" not in table
