"""Fashion-MNIST through the generic ``.npz`` path, beside the built-in ``fashion-random10``.

    .venv/bin/python benchmarks/fashion_npz.py [--train 10000] [--test 2000] [--out DIR]

Exports a stratified subsample of Fashion-MNIST (read offline by the built-in loader from
Debian's dataset-fashion-mnist) to ``fashion.npz`` as a user with a new data set would: x as
uint8 images (N, 28, 28), y, and a split column (train / test). Then, with the CLI:

1. ``unlearnbench run -b npz-random10[path=fashion.npz,name=fashion]`` with a few methods and
   3 seeds (the generic path's neutral defaults: MLP, ``Recipe()``, methods' own defaults);
2. the same methods through the built-in ``fashion-random10`` (CNN, its 5-epoch recipe and
   tuned method settings) on the same subsample: the four idx files of the exported rows in
   a directory given as the loader's ``root=``;
3. the generic route again with the built-in's model and recipe as variant keys and its method
   settings as ``--set`` values, to isolate the path itself from those choices;
4. ``unlearnbench show``, and per method the largest difference over seeds between runs 2
   and 3 of each headline metric (their recorded hyperparameters must be equal);
5. ``unlearnbench unlearn --method auto`` on a small MLP of the user's own (net.py, trained
   here with Adam on the npz's train rows), forgetting 100 of them, the test rows as holdout.

Prints each command and its output as Markdown for docs/benchmarks.md. The subsample keeps it
to about half an hour on two shared CPU cores (``--train 5000`` halves it); with ``--out``
a second call skips the runs already in its store."""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from unlearnbench.benchmarks.generic import NEUTRAL_RECIPE
from unlearnbench.benchmarks.vision import fashion_random10
from unlearnbench.data.fashion_mnist import DEFAULT_DIR, FILES, read_idx
from unlearnbench.store import Store

ROOT = Path(__file__).resolve().parent.parent
CLI = [str(Path(sys.executable).with_name("unlearnbench"))]
METHODS = "retrain,finetune,ga,neggrad_plus,rl"
NET_PY = '''from torch import nn


class MLP(nn.Module):
    """Fashion-MNIST: 28x28 grey images in [0, 1], 10 classes."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(),
                                    nn.Linear(128, 10))

    def forward(self, x):
        return self.layers(x)
'''


def stratified(labels: np.ndarray, count: int, rng) -> np.ndarray:
    """``count`` rows with the classes' shares (rounded down), in file order."""
    classes = np.unique(labels)
    per_class = count // len(classes)
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class,
                                              replace=False) for c in classes]))


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file of uint8 values (gzip'd), as the published files are laid out."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def export(work: Path, train: int, test: int) -> dict[str, np.ndarray]:
    """fashion.npz and idx/ (the same rows) from the published files; returns the arrays."""
    rng = np.random.default_rng(0)
    parts = {}
    for part, (images, labels) in FILES.items():
        x = read_idx(Path(DEFAULT_DIR) / f"{images}.gz")
        y = read_idx(Path(DEFAULT_DIR) / f"{labels}.gz")
        rows = stratified(y, train if part == "train" else test, rng)
        parts[part] = (x[rows], y[rows])
    x = np.concatenate([parts["train"][0], parts["test"][0]])
    y = np.concatenate([parts["train"][1], parts["test"][1]])
    split = np.array(["train"] * len(parts["train"][1]) + ["test"] * len(parts["test"][1]))
    np.savez(work / "fashion.npz", x=x, y=y, split=split)
    (work / "idx").mkdir(exist_ok=True)
    for part, (images, labels) in FILES.items():
        write_idx(work / "idx" / f"{images}.gz", parts[part][0])
        write_idx(work / "idx" / f"{labels}.gz", parts[part][1])
    return {"x": x, "y": y, "split": split}


def user_model(work: Path, data: dict[str, np.ndarray]) -> None:
    """net.py + net.safetensors (the MLP fitted to the train rows, 10 epochs of Adam),
    train.npz (those rows in [0, 1]), holdout.npz (the test rows) and forget.txt (100 rows)."""
    from safetensors.torch import save_model

    train, test = data["split"] == "train", data["split"] == "test"
    x = (data["x"].astype(np.float32) / 255.0)[:, None]
    np.savez(work / "train.npz", x=x[train], y=data["y"][train])
    np.savez(work / "holdout.npz", x=x[test], y=data["y"][test])
    forget = np.sort(np.random.default_rng(1).choice(int(train.sum()), 100, replace=False))
    (work / "forget.txt").write_text("".join(f"{i}\n" for i in forget))
    (work / "net.py").write_text(NET_PY)
    namespace: dict = {}
    exec(NET_PY, namespace)
    torch.manual_seed(0)
    model = namespace["MLP"]()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs, labels = torch.from_numpy(x[train]), torch.from_numpy(data["y"][train].astype(np.int64))
    for _ in range(10):
        for batch in torch.randperm(len(labels)).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(inputs[batch]), labels[batch]).backward()
            optimizer.step()
    save_model(model, str(work / "net.safetensors"))


