"""Behaviour specific to the distillation and boundary methods: SCRUB, Bad Teacher, boundary
shrinking/expanding and UNSIR (the shared contract is in test_methods_contract.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import unlearnbench
from unlearnbench.cache import ModelCache
from unlearnbench.errors import UserError
from unlearnbench.methods._shared import distill_kl, frozen_teacher, retain_subset
from unlearnbench.methods.bad_teacher import incompetent_teacher, mixed_batches
from unlearnbench.methods.base import UnlearnContext
from unlearnbench.methods.boundary import narrow_linear, nearest_wrong_labels, widen_linear
from unlearnbench.methods.unsir import error_maximising_noise
from unlearnbench.train import StepBudget

SEED = 0


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return ModelCache(tmp_path_factory.mktemp("distill-model-cache"))


@pytest.fixture(scope="module")
def scenario(cache):
    return unlearnbench.scenario("digits-random10", seed=SEED, cache=cache)


@pytest.fixture(scope="module")
def class_scenario(cache):
    return unlearnbench.scenario("digits-class", seed=SEED, cache=cache)


def context(scenario, original=None, max_steps=None) -> UnlearnContext:
    return UnlearnContext(scenario.task, scenario.original if original is None else original,
                          scenario.forget, scenario.retain, scenario.spec.recipe, SEED,
                          StepBudget(max_steps))


def grads(model: nn.Module) -> list:
    return [None if p.grad is None else p.grad.clone() for p in model.parameters()]


def assert_same_grads(before: list, model: nn.Module) -> None:
    for old, parameter in zip(before, model.parameters()):
        assert (old is None and parameter.grad is None) or torch.equal(old, parameter.grad)


def assert_same_weights(a: nn.Module, b: nn.Module, exact: bool = True) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        if exact:
            assert torch.equal(sa[key], sb[key]), key
        else:
            torch.testing.assert_close(sa[key], sb[key], rtol=1e-5, atol=1e-7, msg=key)


# --- the KL used by SCRUB and Bad Teacher -------------------------------------------------

def test_distill_kl_closed_form():
    teacher = torch.tensor([[0.0, math.log(3.0)]])   # p_t = (1/4, 3/4)
    student = torch.tensor([[0.0, 0.0]])             # p_s = (1/2, 1/2)
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert distill_kl(student, teacher, 1.0).item() == pytest.approx(expected, rel=1e-6)
    # Temperature T: softmax of logits / T, and the T² factor.
    p = torch.softmax(teacher / 2.0, dim=-1)[0]
    expected_t2 = 4.0 * float((p * (p / 0.5).log()).sum())
    assert distill_kl(student, teacher, 2.0).item() == pytest.approx(expected_t2, rel=1e-6)
    assert distill_kl(teacher, teacher, 4.0).item() == pytest.approx(0.0, abs=1e-7)


def test_distill_kl_is_per_position_over_the_last_dimension():
    """Language-model logits (batch, tokens, vocabulary): one KL per token."""
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(2, 3, 5, generator=generator)
    teacher = torch.randn(2, 3, 5, generator=generator)
    kl = distill_kl(student, teacher, 1.0)
    assert kl.shape == (2, 3)
    assert torch.allclose(kl[1, 2], distill_kl(student[1, 2:3], teacher[1, 2:3], 1.0)[0])
    assert (kl >= 0).all()


# --- SCRUB ----------------------------------------------------------------------------------

def test_scrub_without_max_steps_or_kl_is_finetuning(scenario):
    """msteps=0, α=0, γ=1, no weight decay: SCRUB's min-steps are FT's steps, bit for bit."""
    scrub, _ = unlearnbench.unlearn(scenario, "scrub", {
        "msteps": 0, "alpha": 0.0, "gamma": 1.0, "weight_decay": 0.0, "lr": 0.01,
        "batch_size": 64, "epochs": 2}, seed=SEED, max_steps=20)
    finetune, _ = unlearnbench.unlearn(scenario, "finetune", {
        "lr": 0.01, "batch_size": 64, "epochs": 2, "momentum": 0.9}, seed=SEED, max_steps=20)
    assert_same_weights(scrub, finetune)


def test_scrub_min_step_matches_closed_form(scenario):
    """One min-step with α=0: θ₁ = θ₀ − lr·γ·∇ mean CE(first shuffled retain batch)."""
    lr, gamma = 0.02, 0.5
    model, _ = unlearnbench.unlearn(scenario, "scrub", {
        "msteps": 0, "alpha": 0.0, "gamma": gamma, "weight_decay": 0.0, "lr": lr},
        seed=SEED, max_steps=1)
    task = scenario.task
    batch = next(iter(task.batches(scenario.retain, 64, True, SEED * 1000)))
    reference = context(scenario).copy_original()
    reference.zero_grad()
    task.nll(reference, batch).mean().backward()
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter -= lr * gamma * parameter.grad
    assert_same_weights(model, reference, exact=False)


def test_scrub_max_steps_push_the_student_away_from_the_teacher_on_the_forget_set(class_scenario):
    """Max-steps raise KL(teacher ‖ student) on the forget set, much more than on retain.

    Not from the start: KL is minimal at student = teacher, so its gradient is zero and the
    first max-steps move the student only by rounding noise (KL ~1e-7, of either sign). So
    compare the student after epoch 0 (max-steps, then min-steps on retain: KL ~6e-3 on the
    forgotten class) with the same student after epoch 1's 4 max-steps too (KL ~0.6, 5x
    the retain set's rise)."""
    scenario = class_scenario
    params = {"epochs": 2, "msteps": 2, "lr": 0.005, "batch_size": 128,
              "forget_batch_size": 32, "max_grad_norm": 0.0}
    max_steps = math.ceil(len(scenario.forget) / 32)
    epoch_0 = max_steps + math.ceil(len(scenario.retain) / 128)
    before, _ = unlearnbench.unlearn(scenario, "scrub", params, seed=SEED, max_steps=epoch_0)
    after, timings = unlearnbench.unlearn(scenario, "scrub", params, seed=SEED,
                                          max_steps=epoch_0 + max_steps)
    assert timings["steps"] == epoch_0 + max_steps

    def kl(model, split):
        with torch.no_grad():
            student = scenario.task.predict_logits(model, split)
            teacher = scenario.task.predict_logits(scenario.original, split)
            return distill_kl(student, teacher, 4.0).mean().item()

    forget_before, forget_after = kl(before, scenario.forget), kl(after, scenario.forget)
    retain_before, retain_after = kl(before, scenario.retain), kl(after, scenario.retain)
    assert forget_after > 10 * forget_before
    assert forget_after - forget_before > 2 * (retain_after - retain_before)


