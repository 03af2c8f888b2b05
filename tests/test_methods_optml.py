"""Behaviour specific to NegGrad+, l1-sparse, prune-then-unlearn, SalUn, CF-k and EU-k, checked
against closed forms on a tiny hand-built classification problem (a 16-feature, 3-class
data set and the registry's MLP, trained for a few epochs), so no benchmark data or model
cache is needed."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from unlearnbench import registry
from unlearnbench.data import DataBundle, make_split
from unlearnbench.methods.base import UnlearnContext
from unlearnbench.models.inspect import last_layers
from unlearnbench.methods.cf_k import CFkParams
from unlearnbench.methods.eu_k import EUkParams
from unlearnbench.methods.l1_sparse import (L1SparseParams, PruneL1Params, global_magnitude_masks,
                                            l1_weight, prunable_weights)
from unlearnbench.methods.neggrad_plus import NegGradPlusParams, forget_cycle
from unlearnbench.methods.salun import SalUnParams, saliency_masks, top_fraction_masks
from unlearnbench.specs import Recipe
from unlearnbench.tasks.classification import ClassificationTask
from unlearnbench.train import StepBudget

SEED = 3
RECIPE = Recipe(epochs=4, batch_size=32, lr=0.05)


def method(name: str):
    return registry.methods.get(name).obj


@pytest.fixture(scope="module")
def problem():
    """A tiny separable 3-class problem: task, trained original, forget and retain splits."""
    generator = torch.Generator().manual_seed(0)
    n, classes = 240, 3
    targets = torch.arange(n) % classes
    centres = torch.randn(classes, 1, 4, 4, generator=generator)
    inputs = centres[targets] + 0.7 * torch.randn(n, 1, 4, 4, generator=generator)
    train = make_split("train", inputs[:180], targets[:180])
    test = make_split("test", inputs[180:], targets[180:])
    bundle = DataBundle("tiny", train, test.subset(np.arange(10), "validation"), test, classes)
    task = ClassificationTask(bundle, "mlp")
    original = task.fit(task.fresh_model(SEED), train, RECIPE, SEED)
    forget_positions = np.arange(0, 180, 6)  # 30 examples
    retain_positions = np.setdiff1d(np.arange(180), forget_positions)
    return task, original, train.subset(forget_positions, "forget"), \
        train.subset(retain_positions, "retain")


def context(problem, max_steps=None, original=None) -> UnlearnContext:
    task, trained, forget, retain = problem
    return UnlearnContext(task, original if original is not None else trained, forget, retain,
                          RECIPE, SEED, StepBudget(max_steps))


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def sgd_step(model: nn.Module, loss: torch.Tensor, lr: float) -> dict[str, torch.Tensor]:
    """θ − lr·∇loss (the first step of SGD with momentum is plain SGD: the buffer is the
    gradient itself)."""
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return {n: (p - lr * g).detach() for (n, p), g in zip(model.named_parameters(), grads)}


def assert_close(model: nn.Module, expected: dict[str, torch.Tensor]):
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.detach(), expected[name], rtol=1e-5, atol=1e-7,
                                   msg=lambda m: f"{name}: {m}")


# --------------------------------------------------------------------------------------------
# NegGrad+
# --------------------------------------------------------------------------------------------
def first_batches(problem, batch_size):
    ctx = context(problem)
    retain = next(iter(ctx.task.batches(ctx.retain, batch_size, True, ctx.seed * 1000)))
    forget = next(forget_cycle(ctx, batch_size))
    return ctx, retain, forget


def test_neggrad_plus_with_beta_one_is_one_step_of_finetuning(problem):
    """β = 1: one step equals θ₀ − lr·∇NLL(first retain batch), and equals `finetune`'s step."""
    params = NegGradPlusParams(beta=1.0, lr=0.03, batch_size=16)
    ctx, retain, _ = first_batches(problem, params.batch_size)
    model = method("neggrad_plus")(context(problem, max_steps=1), params)

    reference = copy.deepcopy(problem[1])
    expected = sgd_step(reference, ctx.task.nll(reference, retain).mean(), params.lr)
    assert_close(model, expected)

    finetuned = method("finetune")(context(problem, max_steps=1),
                                   registry.methods.get("finetune").params(
                                       lr=params.lr, batch_size=params.batch_size))
    for (name, a), b in zip(model.named_parameters(), finetuned.parameters()):
        assert torch.equal(a, b), name