def builtin_settings() -> tuple[str, list[str]]:
    """The generic benchmark with fashion-random10's model and recipe (the recipe fields it
    changes from the neutral one) as variant keys, and its method settings as --set values."""
    spec = fashion_random10()
    keys = [f"model={spec.model}"] + [
        f"{field.name}={getattr(spec.recipe, field.name)}"
        for field in dataclasses.fields(spec.recipe)
        if getattr(spec.recipe, field.name) != getattr(NEUTRAL_RECIPE, field.name)]
    sets = [part for method in METHODS.split(",")
            for key, value in spec.method_params.get(method, {}).items()
            for part in ("--set", f"{method}.{key}={value}")]
    return f"npz-random10[path=fashion.npz,name=fashion,{','.join(keys)}]", sets


HEADLINE = {"ua": "UA", "ra": "RA", "ta": "TA", "mia_efficacy": "MIA", "avg_gap": "Avg. Gap"}


def differences(db: Path, builtin: str) -> None:
    """Per method and headline metric, the largest |difference| over seeds between the built-in
    benchmark and the generic one run with its settings (the generic variant with model=cnn),
    beside the built-in's spread over seeds (std)."""
    runs = [r for r in Store(db).runs() if r["status"] == "finished"]
    generic = {(r["method"], r["seed"]): r for r in runs
               if r["benchmark"].startswith("npz-random10[") and "model=cnn" in r["benchmark"]}
    pairs: dict[str, list[tuple[dict, dict]]] = {}
    for r in runs:
        twin = generic.get((r["method"], r["seed"]))
        if r["benchmark"] == builtin and twin is not None:
            assert twin["params"] == r["params"], (r["method"], twin["params"], r["params"])
            pairs.setdefault(r["method"], []).append((r["metrics"], twin["metrics"]))
    print("Largest |built-in - generic| over seeds (the built-in's std over seeds):\n")
    print("| Method | " + " | ".join(HEADLINE.values()) + " |")
    print("|---" * (len(HEADLINE) + 1) + "|")
    for method, runs_of in pairs.items():
        cells = [f"{max(abs(a[m] - b[m]) for a, b in runs_of):.2f} "
                 f"({np.std([a[m] for a, _ in runs_of], ddof=1):.2f})" for m in HEADLINE]
        print(f"| {method} | " + " | ".join(cells) + " |")
    print(flush=True)


def run(work: Path, *args: str) -> None:
    """Run one CLI command in ``work``; print it and its output as Markdown."""
    start = time.perf_counter()
    result = subprocess.run(CLI + list(args), cwd=work, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    print(f"`unlearnbench {shlex.join(args)}` ({seconds:.0f} s)\n\n```")
    print((result.stdout + result.stderr).rstrip())
    print("```\n", flush=True)
    if result.returncode:
        raise SystemExit(result.returncode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=10000, help="training rows (stratified)")
    parser.add_argument("--test", type=int, default=2000, help="test rows (stratified)")
    parser.add_argument("--out", default=None, help="working directory (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.out or scratch)
        work.mkdir(parents=True, exist_ok=True)
        data = export(work, args.train, args.test)
        print(f"Fashion-MNIST subsample: {args.train} train and {args.test} test rows "
              f"(stratified, seed 0), torch {torch.__version__}\n")
        grid = ["--methods", METHODS, "--seeds", "3", "--db", "fashion.db", "--cache-dir",
                "cache"]
        run(work, "run", "-b", "npz-random10[path=fashion.npz,name=fashion]", *grid)
        run(work, "run", "-b", "fashion-random10[root=idx]", *grid)
        isolating, sets = builtin_settings()
        run(work, "run", "-b", isolating, *grid, *sets)
        run(work, "show", "--db", "fashion.db")
        differences(work / "fashion.db", "fashion-random10[root=idx]")
        user_model(work, data)
        shutil.rmtree(work / "unlearned", ignore_errors=True)  # a second call's: unlearn again
        run(work, "unlearn", "--model", "net.py:MLP,net.safetensors", "--data", "train.npz",
            "--forget", "@forget.txt", "--holdout", "holdout.npz", "--method", "auto",
            "--out", "unlearned", "--db", "fashion.db")


if __name__ == "__main__":
    main()
