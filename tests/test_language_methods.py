"""The language-model unlearning objectives (NPO, SimNPO, KL, IdkNLL, IdkDPO, WGA, SatImp,
task vector, UNDIAL, RMU) on the small real scenario of ``test_language.py`` (20 fictitious
people, a one-layer tiny Llama trained once in a temporary cache): each makes the forget
answers less likely than the original does, and the loss formulas match hand computations
on a real batch. (The method contract — determinism, no mutation, finite weights, the step
budget — runs over these methods in ``test_language.py``.)"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import unlearnbench
from unlearnbench import registry
from unlearnbench.errors import UserError
from unlearnbench.methods.idk import dpo_loss, refusal_split
from unlearnbench.methods.lm_objectives import sequence_log_prob, token_nll_and_prob
from unlearnbench.methods.npo import npo_loss, simnpo_loss
from unlearnbench.methods._shared import decoder_layers
from unlearnbench.methods.rmu import pick_layer
from unlearnbench.methods.undial import adjusted_targets
from unlearnbench.methods.wga import weighted_ascent_loss

from language_fixtures import SEED, forget_probability, task_without_refusals, unlearn_context
from language_fixtures import batch as batch, scenario as scenario  # fixtures: see there

METHODS = ["npo", "simnpo", "kl", "idknll", "idkdpo", "wga", "satimp", "task_vector",
           "undial", "rmu"]


def manual_log_probs(model, batch) -> torch.Tensor:
    """Σ_t log p(y_t | y_<t, x) per example, straight from the model's logits."""
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    log_p = F.log_softmax(logits[:, :-1].float(), dim=-1)
    scored = batch.targets != -100
    picked = log_p.gather(-1, batch.targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * scored).sum(1)


def test_all_are_registered_for_language_only():
    for name in METHODS:
        assert registry.methods.get(name).attributes["tasks"] == ("language",)


@pytest.mark.parametrize("method", METHODS)
def test_lowers_the_forget_answer_probability(scenario, method):
    model, timings = unlearnbench.unlearn(scenario, method, seed=SEED)
    before, after = forget_probability(scenario, scenario.original), forget_probability(scenario, model)
    assert before > 0.5  # the target knows its forget answers
    assert after < before - 0.005, f"{method}: forget probability {before:.3f} -> {after:.3f}"
    assert timings["steps"] > 0


def retain_probability(scenario, model) -> float:
    return float(torch.exp(-scenario.task.answer_nll(model, scenario.splits["retain_eval"])).mean())


# NPO, SimNPO, GradDiff and RMU pair their forget loss with a retain term, and must keep the
# retain answers' probability within 15% of the target's. The bound: the retain model (trained
# on the retain set alone) is 2% below the target here (0.89 against 0.905), so a 15% loss is
# a clear loss of utility, yet it leaves room for RMU's noise in the shared representation
# (measured 0.79, the others 0.88-0.91); GA pushed to full forgetting without a retain term
# falls to 0.08 (``test_the_retain_bound_catches_a_collapse``).
RETAIN_BOUND = 0.85
KEEPS_RETAIN = ["npo", "simnpo", "graddiff", "rmu"]


@pytest.mark.parametrize("method", KEEPS_RETAIN)
def test_keeps_the_retain_answers_within_the_bound(scenario, method):
    model, _ = unlearnbench.unlearn(scenario, method, seed=SEED)
    before, after = retain_probability(scenario, scenario.original), retain_probability(scenario, model)
    assert after >= RETAIN_BOUND * before, f"{method}: retain probability {before:.3f} -> {after:.3f}"
    assert forget_probability(scenario, model) < forget_probability(scenario, scenario.original)


def test_the_retain_bound_catches_a_collapse(scenario):
    model, _ = unlearnbench.unlearn(scenario, "ga", {"lr": 0.2}, seed=SEED)
    assert retain_probability(scenario, model) < RETAIN_BOUND * retain_probability(
        scenario, scenario.original)


def test_sequence_log_prob_is_the_summed_answer_log_probability(scenario, batch):
    ours = sequence_log_prob(scenario.task, scenario.original, batch).detach()
    torch.testing.assert_close(ours, manual_log_probs(scenario.original, batch), rtol=1e-5,
                               atol=1e-4)


def test_npo_loss_by_hand(scenario, batch):
    log_p = manual_log_probs(scenario.original, batch)
    # θ = θ₀: every log-ratio is 0, σ(0) = 1/2, so the loss is (2/β)·log 2
    assert npo_loss(log_p, log_p, 0.1).item() == pytest.approx(20 * math.log(2), rel=1e-6)
    # answers 5 and 10 nats less likely than under θ₀: −(2/β)·mean log σ(β·[5, 10, ...])
    drop = torch.tensor([5.0, 10.0, 0.0, 20.0])
    expected = -20 * np.mean([math.log(1 / (1 + math.exp(-0.1 * d))) for d in drop.tolist()])
    assert npo_loss(log_p - drop, log_p, 0.1).item() == pytest.approx(expected, rel=1e-6)


