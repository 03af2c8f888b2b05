"""Benchmarks on a classification data set of your own: an .npz file, a folder of class
sub-folders, a Hugging Face save_to_disk directory and a CSV table, each written here from
scikit-learn digits (4 classes, 8x8), run through the real command line, and recorded by
their content: a moved file finds its results, a changed one is another benchmark.

The CLI helpers (``ub`` runs one ``unlearnbench`` process) are test_cli.py's."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_cli import ok, runs_in, ub, ub_many

from unlearnbench.errors import UserError
from unlearnbench.scenarios import get_spec, load_data

FORMATS = ("npz", "imagefolder", "hf", "table")


def digits4(n_per_class: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """n_per_class 8x8 uint8 images of each of the digits 0-3, and their labels."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    rows = np.concatenate([np.flatnonzero(raw.target == c)[:n_per_class] for c in range(4)])
    rows = np.random.default_rng(0).permutation(rows)
    return (raw.images[rows] * 255 / 16).round().astype(np.uint8), raw.target[rows]


def write(data_format: str, x: np.ndarray, y: np.ndarray, where: Path) -> Path:
    """The data in one format at ``where`` (a file or a folder); returns its path."""
    where.parent.mkdir(parents=True, exist_ok=True)
    if data_format == "npz":
        path = where.with_suffix(".npz")
        np.savez(path, x=x, y=y)
    elif data_format == "imagefolder":
        path = where
        for i, (image, label) in enumerate(zip(x, y)):
            (path / str(label)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, "L").save(path / str(label) / f"{i:04d}.png")
    elif data_format == "hf":
        import datasets as hf

        path = where
        features = hf.Features({"image": hf.Image(), "label": hf.ClassLabel(num_classes=4)})
        hf.Dataset.from_dict({"image": [Image.fromarray(i, "L") for i in x],
                              "label": y.tolist()}, features=features).save_to_disk(str(path))
    else:  # a CSV of pixel features in [0, 1]
        path = where.with_suffix(".csv")
        frame = pd.DataFrame((x.reshape(len(x), -1) / 255).round(4),
                             columns=[f"p{i}" for i in range(64)])
        frame.assign(label=y).to_csv(path, index=False)
    return path


def benchmark(data_format: str, path: Path) -> str:
    return f"{data_format}-random10[path={path},name=toy,epochs=10]"


# --------------------------------------------------------------------------- the command line

@pytest.fixture(scope="module")
def generic_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("generic-model-cache")


@pytest.fixture(scope="module")
def own_data(tmp_path_factory, generic_cache):
    """One run over the four formats; then, in a second run, each file moved and renamed
    beside a changed copy (five labels changed); then show and report. Every format runs in
    the same processes: most of a command's time is starting it."""
    work = tmp_path_factory.mktemp("own-data")
    db = work / "runs.db"
    run = ["-m", "finetune,retrain", "--seeds", "1", "--no-progress", "--db", str(db)]
    x, y = digits4()
    changed_y = y.copy()
    changed_y[:5] = (changed_y[:5] + 1) % 4
    first = {f: write(f, x, y, work / "first" / f / "animals") for f in FORMATS}
    result = ub("run", *[a for f in FORMATS for a in ("-b", benchmark(f, first[f]))], *run,
                cache=generic_cache, cwd=work)
    names = {r["benchmark"] for r in runs_in(db)} if db.exists() else set()
    moved, changed = {}, {}
    for f in FORMATS:
        moved[f] = work / "elsewhere" / f / ("renamed" + first[f].suffix)
        moved[f].parent.mkdir(parents=True)
        shutil.move(first[f], moved[f])
        changed[f] = write(f, x, changed_y, work / "changed" / f / "animals")
    rerun = ub("run", *[a for f in FORMATS for a in ("-b", benchmark(f, moved[f]), "-b",
                                                      benchmark(f, changed[f]))], *run,
               cache=generic_cache, cwd=work)
    report = work / "report.html"
    show, written = ub_many([["show", "--json", "--db", str(db)],
                             ["report", "--out", str(report), "--db", str(db)]],
                            generic_cache, work)
    return {"db": db, "work": work, "run": result, "names": names, "rerun": rerun,
            "show": show, "report": written, "page": report}


def names_of(data_format: str, names: set[str]) -> set[str]:
    return {n for n in names if n.startswith(f"{data_format}-random10[")}