def test_frozen_teacher_is_the_original_itself_in_eval_mode(scenario):
    ctx = context(scenario)
    assert not scenario.original.training
    assert frozen_teacher(ctx) is scenario.original
    # An original handed over in training mode is not flipped: one frozen copy is made.
    live = nn.Linear(3, 2).train()
    teacher = frozen_teacher(context(scenario, original=live))
    assert teacher is not live and live.training and not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())


def test_scrub_leaves_the_original_in_eval_mode(scenario):
    unlearnbench.unlearn(scenario, "scrub", seed=SEED, max_steps=12)
    assert not scenario.original.training


# --- Bad Teacher ----------------------------------------------------------------------------

def test_incompetent_teacher_is_deterministic_under_the_seed(scenario):
    ctx = context(scenario)
    first = incompetent_teacher(ctx)
    torch.manual_seed(12345)  # the global RNG state must not matter
    torch.rand(7)
    second = incompetent_teacher(ctx)
    assert_same_weights(first, second)
    assert not first.training and all(not p.requires_grad for p in first.parameters())
    # A random model, not the original (nor the seed's own initialisation).
    assert not torch.equal(first.state_dict()["net.1.weight"],
                           scenario.original.state_dict()["net.1.weight"])
    assert not torch.equal(first.state_dict()["net.1.weight"],
                           scenario.task.fresh_model(SEED).state_dict()["net.1.weight"])
    other = UnlearnContext(scenario.task, scenario.original, scenario.forget, scenario.retain,
                           scenario.spec.recipe, SEED + 5)
    assert not torch.equal(incompetent_teacher(other).state_dict()["net.1.weight"],
                           first.state_dict()["net.1.weight"])


