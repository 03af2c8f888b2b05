"""``unlearnbench unlearn --method auto --tune N``: the method and its hyperparameters are chosen
with N trials on a pseudo request drawn from the retained records, by how close the pseudo
forget records come to holdout records at kept utility; the choice then runs on the real
request, and the terminal, audit.json, audit.md and the store say what was chosen and why.
A small digits MLP given by paths, through the real CLI."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import unlearnbench
from unlearnbench.deletion.auto import CANDIDATES, evaluate_trial
from unlearnbench.errors import UserError

_SCRIPT = Path(sys.executable).with_name("unlearnbench")
CLI = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "unlearnbench.cli"]

NET_PY = '''
from torch import nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.layers(x.flatten(1))
'''


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """net.py + net.safetensors (an MLP that memorised 300 digits), train.npz, holdout.npz
    (200 other digits)."""
    from safetensors.torch import save_model
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("auto")
    (root / "net.py").write_text(NET_PY)
    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype(np.float32)
    np.savez(root / "train.npz", x=x[:300], y=y[:300])
    np.savez(root / "holdout.npz", x=x[300:500], y=y[300:500])
    namespace: dict = {}
    exec(NET_PY, namespace)
    torch.manual_seed(0)
    model = namespace["MLP"]()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    inputs, labels = torch.from_numpy(x[:300]), torch.from_numpy(y[:300])
    for _ in range(150):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()
    save_model(model, str(root / "net.safetensors"))
    return root


def auto_request(digits: Path, cwd: Path, out: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, "unlearn", "--model", f"{digits}/net.py:MLP,{digits}/net.safetensors",
         "--data", str(digits / "train.npz"), "--holdout", str(digits / "holdout.npz"),
         "--forget", ",".join(map(str, range(0, 300, 10))), "--method", "auto", "--tune", "3",
         "--seed", "3", "--out", out, "--db", "store.db"],
        cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_auto_chooses_reports_and_repeats_under_a_seed(digits, tmp_path):
    first = auto_request(digits, tmp_path, "first")
    assert first.returncode == 0, first.stderr
    audit = json.loads((tmp_path / "first" / "audit.json").read_text())
    auto = audit["auto"]
    trials = auto["history"]
    # the budget goes round the candidates in order, each first at its defaults
    assert [t["method"] for t in trials] == list(CANDIDATES[:3])
    assert all(t["state"] == "complete" for t in trials)
    best = min(trials, key=lambda t: t["value"])
    assert (auto["method"], auto["params"], auto["chosen_trial"]) == (
        best["method"], best["params"], best["number"])
    assert audit["method"]["name"] == auto["method"]
    assert auto["pseudo_forget"]["count"] == 30 and auto["trials"] == 3
    # the run on the real request is recorded under the chosen method
    with sqlite3.connect(tmp_path / "store.db") as db:
        method, settings = db.execute("SELECT method, settings FROM runs").fetchone()
    assert method == auto["method"]
    assert json.loads(settings)["deletion"]["auto"] == {"trials": 3,
                                                        "candidates": auto["candidates"]}
    # the terminal: one line per trial, then the choice and why
    out = first.stdout.splitlines()
    assert sum(line.startswith("--method auto trial ") for line in out) == 3
    assert f"--method auto chose {auto['method']}: trial {best['number']}" in first.stdout
    assert f"removed 30 records with {auto['method']}" in first.stdout
    markdown = (tmp_path / "first" / "audit.md").read_text()
    assert "## Method choice (--method auto)" in markdown
    assert all(f"| {t['number']} | `{t['method']}` |" in markdown for t in trials)
    # the same seed: the same trials and the same choice
    second = auto_request(digits, tmp_path, "second")
    assert second.returncode == 0, second.stderr
    again = json.loads((tmp_path / "second" / "audit.json").read_text())["auto"]
    assert (again["method"], again["params"]) == (auto["method"], auto["params"])
    for before, after in zip(trials, again["history"]):
        assert after["params"] == before["params"]
        # the same computation in the same kind of process; float32 sums may still be
        # reordered by threads, so within 1e-6 of a value of order 0.1
        assert after["value"] == pytest.approx(before["value"], abs=1e-6)


def test_auto_refuses_what_it_cannot_use(digits, tmp_path):
    common = dict(model=f"{digits}/net.py:MLP,{digits}/net.safetensors",
                  data=str(digits / "train.npz"), forget="1,2", out=tmp_path / "out",
                  db=str(tmp_path / "store.db"))
    with pytest.raises(UserError, match="give --holdout"):
        unlearnbench.delete(method="auto", **common)
    with pytest.raises(UserError, match="--method auto chooses the hyperparameters"):
        unlearnbench.delete(method="auto", params={"lr": "0.1"}, **common,
                            holdout=str(digits / "holdout.npz"))
    with pytest.raises(UserError, match="--tune 0: give the number of trials, at least 1"):
        unlearnbench.delete(method="auto", tune=0, **common, holdout=str(digits / "holdout.npz"))
    with pytest.raises(UserError, match="--tune 3 sets the trial budget of --method auto"):
        unlearnbench.delete(method="ga", tune=3, **common)
    assert not (tmp_path / "out").exists()


def test_a_trial_losing_utility_ranks_after_every_one_keeping_it():
    original = {split: {"accuracy": 90.0, "loss": 0.1} for split in ("retain", "holdout")}

    def trial(auc, forget, retain, holdout):
        scores = {"forget": {"accuracy": forget}, "retain": {"accuracy": retain},
                  "holdout": {"accuracy": holdout}}
        return evaluate_trial(scores, {"auc": auc}, original, "classification", tolerance=2.0)

    kept = trial(auc=0.9, forget=100.0, retain=89.0, holdout=88.5)  # far from holdout records
    lost = trial(auc=0.5, forget=70.0, retain=70.0, holdout=70.0)   # looks unseen, but broken
    assert kept["feasible"] and not lost["feasible"]
    assert kept["value"] == pytest.approx(0.4 + 0.115)
    assert lost["value"] > kept["value"]
