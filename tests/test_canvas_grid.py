"""The UnlearnCanvas-like style × object grid of the generative track: the styles are told
apart by the style classifier, the DDPM's pair condition embeds each factor and samples
deterministically, the three requests name the right rows, UA/IRA/CRA give known answers on
hand-made readings and run through the metric contract on a real (quickly trained) grid
scenario, and the command line runs and shows canvas-digits-style."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch
from torch import nn

from unlearnbench import testing
from unlearnbench.cache import ModelCache
from unlearnbench.data import Split, make_split
from unlearnbench.data.digits import load_digits
from unlearnbench.data.styles import STYLES, GridBundle, load_canvas_digits
from unlearnbench.errors import UserError
from unlearnbench.metrics.evaluation import evaluate, metric_names_for
from unlearnbench.metrics.inference import InferenceCache
from unlearnbench.models.diffusion import ConditionalUNet
from unlearnbench.scenarios import build_scenario, get_spec
from unlearnbench.tasks.generation import GenerationTask, Generations
from unlearnbench.unlearning import Scenario

from test_cli import ok, ub

# Two epochs instead of the benchmark's 20: the tests need a trained model, not good samples.
QUICK = "canvas-digits-style[epochs=2]"
CANVAS_METRICS = ["canvas_ua", "canvas_ira", "canvas_cra"]
GRID_METRICS = CANVAS_METRICS + ["canvas_fd", "canvas_gap"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("canvas-model-cache")


@pytest.fixture(scope="module")
def scenario(cache_dir):
    return build_scenario(QUICK, 0, ModelCache(cache_dir))


@pytest.fixture(scope="module")
def grid():
    return load_canvas_digits()


def test_the_grid_is_every_digit_in_every_style(grid):
    digits = load_digits()
    assert len(grid.train) == len(STYLES) * len(digits.train) and grid.num_classes == 60
    styles = grid.factor_values(grid.train.targets, "style")
    for style in range(len(STYLES)):
        rows = (styles == style).numpy()
        assert torch.equal(grid.factor_values(grid.train.targets[rows], "object"),
                           digits.train.targets)
    plain, inverted = (grid.train.inputs[(styles == s).numpy()] for s in (0, 1))
    assert torch.equal(plain, digits.train.inputs)
    assert torch.allclose(inverted, 1 - plain)


def test_the_judges_tell_the_styles_and_the_digits_apart(scenario, grid):
    # Measured on the real test grid: styles 99.96%, digits 96.9% (97.8% on plain digits).
    for (task, judge), factor, floor in zip(scenario.task.judges, ("style", "object"),
                                            (99.0, 95.0)):
        predicted = task.predict_logits(judge, grid.test).argmax(1)
        truth = grid.factor_values(grid.test.targets, factor)
        accuracy = 100 * float((predicted == truth).float().mean())
        assert accuracy >= floor, (factor, accuracy)


def test_a_pair_is_embedded_as_the_sum_of_its_factors():
    torch.manual_seed(0)
    model = ConditionalUNet((1, 8, 8), 60, factors=(6, 10))
    style, digit = model.factor_embeddings
    labels = torch.tensor([0, 23, 59, 60])  # (0, 0), (2, 3), (5, 9), null
    expected = torch.stack([style.weight[0] + digit.weight[0], style.weight[2] + digit.weight[3],
                            style.weight[5] + digit.weight[9], style.weight[6] + digit.weight[10]])
    assert torch.allclose(model.embed_condition(labels), expected, atol=1e-6)
    with pytest.raises(ValueError, match="do not make 60 classes"):
        ConditionalUNet((1, 8, 8), 60, factors=(6, 9))


def test_the_single_condition_model_keeps_its_weights():
    # digits-gen-class's cached models load by these names and are drawn in this order.
    torch.manual_seed(0)
    model = ConditionalUNet((1, 8, 8), 10)
    assert model.condition.weight.shape == (11, 64)
    assert not any(name.startswith("factor_embeddings") for name in model.state_dict())


def test_a_third_level_extends_the_two_level_net_and_keys_its_own_models(grid):
    # The three-level net draws the two-level net's weights first (same seed, same values),
    # halves the image twice, and predicts noise of the image's shape.
    torch.manual_seed(0)
    two = ConditionalUNet((1, 28, 28), 60, factors=(6, 10))
    torch.manual_seed(0)
    three = ConditionalUNet((1, 28, 28), 60, factors=(6, 10), levels=3)
    shared = two.state_dict()
    assert all(torch.equal(three.state_dict()[name], value) for name, value in shared.items())
    assert set(three.state_dict()) - set(shared)  # the inner level's own weights
    x = torch.randn(3, 1, 28, 28)
    out = three(x, torch.tensor([5, 500, 999]), torch.tensor([0, 23, 60]))
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, two(x, torch.tensor([5, 500, 999]), torch.tensor([0, 23, 60])))
    with pytest.raises(ValueError, match="2 or 3 resolutions"):
        ConditionalUNet((1, 28, 28), 60, levels=4)
    # The default size keeps the cache keys of the models trained before the option existed;
    # another size gets keys of its own.
    default = GenerationTask(grid, "ddpm_unet")
    assert GenerationTask(grid, "ddpm_unet", width=16, levels=2).fingerprint() == \
        default.fingerprint()
    assert GenerationTask(grid, "ddpm_unet", levels=3).fingerprint() != default.fingerprint()
    assert GenerationTask(grid, "ddpm_unet", levels=3).fresh_model(0).levels == 3


def test_pair_conditioned_sampling_is_deterministic(scenario):
    task, model = scenario.task, scenario.original
    first = task.sample(model, [23, 24], 3, seed=5, steps=4)
    assert first.shape == (6, 1, 8, 8)
    assert torch.equal(first, task.sample(model, [23, 24], 3, seed=5, steps=4))
    # Another style of the same digit, on the same starting noise, is another image.
    assert not torch.equal(first[:3], task.sample(model, [13], 3, seed=5, steps=4))


@pytest.mark.parametrize("name, factor, target, rows", [
    ("canvas-digits-style", "style", 2, lambda s, o: s == 2),
    ("canvas-digits-object", "object", 3, lambda s, o: o == 3),
    ("canvas-digits-pair", None, 23, lambda s, o: (s == 2) & (o == 3)),
])
def test_requests_name_the_right_rows(grid, name, factor, target, rows):
    spec = get_spec(name)
    assert (spec.model_options.get("forget_factor"), spec.forget.class_id) == (factor, target)
    task = GenerationTask(grid, spec.model, **spec.model_options)
    named = task.forgotten(grid.train.targets, target).numpy()
    styles, digits = (grid.factor_values(grid.train.targets, f).numpy()
                      for f in ("style", "object"))
    assert np.array_equal(named, rows(styles, digits))
    assert 0 < named.sum() < len(named)


def test_the_scenario_forgets_the_style_everywhere_and_keeps_the_rest(scenario, grid):
    forget_styles = grid.factor_values(scenario.forget.targets, "style")
    assert set(forget_styles.tolist()) == {2}
    assert set(grid.factor_values(scenario.forget.targets, "object").tolist()) == set(range(10))
    assert 2 not in set(grid.factor_values(scenario.retain.targets, "style").tolist())
    assert len(scenario.forget) + len(scenario.retain) == len(grid.train)


def test_an_unknown_style_or_a_factor_on_plain_digits_is_refused(grid):
    task = GenerationTask(grid, "ddpm_unet", forget_factor="style")
    with pytest.raises(UserError, match="unknown style 6: they are 0..5"):
        task.forgotten(grid.train.targets, 6)
    with pytest.raises(UserError, match="forget_factor='style'"):
        GenerationTask(load_digits(), "ddpm_unet", forget_factor="style")
    with pytest.raises(UserError, match="forget_factor='colour'"):
        GenerationTask(grid, "ddpm_unet", forget_factor="colour")


def test_relabelling_keeps_the_digit_and_swaps_the_style(scenario, grid):
    relabelled = scenario.task.relabel_wrong(scenario.forget, seed=0)
    rows = {bytes(image.numpy()): int(label)
            for image, label in zip(grid.train.inputs, grid.train.targets)}
    labels = torch.tensor([rows[bytes(image.numpy())] for image in relabelled.inputs])
    assert torch.equal(grid.factor_values(labels, "object"),
                       grid.factor_values(scenario.forget.targets, "object"))
    assert 2 not in set(grid.factor_values(labels, "style").tolist())


# Hand-made readings on a 2-style x 3-object grid (label = style * 3 + object): the judges
# read the images generated for ``CONDITIONS`` as ``PREDICTED``.
#          row:  0  1  2  3  4  5  6  7  8
CONDITIONS = [3, 4, 5, 3, 0, 1, 2, 0, 2]
PREDICTED = [0, 4, 2, 1, 0, 4, 1, 3, 2]


def label_features(labels) -> torch.Tensor:
    """Features that tell the labels apart: (label, label², 1)."""
    labels = torch.as_tensor(labels, dtype=torch.float32)
    return torch.stack([labels, labels ** 2, torch.ones_like(labels)], 1)


class ReadTask:
    """A generation task on a tiny grid whose samples the judges read as ``PREDICTED`` (the
    retrained model's exactly as asked), with ``label_features`` of the labels asked (shifted
    by ``shift``) as the judges' features of every image."""

    name = "generation"

    def __init__(self, forget_factor, reference=None, shift: float = 0.0):
        split = make_split("train", np.zeros((6, 1, 2, 2)), np.arange(6))
        self.grid = GridBundle("tiny", split, split, split, 6, ("a", "b"), 3)
        self.forget_factor = forget_factor
        self.reference = reference
        n = len(CONDITIONS)
        features = label_features(CONDITIONS) + torch.tensor([shift, 0.0, 0.0])
        self.made = Generations(torch.zeros(n, 1, 2, 2), torch.tensor(CONDITIONS),
                                torch.tensor(PREDICTED), features)
        self.exact = Generations(torch.zeros(n, 1, 2, 2), torch.tensor(CONDITIONS),
                                 torch.tensor(CONDITIONS), label_features(CONDITIONS))

    def generate(self, model, prompts):
        return self.exact if model is self.reference else self.made

    def real_features(self, split):
        return label_features(split.targets)


