"""Class unlearning through concepts (LEACE on the penultimate features): the eraser's
defining property on known data, the method contract and quality on digits-class, the
refusal of a request that is not a class (through the library and the command line)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import unlearnbench
from unlearnbench import testing
from unlearnbench.cache import ModelCache
from unlearnbench.errors import UserError
from unlearnbench.methods.analytic import penultimate_features
from unlearnbench.methods.concept_erasure import leace_eraser
from unlearnbench.metrics.evaluation import evaluate

CLI = Path(sys.executable).parent / "unlearnbench"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return ModelCache(tmp_path_factory.mktemp("concept-cache"))


@pytest.fixture(scope="module")
def class_scenario(cache):
    return unlearnbench.scenario("digits-class", seed=0, cache=cache)


def test_the_eraser_equalises_the_class_means_and_edits_one_direction():
    """On correlated Gaussian features whose class shifts the mean, r(x) = x − a bᵀ(x − μ)
    leaves the two class-conditional means equal (float64: to 1e-9 of features of order 1)
    and moves every point along the single direction a."""
    generator = torch.Generator().manual_seed(0)
    mixing = torch.randn(6, 6, generator=generator, dtype=torch.float64)
    concept = (torch.rand(500, generator=generator) < 0.3).to(torch.float64)
    features = torch.randn(500, 6, generator=generator, dtype=torch.float64) @ mixing
    features += concept[:, None] * torch.tensor([2.0, -1, 0, 0.5, 0, 1], dtype=torch.float64)
    a, b, mean = leace_eraser(features, concept, 1e-8)
    erased = features - torch.outer((features - mean) @ b, a)
    gap = erased[concept == 1].mean(0) - erased[concept == 0].mean(0)
    assert gap.abs().max() < 1e-9
    before = features[concept == 1].mean(0) - features[concept == 0].mean(0)
    assert before.abs().max() > 0.5
    edits = features - erased
    assert torch.linalg.matrix_rank(edits).item() == 1


def test_contract_on_class_forgetting(class_scenario):
    testing.check_method("concept_erasure", class_scenario)


def test_forgets_the_class_and_keeps_the_rest(class_scenario):
    """Forget accuracy from 100% to within 5 points of the retrained model's 0%; retain
    accuracy within 2 points of the original's (seed 0: 98.7 against 99.3); test accuracy
    within 2 points of the retrained model's (both lose the class's tenth)."""
    model, timings = unlearnbench.unlearn(class_scenario, "concept_erasure")
    names = ["forget_accuracy", "ra", "ta"]
    got, original, retrained = ({k: r.value for k, r in evaluate(class_scenario, m,
                                                                 names=names).items()}
                                for m in (model, class_scenario.original,
                                          class_scenario.reference))
    assert got["forget_accuracy"] <= retrained["forget_accuracy"] + 5, got
    assert got["ra"] >= original["ra"] - 2, (got, original)
    assert abs(got["ta"] - retrained["ta"]) <= 2, (got, retrained)
    assert timings["steps"] == 0  # closed form


def test_the_features_no_longer_tell_the_class_apart_to_the_head(class_scenario):
    """The new head's class-3 logit has the same mean on class-3 training features as on
    the rest (what LEACE guarantees for every linear function of the features): to 1e-6 of
    logits of order 10, float32 weights."""
    model, _ = unlearnbench.unlearn(class_scenario, "concept_erasure")
    data = class_scenario.task.join("train", [class_scenario.forget, class_scenario.retain])
    features = penultimate_features(class_scenario.task, model, data)
    head = model.net[-1]
    logit = features @ head.weight[3].detach().double() + head.bias[3].detach().double()
    is_three = data.targets == 3
    assert abs(float(logit[is_three].mean() - logit[~is_three].mean())) < 1e-4


def test_refuses_a_random_request(cache):
    scenario = unlearnbench.scenario("digits-random10", seed=0, cache=cache)
    with pytest.raises(UserError, match="'concept_erasure' erases one whole class") as caught:
        unlearnbench.unlearn(scenario, "concept_erasure")
    assert "\n" not in str(caught.value)


@pytest.mark.slow
def test_the_command_line_runs_it_on_a_class_and_refuses_a_random_request(tmp_path):
    db = tmp_path / "runs.db"
    done = subprocess.run([str(CLI), "run", "-b", "digits-class", "-m", "concept_erasure",
                           "--seeds", "1", "--threads", "1", "--db", str(db)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    refused = subprocess.run([str(CLI), "run", "-b", "digits-random10", "-m",
                              "concept_erasure", "--seeds", "1", "--threads", "1",
                              "--db", str(tmp_path / "refused.db")],
                             capture_output=True, text=True, timeout=600)
    # refused before anything is trained: one line, exit 2, no traceback
    assert refused.returncode == 2
    assert "error: method 'concept_erasure' erases one whole class" in refused.stderr
    assert "Traceback" not in refused.stderr