@pytest.mark.slow
@pytest.mark.parametrize("data_format", FORMATS)
def test_run_records_own_data_by_content(own_data, data_format):
    assert ok(own_data["run"]).stdout.splitlines()[-1] == (
        f"8 finished, 0 failed, 0 already in {own_data['db']}")
    (name,) = names_of(data_format, own_data["names"])
    # recorded by content and model, never by path
    assert re.fullmatch(rf"{data_format}-random10\[data=toy@[0-9a-f]{{12}},model=mlp,"
                        r"epochs=10\]", name), name
    assert f"{name} finetune seed=0: finished avg_gap=" in own_data["run"].stdout


@pytest.mark.slow
@pytest.mark.parametrize("data_format", FORMATS)
def test_moved_file_finds_its_results_and_changed_file_is_another_benchmark(own_data,
                                                                              data_format):
    # each format's moved file: 2 jobs found stored; its changed file: 2 jobs run
    assert ok(own_data["rerun"]).stdout.splitlines()[-1] == (
        f"8 finished, 0 failed, 8 already in {own_data['db']}")
    (name,) = names_of(data_format, own_data["names"])
    runs = [r for r in runs_in(own_data["db"]) if r["benchmark"].startswith(f"{data_format}-")]
    assert sorted(r["method"] for r in runs if r["benchmark"] == name) == ["finetune", "retrain"]
    (other,) = {r["benchmark"] for r in runs} - {name}
    assert other.split("@")[0] == name.split("@")[0] and other != name
    assert sorted(r["method"] for r in runs if r["benchmark"] == other) == ["finetune", "retrain"]


@pytest.mark.slow
@pytest.mark.parametrize("data_format", FORMATS)
def test_show_and_report_on_own_data(own_data, data_format):
    ok(own_data["report"])
    rows = [row for row in json.loads(ok(own_data["show"]).stdout)
            if row["benchmark"].startswith(f"{data_format}-")]
    assert len(rows) == 4  # two methods on the moved (first) and the changed data
    for row in rows:
        assert row["failed"] == 0
        if row["method"] == "retrain":
            assert row["metrics"]["avg_gap"]["mean"] == 0.0
            # 4 classes: chance is 25%; 8x8 digits 0-3 are easy (the full set scores ~95%)
            assert row["metrics"]["ta"]["mean"] > 70
    page = own_data["page"].read_text()
    assert all(row["benchmark"] in page for row in rows)
    assert str(own_data["work"]) not in " ".join(row["benchmark"] for row in rows)