def test_neggrad_plus_one_step_closed_form(problem):
    """Any β: one step is θ₀ − lr·∇[β·NLL(r) − (1 − β)·NLL(f)] on the paired first batches."""
    params = NegGradPlusParams(beta=0.7, lr=0.02, batch_size=16)
    ctx, retain, forget = first_batches(problem, params.batch_size)
    model = method("neggrad_plus")(context(problem, max_steps=1), params)
    reference = copy.deepcopy(problem[1])
    loss = 0.7 * ctx.task.nll(reference, retain).mean() - 0.3 * ctx.task.nll(reference, forget).mean()
    assert_close(model, sgd_step(reference, loss, params.lr))


def test_neggrad_plus_iterates_retain_and_cycles_forget(problem):
    """Steps per epoch = retain batches; the forget loader is cycled (30 forget examples in
    batches of 16 give 2 batches, reshuffled each pass)."""
    ctx = context(problem)
    batches = list(ctx.task.batches(ctx.retain, 16))
    steps = []
    handle = register_optimizer_step_post_hook(
        lambda *args: steps.append(1))
    try:
        method("neggrad_plus")(ctx, NegGradPlusParams(epochs=2, batch_size=16))
    finally:
        handle.remove()
    assert len(steps) == 2 * len(batches) == ctx.budget.used
    cycle = forget_cycle(context(problem), 16)
    passes = [sorted(np.concatenate([next(cycle).ids, next(cycle).ids])) for _ in range(3)]
    assert all(p == sorted(problem[2].ids) for p in passes)


# --------------------------------------------------------------------------------------------
# l1-sparse and prune-then-unlearn
# --------------------------------------------------------------------------------------------
def test_l1_weight_decays_linearly_to_zero():
    gamma, total = 5e-4, 40
    weights = [l1_weight(t, total, gamma) for t in range(total + 1)]
    assert weights[0] == gamma
    assert weights[-1] == 0.0
    steps = np.diff(weights)
    np.testing.assert_allclose(steps, -gamma / total, rtol=1e-9)  # a straight line
    assert l1_weight(total + 5, total, gamma) == 0.0  # never negative past the end
    assert l1_weight(0, 0, gamma) == 0.0
    assert l1_weight(10, 20, gamma) == pytest.approx(gamma / 2)


def test_l1_sparse_first_step_closed_form(problem):
    """Step 0 uses the full weight γ: θ₁ = θ₀ − lr·(∇NLL(r) + γ·sign(θ₀))."""
    params = L1SparseParams(lr=0.02, batch_size=16, gamma=0.01)
    ctx = context(problem)
    batch = next(iter(ctx.task.batches(ctx.retain, 16, True, ctx.seed * 1000)))
    model = method("l1_sparse")(context(problem, max_steps=1), params)
    reference = copy.deepcopy(problem[1])
    grads = torch.autograd.grad(ctx.task.nll(reference, batch).mean(), list(reference.parameters()))
    expected = {n: (p - params.lr * (g + params.gamma * torch.sign(p))).detach()
                for (n, p), g in zip(reference.named_parameters(), grads)}
    assert_close(model, expected)


def test_l1_sparse_with_zero_gamma_is_finetuning(problem):
    l1 = method("l1_sparse")(context(problem), L1SparseParams(gamma=0.0, epochs=2))
    ft = method("finetune")(context(problem),
                            registry.methods.get("finetune").params(epochs=2))
    for (name, a), b in zip(l1.named_parameters(), ft.parameters()):
        assert torch.equal(a, b), name