def test_bad_teacher_mixes_forget_and_retain_subset_once_per_epoch(scenario):
    retain = retain_subset(scenario.retain, 0.3, SEED)
    assert len(retain) == round(0.3 * len(scenario.retain))
    assert set(retain.ids) <= set(scenario.retain.ids)
    pairs = list(mixed_batches(scenario.task, scenario.forget, retain, 64, 2, SEED))
    steps = math.ceil((len(scenario.forget) + len(retain)) / 64)
    assert len(pairs) == 2 * steps
    for epoch in range(2):
        seen_f, seen_r = [], []
        for forget_batch, retain_batch in pairs[epoch * steps:(epoch + 1) * steps]:
            assert forget_batch is not None or retain_batch is not None
            if forget_batch is not None:
                seen_f.extend(forget_batch.ids.tolist())
            if retain_batch is not None:
                seen_r.extend(retain_batch.ids.tolist())
        assert sorted(seen_f) == sorted(scenario.forget.ids.tolist())
        assert sorted(seen_r) == sorted(retain.ids.tolist())


def test_bad_teacher_moves_forget_outputs_toward_the_random_teacher(scenario):
    model, _ = unlearnbench.unlearn(scenario, "bad_teacher", seed=SEED)
    bad = incompetent_teacher(context(scenario))
    task = scenario.task

    def kl_to_bad(m):
        return distill_kl(task.predict_logits(m, scenario.forget),
                          task.predict_logits(bad, scenario.forget)).mean().item()

    assert kl_to_bad(model) < kl_to_bad(scenario.original)


# --- boundary shrinking -----------------------------------------------------------------------

def test_nearest_wrong_labels_on_a_hand_made_linear_model():
    model = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]))
    x = torch.tensor([[1.0, 0.2]])   # logits (1.0, 0.2, 0.6): class 0, then class 2
    y = torch.tensor([0])
    # No perturbation: the prediction stays the true class -> the best wrong class (2).
    assert nearest_wrong_labels(model, x, y, bound=0.0).tolist() == [2]
    # A large FGSM step crosses the boundary: the label is the perturbed input's prediction.
    grad_sign = torch.tensor([[-1.0, 1.0]])  # CE grows by lowering x₀ and raising x₁
    x_adv = x + 1.0 * grad_sign
    expected = model(x_adv).argmax(1)
    assert expected.item() == 1
    assert nearest_wrong_labels(model, x, y, bound=1.0).tolist() == [1]
    assert model.weight.grad is None  # only input gradients were taken


def test_boundary_shrink_labels_are_never_the_true_class(scenario):
    grads_before = grads(scenario.original)
    labels = nearest_wrong_labels(scenario.original, scenario.forget.inputs,
                                  scenario.forget.targets, bound=0.1)
    assert labels.shape == scenario.forget.targets.shape
    assert (labels != scenario.forget.targets).all()
    assert_same_grads(grads_before, scenario.original)  # only input gradients were taken


# --- boundary expanding -----------------------------------------------------------------------

def test_widen_then_narrow_restores_the_layer():
    layer = nn.Linear(4, 3)
    wide = widen_linear(layer, torch.Generator().manual_seed(0))
    assert wide.out_features == 4
    assert torch.equal(wide.weight[:3], layer.weight) and torch.equal(wide.bias[:3], layer.bias)
    assert wide.bias[3].item() == 0.0 and wide.weight[3].abs().sum() > 0
    narrow = narrow_linear(wide)
    assert torch.equal(narrow.weight, layer.weight) and torch.equal(narrow.bias, layer.bias)


def test_boundary_expand_keeps_the_output_width_and_moves_forget_logits(scenario):
    model, _ = unlearnbench.unlearn(scenario, "boundary_expand", seed=SEED)
    task = scenario.task
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert head.out_features == task.num_classes
    after = task.predict_logits(model, scenario.forget)
    before = task.predict_logits(scenario.original, scenario.forget)
    assert after.shape == before.shape == (len(scenario.forget), task.num_classes)
    assert not torch.allclose(after, before)
    # Training toward the shadow class lowers the true-class probability on the forget set.
    true_prob = lambda logits: torch.softmax(logits, 1).gather(  # noqa: E731
        1, scenario.forget.targets[:, None]).mean()
    assert true_prob(after) < true_prob(before)