def read(benchmark: str, forget_factor, target: int, names=CANVAS_METRICS,
         shift: float = 0.0) -> dict:
    """The metrics ``names`` of a model read as ``PREDICTED``; the retrained model's samples
    read as asked, and the real test images are one per condition of ``CONDITIONS``."""
    prompts = Split("grid_prompts", torch.zeros(len(CONDITIONS), 1, 2, 2),
                    torch.tensor(CONDITIONS), np.arange(len(CONDITIONS)))
    test = Split("test", torch.zeros(len(CONDITIONS), 1, 2, 2), torch.tensor(CONDITIONS),
                 np.arange(len(CONDITIONS)))
    spec = get_spec(f"{benchmark}[class_id={target}]")
    reference = nn.Linear(1, 1)
    scenario = Scenario(spec, 0, ReadTask(forget_factor, reference, shift),
                        {"grid_prompts": prompts, "test": test}, nn.Linear(1, 1), reference)
    assert sorted(set(metric_names_for(scenario)) & {"gen_ua", "ira", *GRID_METRICS}) == \
        sorted(GRID_METRICS)
    return evaluate(scenario, nn.Linear(1, 1), names=names)


def test_ua_ira_cra_of_a_style_target_on_known_readings():
    # Style 1 (rows 0-3): rows 0, 2, 3 are read as style 0, UA 3/4. The other style's rows
    # 4-8: style read right in 4, 6, 8 (IRA 3/5), digit read right in 4, 5, 7, 8 (CRA 4/5).
    results = read("canvas-digits-style", "style", 1)
    assert results["canvas_ua"].value == pytest.approx(75.0)
    assert results["canvas_ua"].ids.tolist() == [0, 1, 2, 3]
    assert results["canvas_ua"].per_example.tolist() == [1.0, 0.0, 1.0, 1.0]
    assert results["canvas_ira"].value == pytest.approx(60.0)
    assert results["canvas_ira"].ids.tolist() == [4, 5, 6, 7, 8]
    assert results["canvas_cra"].value == pytest.approx(80.0)
    assert results["canvas_cra"].ids.tolist() == [4, 5, 6, 7, 8]


