"""Mixed precision: ``precision("bf16"|"fp16")`` runs every optimise loop under autocast with
float32 weights; fp16 scales the loss; the recipe's precision reaches training and methods."""
import dataclasses
import subprocess
import sys

import pytest
import torch
from torch import nn

import unlearnbench as ub
from unlearnbench.errors import UserError
from unlearnbench.spec_names import get_spec, variant
from unlearnbench.store import Store
from unlearnbench.train import StepBudget, optimise, precision


def run_steps(model, loss_fn, steps=3, lr=0.1):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    return optimise(model, optimizer, [None] * steps, loss_fn, StepBudget())


@pytest.mark.parametrize("name, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16),
                                         ("fp16", torch.float16)])
def test_loss_is_computed_in_the_precision_and_weights_stay_float32(name, dtype):
    torch.manual_seed(0)
    model, inputs = nn.Linear(4, 2), torch.randn(8, 4)
    seen = []

    def loss_fn(_):
        outputs = model(inputs)
        seen.append(outputs.dtype)
        return outputs.float().pow(2).mean()

    before = model.weight.detach().clone()
    with precision(name):
        assert run_steps(model, loss_fn) == 3
    assert seen == [dtype] * 3
    assert model.weight.dtype == torch.float32
    assert not torch.equal(model.weight, before)


def test_fp16_scales_the_loss_so_small_gradients_do_not_underflow():
    """d(loss)/d(output) = 1e-9 is 0 in float16; the scaler multiplies it by 2**16 first."""
    def make():
        torch.manual_seed(0)
        return nn.Linear(4, 1)

    inputs = torch.randn(8, 4)

    def tiny_loss(model):
        return lambda _: (model(inputs).float() * 1e-9).sum()

    unscaled = make()  # the same loss under autocast without a scaler: no gradient survives
    with torch.autocast("cpu", dtype=torch.float16):
        loss = tiny_loss(unscaled)(None)
    loss.backward()
    assert torch.count_nonzero(unscaled.weight.grad) == 0

    scaled = make()
    before = scaled.weight.detach().clone()
    with precision("fp16"):
        run_steps(scaled, tiny_loss(scaled), steps=1, lr=1e3)
    assert torch.isfinite(scaled.weight).all()
    assert not torch.equal(scaled.weight, before)


def test_precision_is_a_benchmark_variant_and_refuses_unknown_names():
    spec = get_spec("digits-random10[precision=bf16]")
    assert spec.recipe.precision == "bf16"
    assert get_spec("digits-random10").recipe.precision == "fp32"
    with pytest.raises(UserError, match="precision='fp8'.*fp32, bf16, fp16"):
        get_spec("digits-random10[precision=fp8]")
    with pytest.raises(UserError, match="unknown precision"):
        with precision("half"):
            pass


def test_methods_unlearn_in_the_recipes_precision(language_scenario):
    """The same seeded method run differs between fp32 and bf16 (autocast reached the
    method's loop), repeats exactly in bf16, and returns float32 finite weights."""
    spec = language_scenario.spec
    bf16 = dataclasses.replace(language_scenario, spec=dataclasses.replace(
        spec, recipe=dataclasses.replace(spec.recipe, precision="bf16")))
    full, _ = ub.unlearn(language_scenario, "graddiff", seed=1, max_steps=3)
    mixed, _ = ub.unlearn(bf16, "graddiff", seed=1, max_steps=3)
    again, _ = ub.unlearn(bf16, "graddiff", seed=1, max_steps=3)
    full_state, mixed_state, again_state = (m.state_dict() for m in (full, mixed, again))
    assert all(torch.equal(mixed_state[k], again_state[k]) for k in mixed_state)
    assert any(not torch.equal(full_state[k], mixed_state[k]) for k in full_state)
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all()
               for v in mixed_state.values() if v.is_floating_point())


def test_variant_folds_precision_unless_it_is_the_benchmarks_own():
    assert variant("digits-random10", precision="bf16") == "digits-random10[precision=bf16]"
    assert variant("digits-random10[epochs=1]", precision="fp16") == \
        "digits-random10[epochs=1,precision=fp16]"
    assert variant("digits-random10", precision="fp32") == "digits-random10"


def test_run_precision_flag_records_the_variant(tmp_path):
    db = tmp_path / "runs.db"
    command = [sys.executable, "-m", "unlearnbench.cli", "run", "-b", "digits-random10[epochs=1]",
               "-m", "ga", "--max-steps", "2", "--precision", "bf16", "--db", str(db),
               "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    runs = Store(str(db)).runs()
    assert [(r["benchmark"], r["method"], r["status"]) for r in runs] == [
        ("digits-random10[epochs=1,precision=bf16]", "ga", "finished")]
    bad = [{"bf16": "fp8"}.get(part, part) for part in command]
    refused = subprocess.run(bad, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "'fp8' is not one of" in refused.stderr
    assert "Traceback" not in refused.stderr and len(Store(str(db)).runs()) == 1