def test_global_magnitude_masks_by_hand():
    weights = [torch.tensor([[0.1, -0.5], [0.3, -0.05]]), torch.tensor([0.2, -0.3, 0.01])]
    # |w| sorted: 0.01, 0.05, 0.1, 0.2, 0.3, 0.3, 0.5; sparsity 0.43 prunes floor(3.01) = 3.
    masks = global_magnitude_masks(weights, 0.43)
    assert masks[0].tolist() == [[0.0, 1.0], [1.0, 0.0]]
    assert masks[1].tolist() == [1.0, 1.0, 0.0]
    assert global_magnitude_masks(weights, 0.0)[0].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    # Ties: equal magnitudes are pruned in position order.
    masks = global_magnitude_masks([torch.tensor([1.0, -1.0, 1.0, 2.0])], 0.5)
    assert masks[0].tolist() == [0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("sparsity", [0.5, 0.8])
def test_prune_l1_gives_requested_sparsity_and_pruned_weights_stay_zero(problem, sparsity):
    original = problem[1]
    weights = prunable_weights(original)
    total = sum(w.numel() for w in weights)
    masks = global_magnitude_masks(weights, sparsity)

    model = method("prune_l1")(context(problem), PruneL1Params(sparsity=sparsity, epochs=3))
    pruned = prunable_weights(model)
    for weight, mask in zip(pruned, masks):
        assert torch.all(weight[mask == 0] == 0)  # pruned at the start, still zero
    zeros = sum(int((w == 0).sum()) for w in pruned)
    assert zeros == int(sparsity * total)  # and the surviving weights are not zero
    # Biases and non-prunable tensors are not pruned.
    biases = [m.bias for m in model.modules() if isinstance(m, nn.Linear)]
    assert all(int((b == 0).sum()) == 0 for b in biases)
    # The fine-tune moved the surviving weights.
    assert any(not torch.equal(a, b) for a, b in zip(pruned, weights))


def test_prune_l1_with_no_steps_is_just_the_pruned_model(problem):
    model = method("prune_l1")(context(problem, max_steps=0), PruneL1Params(sparsity=0.5))
    for weight, mask, before in zip(prunable_weights(model),
                                    global_magnitude_masks(prunable_weights(problem[1]), 0.5),
                                    prunable_weights(problem[1])):
        assert torch.equal(weight, before * mask)


# --------------------------------------------------------------------------------------------
# SalUn
# --------------------------------------------------------------------------------------------
def test_top_fraction_masks_by_hand():
    scores = {"a": torch.tensor([[3.0, 1.0], [2.0, 0.0]]), "b": torch.tensor([2.0, 5.0])}
    masks = top_fraction_masks(scores, 0.5)  # keep 3 of 6: 5, 3 and the first 2 (ties by position)
    assert masks["a"].tolist() == [[True, False], [True, False]]
    assert masks["b"].tolist() == [False, True]
    assert sum(int(m.sum()) for m in top_fraction_masks(scores, 0.0).values()) == 0
    assert sum(int(m.sum()) for m in top_fraction_masks(scores, 1.0).values()) == 6


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_salun_mask_keeps_the_chosen_fraction_of_most_salient_weights(problem, fraction):
    ctx = context(problem)
    model = ctx.copy_original()
    masks = saliency_masks(ctx, model, fraction)
    total = sum(p.numel() for p in model.parameters())
    assert set(masks) == {n for n, _ in model.named_parameters()}
    assert sum(int(m.sum()) for m in masks.values()) == round(fraction * total)
    # They are the largest |∇θ NLL(f; θ₀)|: every kept score >= every dropped one.
    model.zero_grad()
    ctx.task.nll(model, next(iter(ctx.task.batches(ctx.forget, 64)))).mean().backward()
    scores = {n: p.grad.abs() for n, p in model.named_parameters()}  # forget set fits one batch
    kept = torch.cat([scores[n][masks[n]] for n in masks])
    dropped = torch.cat([scores[n][~masks[n]] for n in masks])
    assert kept.min() >= dropped.max()


@pytest.mark.parametrize("fraction", [0.2, 0.5])
def test_salun_changes_only_masked_weights(problem, fraction):
    """Exactly the chosen fraction of weights may change; the rest are bitwise θ₀."""
    ctx = context(problem)
    masks = saliency_masks(ctx, ctx.copy_original(), fraction)
    before = dict(problem[1].named_parameters())
    model = method("salun")(context(problem), SalUnParams(mask_fraction=fraction, epochs=3))
    changed = 0
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter[~masks[name]], before[name][~masks[name]]), name
        changed += int((parameter != before[name]).sum())
    total = sum(p.numel() for p in model.parameters())
    assert 0 < changed <= round(fraction * total)
    assert changed > 0.5 * round(fraction * total)  # the masked weights really are trained
    # No gradient hooks are left behind on the returned model.
    assert all(not p._backward_hooks for p in model.parameters())