def test_boundary_expand_with_no_steps_is_the_original(scenario):
    """Widening and pruning alone change nothing: the old rows are copied exactly."""
    model, _ = unlearnbench.unlearn(scenario, "boundary_expand", seed=SEED, max_steps=0)
    assert_same_weights(model, scenario.original)


def test_boundary_expand_refuses_a_model_without_a_linear_head(scenario):
    conv_head = nn.Sequential(nn.Conv2d(1, 10, kernel_size=8), nn.Flatten()).eval()
    with pytest.raises(UserError, match="nn.Linear"):
        from unlearnbench.methods.boundary import BoundaryExpandParams, boundary_expand
        boundary_expand(context(scenario, original=conv_head), BoundaryExpandParams())


# --- UNSIR ----------------------------------------------------------------------------------

def test_unsir_noise_has_the_input_shape_and_raises_the_loss(scenario):
    model = scenario.original
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads_before = grads(model)
    classes = torch.tensor([3])
    shape = tuple(scenario.forget.inputs.shape[1:])
    start = error_maximising_noise(model, classes, shape, steps=0, seed=SEED)
    noise = error_maximising_noise(model, classes, shape, steps=25, seed=SEED)
    assert noise.shape == (1, 1, *shape)
    assert noise[0, 0].shape == scenario.forget.inputs[0].shape
    labels = torch.tensor([3])
    with torch.no_grad():
        loss_start = F.cross_entropy(model(start[0]), labels).item()
        loss_end = F.cross_entropy(model(noise[0]), labels).item()
    assert loss_end > loss_start
    # The model is only read.
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    assert_same_grads(grads_before, model)
    assert not model.training


def test_unsir_noise_per_forget_class_and_budget(scenario):
    classes = torch.unique(scenario.forget.targets)  # a random forget set touches every class
    shape = tuple(scenario.forget.inputs.shape[1:])
    budget = StepBudget(3)
    noise = error_maximising_noise(scenario.original, classes, shape, steps=25, per_class=2,
                                   seed=SEED, budget=budget)
    assert noise.shape == (len(classes), 2, *shape)
    assert budget.used == 3  # every noise step is an optimizer step, charged to the budget
    again = error_maximising_noise(scenario.original, classes, shape, steps=3, per_class=2,
                                   seed=SEED)
    assert torch.equal(noise, again)


def test_unsir_forgets_a_class(class_scenario):
    """Digits class 3 (the setting UNSIR is made for): forget accuracy near the retrained
    model's (0%), retain accuracy kept."""
    scenario = class_scenario
    model, _ = unlearnbench.unlearn(scenario, "unsir", seed=SEED)
    results = unlearnbench.evaluate(scenario, model, names=["forget_accuracy", "ra"])
    assert results["forget_accuracy"].value < 10
    assert results["ra"].value > 95
    assert np.isfinite(results["ra"].value)


def test_scrub_gradient_clipping_bounds_the_step(scenario):
    """max_grad_norm > 0 clips before each step: a first step whose gradient is longer than
    the cap moves the weights by lr·max_grad_norm (SGD, zero momentum buffer, no weight
    decay). A min-step (msteps=0): the first max-step has no gradient (student = teacher)."""
    lr, clip = 0.005, 0.1

    def moved(max_grad_norm):
        model, _ = unlearnbench.unlearn(scenario, "scrub", {
            "msteps": 0, "max_grad_norm": max_grad_norm, "weight_decay": 0.0, "lr": lr},
            seed=SEED, max_steps=1)
        return math.sqrt(sum(((a.double() - b.double()) ** 2).sum().item()
                             for a, b in zip(model.parameters(), scenario.original.parameters())))

    assert moved(0.0) > 2 * lr * clip  # unclipped, the step would be longer
    # Each stepped float32 weight is rounded by at most half an ulp, ≤ eps/2·|θ|.
    eps = torch.finfo(torch.float32).eps
    rounding = math.sqrt(sum(((eps / 2 * p.double()) ** 2).sum().item()
                             for p in scenario.original.parameters()))
    assert moved(clip) == pytest.approx(lr * clip, abs=rounding)