def test_simnpo_loss_by_hand(scenario, batch):
    log_p = manual_log_probs(scenario.original, batch)
    lengths = (batch.targets != -100).sum(1).float()
    expected = np.mean([-(2 / 4.5) * math.log(1 / (1 + math.exp(-(-(4.5 / n) * lp - 0.5))))
                        for lp, n in zip(log_p.tolist(), lengths.tolist())])
    assert simnpo_loss(log_p, lengths, 4.5, 0.5).item() == pytest.approx(expected, rel=1e-5)
    # the length normalisation is the task's per-token mean NLL
    torch.testing.assert_close(-log_p / lengths, scenario.task.nll(scenario.original, batch)
                               .detach(), rtol=1e-5, atol=1e-5)


def test_dpo_loss_by_hand(scenario, batch):
    log_p = manual_log_probs(scenario.original, batch)
    assert dpo_loss(log_p, log_p, log_p, log_p, 0.1).item() == pytest.approx(math.log(2))
    # refusal up 3 nats, answer down 7: margin β·10 = 1
    loss = dpo_loss(log_p + 3, log_p, log_p - 7, log_p, 0.1).item()
    assert loss == pytest.approx(-math.log(1 / (1 + math.exp(-1.0))), rel=1e-6)


def test_token_weights_by_hand(scenario, batch):
    ce, p = token_nll_and_prob(scenario.task, scenario.original, batch)
    assert len(ce) == int((batch.targets != -100).sum())
    assert not p.requires_grad
    torch.testing.assert_close(p, torch.exp(-ce.detach()))
    values = torch.tensor([1.0, 2.0, 4.0])
    weights = torch.tensor([0.5, 0.25, 0.0])
    assert weighted_ascent_loss(values, weights).item() == pytest.approx(-(0.5 + 0.5) / 3)
    # β = 0: WGA is plain gradient ascent, the token mean of −CE
    assert weighted_ascent_loss(ce, p.pow(0.0)).item() == pytest.approx(-ce.mean().item())


def test_undial_targets_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    target = adjusted_targets(logits, torch.tensor([0, 1]), beta=10.0)
    expected = torch.softmax(torch.tensor([[-8.0, 0.0, 0.0], [0.0, -9.0, 0.0]]), dim=-1)
    torch.testing.assert_close(target, expected)


def test_refusals_replace_the_answers_deterministically(scenario):
    ctx = unlearn_context(scenario)
    idk = refusal_split(ctx, SEED)
    refusals = set(scenario.task.data.refusals)
    assert refusals
    np.testing.assert_array_equal(idk.ids, scenario.forget.ids)
    for old, new in zip(scenario.forget.records, idk.records):
        assert new["answer"] in refusals and new["question"] == old["question"]
    assert refusal_split(ctx, SEED).records == idk.records
    assert len({r["answer"] for r in idk.records}) > 1  # drawn, not always the first


@pytest.mark.parametrize("method", ["idknll", "idkdpo"])
def test_idk_methods_refuse_a_data_set_without_refusals(scenario, method):
    bare = task_without_refusals(scenario.task)
    entry = registry.methods.get(method)
    with pytest.raises(UserError, match="no refusal strings"):
        entry.obj(unlearn_context(scenario, bare), entry.params())


def test_task_vector_is_the_negated_fine_tuning_difference(scenario):
    """α = −1 returns θ_ft itself; α = 5 lands at θ₀ − 5·(θ_ft − θ₀); α = 0 at θ₀."""
    fine_tuned, _ = unlearnbench.unlearn(scenario, "task_vector", {"alpha": -1.0, "epochs": 2})
    negated, _ = unlearnbench.unlearn(scenario, "task_vector", {"alpha": 5.0, "epochs": 2})
    same, _ = unlearnbench.unlearn(scenario, "task_vector", {"alpha": 0.0, "epochs": 2})
    original = dict(scenario.original.named_parameters())
    moved = 0
    for name, parameter in negated.named_parameters():
        delta = dict(fine_tuned.named_parameters())[name] - original[name]
        torch.testing.assert_close(parameter, original[name] - 5 * delta, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(dict(same.named_parameters())[name], original[name])
        moved += int(delta.abs().max() > 0)
    assert moved > 0


def test_rmu_updates_only_the_chosen_blocks_mlp(scenario):
    model, _ = unlearnbench.unlearn(scenario, "rmu", seed=SEED)
    name, blocks = decoder_layers(model)
    layer = pick_layer(len(blocks), None)
    assert layer == len(blocks) - 1  # one-layer model: its only block
    changed = [k for k, v in model.state_dict().items()
               if not torch.equal(v, scenario.original.state_dict()[k])]
    assert changed and all(k.startswith(f"{name}.{layer}.mlp.") for k in changed)
    assert pick_layer(32, None) == 7 and pick_layer(30, None) == 7 and pick_layer(4, -1) == 3
    with pytest.raises(UserError, match="out of range"):
        pick_layer(2, 5)
