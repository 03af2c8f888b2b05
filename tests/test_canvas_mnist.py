"""canvas-mnist-style (the style x object grid on 28x28 MNIST) built from a tiny MNIST-format
file, the concept erasers (CA, SA, EraseDiff, UCE) on whole-style and whole-object requests of
the grid, and GA on the grid ending finite."""
from __future__ import annotations

import dataclasses
import gzip
import pickle

import numpy as np
import pytest
import torch

from unlearnbench import testing
from unlearnbench.cache import ModelCache
from unlearnbench.data import styles
from unlearnbench.data.mnist import mnist_path
from unlearnbench.data.styles import load_canvas_mnist
from unlearnbench.errors import UserError
from unlearnbench.methods.base import UnlearnContext
from unlearnbench.metrics.evaluation import evaluate
from unlearnbench.models.diffusion import timestep_embedding
from unlearnbench.registry import methods
from unlearnbench.scenarios import build_scenario, get_spec
from unlearnbench.tasks.generation import GenerationTask
from unlearnbench.unlearning import unlearn

ERASERS = ("concept_ablation", "selective_amnesia", "erasediff", "uce")
CANVAS_METRICS = ["canvas_ua", "canvas_ira", "canvas_cra"]
# The tiny file: per split, this many images of each digit, digit d a bright 3x3 square at
# row 2 + 2d (so every image of one digit is the same, and digits differ).
TINY_PER_DIGIT = {"train": 3, "validation": 1, "test": 2}


def tiny_mnist(root):
    parts = []
    for name in ("train", "validation", "test"):
        labels = np.tile(np.arange(10), TINY_PER_DIGIT[name])
        images = np.zeros((len(labels), 28, 28), np.float32)
        for image, digit in zip(images, labels):
            image[2 + 2 * digit:5 + 2 * digit, 12:15] = 1.0
        parts.append((images.reshape(len(labels), 784), labels.astype(np.int64)))
    path = mnist_path(root)
    path.parent.mkdir(parents=True)
    with gzip.open(path, "wb") as handle:
        pickle.dump(tuple(parts), handle, protocol=2)
    return str(root)


def test_canvas_mnist_is_the_first_images_of_each_digit_in_every_style(tmp_path, monkeypatch):
    monkeypatch.setattr(styles, "CANVAS_MNIST_PER_DIGIT", {"train": 2, "validation": 1, "test": 2})
    grid = load_canvas_mnist(tiny_mnist(tmp_path))
    assert (grid.name, grid.num_classes, grid.input_shape) == ("canvas-mnist", 60, (1, 28, 28))
    assert [len(s) for s in (grid.train, grid.validation, grid.test)] == [6 * 20, 6 * 10, 6 * 20]
    # The file's first 20 training images (two of each digit) in every style, style by style.
    labels = grid.train.targets
    assert torch.equal(grid.factor_values(labels, "style"), torch.arange(6).repeat_interleave(20))
    assert torch.equal(grid.factor_values(labels, "object"), torch.arange(10).repeat(2).repeat(6))
    plain = grid.train.inputs[:20, 0]
    assert int(plain[0].sum()) == 9  # digit 0's 3x3 square
    # At 28x28 the bold, blurred and framed changes span two pixels (one on 8x8 digits).
    bold = grid.train.inputs[2 * 20, 0]
    # The square dilated twice by the 4-neighbour cross: the 7x7 square around it less, at
    # each corner, the 3 pixels more than 2 steps away.
    assert int((bold > 0).sum()) == 7 * 7 - 4 * 3
    framed = grid.train.inputs[5 * 20, 0]
    assert float(framed[20, 1]) == 1.0 and float(framed[20, 2]) == 0.0


def test_canvas_mnist_style_forgets_bold_in_every_digit(tmp_path, monkeypatch):
    monkeypatch.setattr(styles, "CANVAS_MNIST_PER_DIGIT", TINY_PER_DIGIT)
    spec = get_spec("canvas-mnist-style[epochs=1]")
    assert (spec.dataset, spec.model, spec.forget.class_id) == ("canvas-mnist", "ddpm_unet", 2)
    assert spec.model_options["forget_factor"] == "style"
    spec = dataclasses.replace(spec, dataset_options={"root": tiny_mnist(tmp_path / "data")})
    scenario = build_scenario(spec, 0, ModelCache(tmp_path / "models"))
    grid = scenario.task.data
    forget, retain = scenario.forget.targets, scenario.retain.targets
    assert set(grid.factor_values(forget, "style").tolist()) == {2}
    assert sorted(grid.factor_values(forget, "object").tolist()) == sorted(list(range(10)) * 3)
    assert 2 not in set(grid.factor_values(retain, "style").tolist())
    assert len(forget) + len(retain) == len(grid.train) == 6 * 30
    assert scenario.original.factors == (6, 10) and scenario.original.levels == 3