def test_ua_ira_cra_of_an_object_target_on_known_readings():
    # Object 0 (rows 0, 3, 4, 7): only row 3 is read as another object, UA 1/4. Rows 1, 2,
    # 5, 6, 8: object right but in row 6 (IRA 4/5), style right in 1, 6, 8 (CRA 3/5).
    results = read("canvas-digits-object", "object", 0)
    assert results["canvas_ua"].value == pytest.approx(25.0)
    assert results["canvas_ua"].ids.tolist() == [0, 3, 4, 7]
    assert results["canvas_ira"].value == pytest.approx(80.0)
    assert results["canvas_cra"].value == pytest.approx(60.0)
    assert results["canvas_cra"].ids.tolist() == [1, 2, 5, 6, 8]


def test_ua_ira_cra_of_a_pair_target_on_known_readings():
    # Pair (1, 0) = 3 (rows 0, 3): neither read as (1, 0), UA 2/2. Sharing one factor
    # (rows 1, 2, 4, 7): pairs read right in 1 and 4 (IRA 2/4); sharing none (rows 5, 6,
    # 8): only row 8 (CRA 1/3).
    results = read("canvas-digits-pair", None, 3)
    assert results["canvas_ua"].value == pytest.approx(100.0)
    assert results["canvas_ira"].value == pytest.approx(50.0)
    assert results["canvas_ira"].ids.tolist() == [1, 2, 4, 7]
    assert results["canvas_cra"].value == pytest.approx(100.0 / 3)
    assert results["canvas_cra"].ids.tolist() == [5, 6, 8]


