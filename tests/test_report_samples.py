"""Generated samples in the HTML report: a real small digits-gen run (original, retrain, GA
cut to a few steps) stores a seeded grid of each model's samples with its record, and the
report shows one image per method, the forgotten class's column first; on the style x object
grid the grid shows the forgotten style across digits. In a real browser the images decode."""
import base64
import io
import sqlite3

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from generation_fixtures import generation_scenario
from test_report_html import OLD_RUNS_TABLE, Page, driver, load  # noqa: F401 (driver: a fixture)
from unlearnbench.report.html import build_report, write_report
from unlearnbench.report.leaderboard import leaderboard
from unlearnbench.store import RunRecord, Store
from unlearnbench.sweep.jobs import Job, run_job
from unlearnbench.tasks.generation import SHOWN_CONDITIONS, SHOWN_PER_CONDITION

METHODS = ("original", "retrain", "ga")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    return generation_scenario(tmp_path_factory)


@pytest.fixture(scope="module")
def samples_db(scenario, tmp_path_factory):
    db = tmp_path_factory.mktemp("samples") / "gen.db"
    store = Store(db)
    for method in METHODS:
        job = Job(scenario.spec.name, method, {}, 0, max_steps=3 if method == "ga" else None,
                  metrics=("gen_ua", "ira"))
        record, _ = run_job(job, scenario, {}, None)
        assert record.status == "finished", record.error
        store.write(record)
    store.close()
    return db


def test_each_run_stores_its_seeded_samples(scenario, samples_db):
    store = Store(samples_db)
    runs = {run["method"]: run for run in store.runs()}
    titles, images = store.samples(runs["original"]["id"])
    assert titles == ["3 (forgotten)", "4", "5", "6"][:SHOWN_CONDITIONS]
    height, width = scenario.task.data.input_shape[1:]
    assert images.shape == (SHOWN_CONDITIONS, SHOWN_PER_CONDITION, 1, height, width)
    assert images.dtype == np.uint8
    # The original's stored samples are its first DDIM samples of the scenario's prompts,
    # rounded to 8 bits: half a grey level off at most, plus the float32 differences of a
    # pass over fewer prompts (allowed 1e-4: a fortieth of a grey level).
    conditions = [int(title.split()[0]) for title in titles]
    n = scenario.task.samples_per_class
    rows = np.concatenate([np.arange(c * n, c * n + SHOWN_PER_CONDITION) for c in conditions])
    expected = scenario.task.denoise(scenario.original,
                                     scenario.splits["prompts"].subset(rows, "shown"),
                                     scenario.task.sample_steps, scenario.task.guidance)
    stored = images.reshape(expected.shape).astype(np.float64) / 255
    assert np.abs(stored - expected.numpy()).max() <= 0.5 / 255 + 1e-4
    # The retrained reference, never trained on class 3, draws its column otherwise
    assert not np.array_equal(store.samples(runs["retrain"]["id"])[1][0], images[0])


def test_the_report_shows_one_sample_grid_per_method(samples_db):
    page = Page(build_report(Store(samples_db)))
    grids = {a["alt"]: a["src"] for tag, a in page.tags if tag == "img"
             and a.get("alt", "").startswith("samples: ")}
    labels = [row["label"] for row in leaderboard(Store(samples_db).runs())]
    assert len(labels) == len(METHODS)
    assert set(grids) == {f"samples: {label}" for label in labels}
    for src in grids.values():
        assert src.startswith("data:image/png;base64,")
        pixels = imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), format="png")
        # a block of samples per condition side by side, each 8x8 image scaled up
        assert pixels.ndim == 3 and pixels.shape[1] > pixels.shape[0] > 4 * 8
    text = "".join(page.text)
    assert "Generated samples" in text and "3 (forgotten)" in text


def test_runs_without_samples_and_old_stores_show_no_grid(tmp_path):
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as old:  # a store written before samples were kept
        old.execute(OLD_RUNS_TABLE)
        old.execute("INSERT INTO runs (key, benchmark, method, params, seed, status) "
                    "VALUES ('old', 'digits-gen-class', 'ga', '{}', 0, 'finished')")
    store = Store(db)
    store.write(RunRecord("new", "digits-gen-class", "esd", {}, 0, "finished",
                          metrics={"gen_ua": 50.0}))
    assert [store.samples(run["id"]) for run in store.runs()] == [None, None]
    assert "Generated samples" not in build_report(store)


def test_the_style_grid_shows_the_forgotten_style_across_digits():
    from unlearnbench.data.styles import STYLES, load_canvas_digits
    from unlearnbench.tasks.generation import GenerationTask, Generations

    grid = load_canvas_digits()
    task = GenerationTask(grid, "ddpm_unet", samples_per_class=5, forget_factor="style")
    prompts = task.prompts(range(grid.num_classes), 5, 0)
    # stand-in images: each one's grey level is its condition, so the columns can be read back
    levels = prompts.targets.float() / grid.num_classes
    images = levels.view(-1, 1, 1, 1).expand(-1, *grid.input_shape).clone()
    made = Generations(images, prompts.targets, prompts.targets, torch.zeros(len(images), 1))
    titles, shown = task.showcase(made, 2)
    bold = list(STYLES).index("bold")
    assert bold == 2
    assert titles == [f"bold {digit} (forgotten)" for digit in range(SHOWN_CONDITIONS)]
    expected = np.round(255 * np.array([grid.label(bold, d) for d in range(SHOWN_CONDITIONS)])
                        / grid.num_classes)
    assert shown.shape == (SHOWN_CONDITIONS, SHOWN_PER_CONDITION, *grid.input_shape)
    assert np.array_equal(shown[:, :, 0, 0, 0], np.repeat(expected[:, None],
                                                          SHOWN_PER_CONDITION, 1))


def test_the_sample_grids_render_in_a_real_browser(driver, samples_db, tmp_path):  # noqa: F811
    out = write_report(samples_db, tmp_path / "samples.html")
    assert load(driver, out) == []
    assert driver.execute_script(
        "return [...document.images].filter(i => i.alt.startsWith('samples: '))"
        ".every(i => i.complete && i.naturalWidth > i.naturalHeight && i.naturalHeight > 32)")
    assert driver.execute_script(
        "return [...document.images].filter(i => i.alt.startsWith('samples: ')).length") == 3