# -- the erasers on a whole style or object ------------------------------------------------

@pytest.fixture(scope="module")
def style_scenario(tmp_path_factory):
    """canvas-digits-style with 2 training epochs: a trained pair model, not good samples."""
    return build_scenario("canvas-digits-style[epochs=2]", 0,
                          ModelCache(tmp_path_factory.mktemp("canvas-erasers")))


def object_context(scenario, digit: int) -> UnlearnContext:
    """The style scenario's model asked to forget one digit in every style."""
    task = scenario.task
    grid = task.data
    object_task = GenerationTask(grid, task.model_name, judges=task.judges,
                                 forget_factor="object", samples_per_class=task.samples_per_class)
    rows = np.flatnonzero(grid.factor_values(grid.train.targets, "object").numpy() == digit)
    others = np.setdiff1d(np.arange(len(grid.train)), rows)
    return UnlearnContext(object_task, scenario.original, grid.train.subset(rows, "forget"),
                          grid.train.subset(others, "retain"), scenario.spec.recipe)


def condition_read(net, labels, t):
    """What the first residual block's conditioning map reads for each label at times t."""
    with torch.no_grad():
        time = net.time(timestep_embedding(t, net.embedding))
        return torch.stack([net.down.embed(time + net.embed_condition(torch.full_like(t, label)))
                            for label in labels])


def test_uce_erases_every_pair_of_the_style_onto_the_null_condition(style_scenario):
    model, _ = unlearn(style_scenario, "uce")
    t = torch.tensor([17, 503, 941])
    original, null = style_scenario.original, style_scenario.task.null_condition
    bold = [20 + digit for digit in range(10)]
    before_null = condition_read(original, [null], t)
    gap = (condition_read(original, bold, t) - before_null).flatten(1).norm(dim=1)
    moved = (condition_read(model, bold, t) - before_null).flatten(1).norm(dim=1)
    kept = [3, 17, 35, 59]
    change = (condition_read(model, kept, t) - condition_read(original, kept, t)).flatten(1)
    # A least-squares compromise: a bold pair's input is the bold row plus a digit row that
    # the other styles share, so the pairs do not reach the null reading as one class does
    # (seed 0: 49-76% of the way). Every bold pair moves at least 40% of the way...
    assert (moved <= 0.6 * gap).all(), (moved, gap)
    # ...while pairs of the other styles move by under 15% of the smallest such distance
    # (seed 0: 7-10%).
    assert (change.norm(dim=1) <= 0.15 * gap.min()).all()


def test_concept_ablation_ablates_the_style_onto_the_next_style(style_scenario):
    model, timings = unlearn(style_scenario, "concept_ablation", max_steps=3)
    assert timings["steps"] == 3
    original = dict(style_scenario.original.named_parameters())
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, original[n])}
    assert changed and all(n.startswith("factor_embeddings.") or ".embed." in n
                           for n in changed), changed


@pytest.mark.parametrize("method,option", [("concept_ablation", "anchor"), ("uce", "guide")])
def test_the_forgotten_style_or_object_as_anchor_is_refused(style_scenario, method, option):
    with pytest.raises(UserError, match=f"{option} must be a style other than the forgotten 2, "
                                        r"in 0..5, or -1; got 2"):
        unlearn(style_scenario, method, {option: 2})
    entry = methods.get(method)
    with pytest.raises(UserError, match=f"{option} must be an? object other than the forgotten 3"):
        entry.obj(object_context(style_scenario, 3), entry.params(**{option: 3}))


@pytest.mark.parametrize("method", ERASERS)
def test_two_styles_in_the_forget_set_are_refused(style_scenario, method):
    scenario = style_scenario
    mixed = scenario.task.join("forget", [scenario.forget, scenario.retain.subset([0, 1])])
    ctx = UnlearnContext(scenario.task, scenario.original, mixed, scenario.retain,
                         scenario.spec.recipe)
    entry = methods.get(method)
    with pytest.raises(UserError, match=f"{method} erases one style; this forget set holds"):
        entry.obj(ctx, entry.params())