def test_gap_to_the_retrained_model_on_known_readings():
    # The retrained model's samples are read as asked: UA 0, IRA 100, CRA 100 on a style
    # target; the model's are UA 75, IRA 60, CRA 80 (above): gap (75 + 40 + 20) / 3.
    results = read("canvas-digits-style", "style", 1, names=["canvas_gap"])
    assert results["canvas_gap"].value == pytest.approx(45.0)
    # a pair target: UA 100, IRA 50, CRA 33.3 against 0, 100, 100
    results = read("canvas-digits-pair", None, 3, names=["canvas_gap"])
    assert results["canvas_gap"].value == pytest.approx((100 + 50 + 200 / 3) / 3)


@pytest.mark.parametrize("shift, distance", [(0.0, 0.0), (1.0, 1.0), (2.0, 4.0)])
def test_feature_distance_reads_the_images_off_the_target(shift, distance):
    """Off style 1 (labels 3-5) the generated and real images have the same features; on it
    they would not: a distance of 0, then the squared shift of the generated mean."""
    results = read("canvas-digits-style", "style", 1, names=["canvas_fd"], shift=shift)
    assert results["canvas_fd"].value == pytest.approx(distance, abs=1e-6)


@pytest.mark.parametrize("name", GRID_METRICS)
def test_check_metric_on_the_grid_scenario(scenario, name):
    testing.check_metric(name, scenario, scenario.original, {})


def test_one_generation_pass_per_model_and_only_the_grid_metrics(scenario):
    names = metric_names_for(scenario)
    assert set(GRID_METRICS) <= set(names)
    assert not {"gen_ua", "ira", "fid_features", "gen_gap"} & set(names)
    cache = InferenceCache(scenario.task)
    evaluate(scenario, scenario.original, names=GRID_METRICS, cache=cache)
    assert cache.counts["generate"] == 2  # the model's, and the retrained model's for the gap


@pytest.mark.slow
def test_cli_runs_and_shows_canvas_digits_style(cache_dir, scenario, tmp_path):
    """The run reuses the fixture's trained models (the same model cache and recipe)."""
    db = tmp_path / "canvas.db"
    run = ok(ub("run", "-b", QUICK, "-m", "original,retrain,esd", "--seeds", "1",
                "--max-steps", "5", "--db", str(db), cache=cache_dir, cwd=tmp_path))
    assert run.stdout.splitlines()[-1].startswith("3 finished, 0 failed"), run.stdout
    table = ok(ub("show", "--db", str(db), cache=cache_dir, cwd=tmp_path)).stdout
    for heading in ("UA", "IRA", "CRA", "FD (judges)", "Gap"):
        assert heading in table, table
    for method in ("original", "retrain", "esd"):
        assert method in table, table
    rows = csv.DictReader(io.StringIO(
        ok(ub("show", "--db", str(db), "--csv", cache=cache_dir, cwd=tmp_path)).stdout))
    gaps = {row["method"]: float(row["canvas_gap_mean"]) for row in rows}
    # (retrain is capped at 5 steps here, so it is not the reference: no gap of 0)
    assert all(0.0 <= gap <= 100.0 for gap in gaps.values()) and gaps["original"] > 0.0