# --------------------------------------------------------------------------------------------
# CF-k and EU-k
# --------------------------------------------------------------------------------------------
def names_of(model: nn.Module, modules: list[nn.Module]) -> set[str]:
    ids = {id(m) for m in modules}
    return {f"{name}.{key}" for name, m in model.named_modules() if id(m) in ids
            for key in m.state_dict()}


@pytest.mark.parametrize("name, params", [
    ("cf_k", CFkParams(k=1, epochs=2)), ("cf_k", CFkParams(k=2, epochs=2)),
    ("eu_k", EUkParams(k=1, epochs=2)), ("eu_k", EUkParams(k=2, epochs=2)),
])
def test_only_the_last_k_layers_change(problem, name, params):
    before = state(problem[1])
    model = method(name)(context(problem), params)
    last = names_of(model, last_layers(model, params.k))
    assert len(last) == 2 * params.k  # weight and bias of k Linear layers
    after = model.state_dict()
    for key in before:
        if key in last:
            assert not torch.equal(after[key], before[key]), f"{name}: {key} did not train"
        else:
            assert torch.equal(after[key], before[key]), f"{name}: {key} changed"
    assert all(p.requires_grad for p in model.parameters())


def test_eu_k_starts_from_fresh_weights(problem):
    """With no steps, EU-k's last k layers are task.fresh_model(seed)'s, the rest the original's."""
    model = method("eu_k")(context(problem, max_steps=0), EUkParams(k=2))
    fresh = problem[0].fresh_model(SEED).state_dict()
    last = names_of(model, last_layers(model, 2))
    for key, value in model.state_dict().items():
        source = fresh if key in last else problem[1].state_dict()
        assert torch.equal(value, source[key]), key


def test_eu_k_uses_the_recipe_epochs_by_default(problem):
    ctx = context(problem)
    method("eu_k")(ctx, EUkParams())
    assert ctx.budget.used == RECIPE.epochs * -(-len(problem[3]) // RECIPE.batch_size)


class NormNet(nn.Module):
    """An MLP with BatchNorm after each hidden layer (to check frozen running statistics)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.BatchNorm1d(12), nn.ReLU(),
                                 nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x):
        return self.net(x)


def test_cf_k_keeps_frozen_batchnorm_statistics(problem):
    torch.manual_seed(0)
    original = NormNet()
    original.train()
    with torch.no_grad():  # give the running statistics non-default values
        original(problem[3].inputs)
    original.eval()
    before = state(original)
    model = method("cf_k")(context(problem, original=original), CFkParams(k=2, epochs=2))
    trained = names_of(model, last_layers(model, 2))
    assert trained == {"net.4.weight", "net.4.bias", "net.5.weight", "net.5.bias",
                       "net.5.running_mean", "net.5.running_var", "net.5.num_batches_tracked",
                       "net.7.weight", "net.7.bias"}
    after = model.state_dict()
    for key in before:
        if key not in trained:
            assert torch.equal(after[key], before[key]), key
    assert not torch.equal(after["net.5.running_mean"], before["net.5.running_mean"])