@pytest.mark.parametrize("method", ["concept_ablation", "uce"])
def test_an_object_request_erases_the_digit_in_every_style(style_scenario, method):
    ctx = object_context(style_scenario, 3)
    entry = methods.get(method)
    model = entry.obj(ctx, entry.params(epochs=1) if method == "concept_ablation"
                      else entry.params())
    t = torch.tensor([17, 503, 941])
    threes = [style * 10 + 3 for style in range(6)]
    original = style_scenario.original
    # The digit's pairs are read differently from before, another digit's less so: CA trains
    # the shared conditioning maps, so the other digits move too (seed 0, one epoch: 2.5
    # times less).
    moved = (condition_read(model, threes, t) - condition_read(original, threes, t)).norm()
    kept = [style * 10 + 5 for style in range(6)]
    unmoved = (condition_read(model, kept, t) - condition_read(original, kept, t)).norm()
    assert moved > 2 * unmoved, (moved, unmoved)


# The contract on a style request for the closed-form and the one-loss erasers: SA (a Fisher
# pass, replay of 50 pairs) and EraseDiff (inner steps) take minutes a run over the 1215
# images of a style, and their style path is the same pair selection (tested above); their
# contract runs on a class request in test_generation_methods.py.
@pytest.mark.slow
@pytest.mark.parametrize("method", ["concept_ablation", "uce"])
def test_the_erasers_pass_the_contract_on_a_style_request(style_scenario, method):
    """``check_method``'s checks but its move toward the reference, which reads the class
    metric "gen_ua" (a grid scores UA with canvas_ua: the quality test below)."""
    run = testing.run_method(method, style_scenario)
    testing.check_leaves_the_original(method, style_scenario, run)
    testing.check_finite_weights(method, run)
    testing.check_deterministic(method, style_scenario, run)
    testing.check_step_budget(method, style_scenario)


def test_ga_on_the_grid_ends_with_finite_weights(style_scenario):
    """With the benchmark's GA settings (unlearn raises Diverged on non-finite weights)."""
    model, _ = unlearn(style_scenario, "ga")
    assert all(torch.isfinite(p).all() for p in model.parameters())


# -- quality on the benchmark's recipe -------------------------------------------------------

@pytest.fixture(scope="module")
def trained_style_scenario(tmp_path_factory):
    return build_scenario("canvas-digits-style", 0,
                          ModelCache(tmp_path_factory.mktemp("canvas-quality")))


# Seed 0, the benchmark's recipe: the original's UA 0% (100 bold images) and CRA 97.8%
# (500 images of the other styles). Measured UA / CRA: CA 100% / 93.8%, SA 99% / 98.4%,
# EraseDiff 31% / 91.2%, UCE 77% / 96.0% (a least-squares compromise, see above), GA (clipped)
# 100% / 11.2%. The erasers must gain 50 points of UA (EraseDiff 15) and lose at most 10 of
# CRA; GA, which collapses every style on the grid, must end finite and gain UA.
UA_GAIN = {"concept_ablation": 50.0, "selective_amnesia": 50.0, "erasediff": 15.0, "uce": 50.0,
           "ga": 50.0}
CRA_DROP = {"concept_ablation": 10.0, "selective_amnesia": 10.0, "erasediff": 10.0,
            "uce": 10.0, "ga": 100.0}


# EraseDiff's figure (above) is left to docs/benchmarks.md: its inner steps take minutes here.
@pytest.mark.slow
@pytest.mark.parametrize("method", ["concept_ablation", "selective_amnesia", "uce", "ga"])
def test_each_method_forgets_the_style_and_keeps_the_digits(trained_style_scenario, method):
    scenario = trained_style_scenario
    before = {n: r.value for n, r in evaluate(scenario, scenario.original,
                                              names=CANVAS_METRICS).items()}
    model, _ = unlearn(scenario, method)  # raises Diverged on non-finite weights
    after = {n: r.value for n, r in evaluate(scenario, model, names=CANVAS_METRICS).items()}
    assert after["canvas_ua"] >= before["canvas_ua"] + UA_GAIN[method], (before, after)
    assert after["canvas_cra"] >= before["canvas_cra"] - CRA_DROP[method], (before, after)