@pytest.mark.slow
def test_bad_file_is_one_line_error(tmp_path, generic_cache):
    np.savez(tmp_path / "bad.npz", x=np.zeros((10, 8, 8)))
    result = ub("run", "-b", "npz-random10[path=bad.npz]", "-m", "retrain", "--no-progress",
                "--db", str(tmp_path / "runs.db"), cache=generic_cache, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: bad.npz has no y array"), result.stderr


# --------------------------------------------------------------------------- identity

def test_name_is_content_not_path(tmp_path):
    x, y = digits4(20)
    np.savez(tmp_path / "a.npz", x=x, y=y)
    (tmp_path / "moved").mkdir()
    np.savez_compressed(tmp_path / "moved" / "b.npz", x=x, y=y)  # other bytes, same data
    changed = y.copy()
    changed[0] = (changed[0] + 1) % 4
    np.savez(tmp_path / "c.npz", x=x, y=changed)
    a = get_spec(f"npz-class[path={tmp_path / 'a.npz'},class_id=2]").name
    b = get_spec(f"npz-class[path={tmp_path / 'moved' / 'b.npz'},class_id=2]").name
    c = get_spec(f"npz-class[path={tmp_path / 'c.npz'},class_id=2]").name
    assert a == b and a != c
    assert re.fullmatch(r"npz-class\[data=[0-9a-f]{12},model=mlp,class_id=2\]", a), a
    named = get_spec(f"npz-class[path={tmp_path / 'a.npz'},name=pets,class_id=2]").name
    assert named == a.replace("data=", "data=pets@")


def test_neutral_defaults_not_another_data_sets():
    for data_format in FORMATS:
        for kind in ("random10", "class"):
            spec = get_spec(f"{data_format}-{kind}")
            assert spec.model == "mlp" and spec.method_params == {}
            assert spec.recipe == type(spec.recipe)()


def test_splits_given_or_carved(tmp_path):
    x, y = digits4(50)
    np.savez(tmp_path / "carved.npz", x=x, y=y)
    data = load_data(get_spec(f"npz-random10[path={tmp_path / 'carved.npz'}]"))
    # stratified: 20% of each class's 50 to test, then 10% of the 40 left to validation
    assert (len(data.train), len(data.validation), len(data.test)) == (144, 16, 40)
    assert np.bincount(data.test.targets.numpy()).tolist() == [10] * 4
    assert data.input_shape == (1, 8, 8) and data.num_classes == 4
    assert 0.99 < float(data.train.inputs.max()) <= 1.0  # uint8 scaled to [0, 1]

    split = np.array(["train"] * 150 + ["test"] * 30 + ["validation"] * 20)
    ids = np.arange(1000, 1200)
    np.savez(tmp_path / "given.npz", x=x, y=y, ids=ids, split=split)
    data = load_data(get_spec(f"npz-random10[path={tmp_path / 'given.npz'}]"))
    assert (len(data.train), len(data.validation), len(data.test)) == (150, 20, 30)
    assert data.test.ids.tolist() == list(range(1150, 1180))


def test_image_folder_sizes_and_channels(tmp_path):
    for label, (size, mode) in enumerate([((8, 8), "L"), ((12, 10), "RGB")]):
        folder = tmp_path / "pics" / f"class{label}"
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new(mode, size[::-1], color=40 * i).save(folder / f"{i}.png")
    with pytest.raises(UserError, match=r"several sizes.*size=HxW"):
        get_spec(f"imagefolder-random10[path={tmp_path / 'pics'}]")
    data = load_data(get_spec(f"imagefolder-random10[path={tmp_path / 'pics'},size=6]"))
    assert data.input_shape == (3, 6, 6)  # one RGB folder makes every image RGB


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((10, 8, 8))}, r"bad\.npz has no y array"),
    ({"x": np.zeros((10, 2, 3, 4, 5)), "y": np.zeros(10, int)}, r"bad\.npz: x has shape"),
    ({"x": np.zeros((10, 8, 8)), "y": np.full(10, 0.5)}, r"bad\.npz: labels must be integers"),
    ({"x": np.zeros((10, 8, 8)), "y": np.zeros(9, int)}, r"10 inputs and 9 labels"),
    ({"x": np.zeros((10, 8, 8)), "y": np.zeros(10, int), "ids": np.zeros(10, int)},
     r"ids must be unique integers"),
    ({"x": np.zeros((10, 8, 8)), "y": np.zeros(10, int), "split": np.array(["train"] * 10)},
     r"split has no train or no test"),
    ({"x": np.full((10, 4), np.nan), "y": np.zeros(10, int)}, r"NaN or infinite"),
])
def test_bad_npz_is_named(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(UserError, match=message):
        get_spec(f"npz-random10[path={tmp_path / 'bad.npz'}]")


def test_bad_folders_tables_and_keys(tmp_path):
    (tmp_path / "pics" / "cat").mkdir(parents=True)
    Image.new("L", (8, 8)).save(tmp_path / "pics" / "cat" / "0.png")
    (tmp_path / "pics" / "dog").mkdir()
    with pytest.raises(UserError, match=r"class folder .*dog holds no images"):
        get_spec(f"imagefolder-random10[path={tmp_path / 'pics'}]")
    (tmp_path / "pics" / "dog" / "0.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match=r"cannot read image .*0\.png.*replace or remove it"):
        get_spec(f"imagefolder-random10[path={tmp_path / 'pics'}]")

    pd.DataFrame({"a": [1.0, 2.0], "kind": [0, 1]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(UserError, match=r"no label column 'label'.*label=COLUMN"):
        get_spec(f"table-random10[path={tmp_path / 't.csv'}]")
    x, y = digits4(10)
    pd.DataFrame(x.reshape(40, -1) / 255).assign(label=y).to_csv(tmp_path / "f.csv", index=False)
    assert get_spec(f"table-random10[path={tmp_path / 'f.csv'}]").name.startswith(
        "table-random10[data=")
    with pytest.raises(UserError, match=r"model=cnn reads images.*use model=mlp"):
        get_spec(f"table-random10[path={tmp_path / 'f.csv'},model=cnn]")
    with pytest.raises(UserError, match=r"give its path, e\.g\. npz-random10\[path="):
        load_data(get_spec("npz-random10"))
    with pytest.raises(UserError, match=r"data=toy@1 is how results.*path=FILE"):
        get_spec("npz-random10[data=toy@1]")
    with pytest.raises(UserError, match=r"name='a b'"):
        get_spec(f"table-random10[path={tmp_path / 'f.csv'},name=a b]")
