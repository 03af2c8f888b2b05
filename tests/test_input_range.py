"""Inputs far off the scale a model trains on are warned about, with the numbers and what to
do: a deletion request whose data (or holdout) is raw 0-255 pixels for a model trained on
[0, 1] (terminal, audit.json, audit.md, the store), and a generic ``.npz`` data set of float
0-255 pixels (the loader, and ``unlearnbench run``). The same data in [0, 1] is not."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import unlearnbench
from unlearnbench.data.generic import InputRangeWarning, load_npz

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
    """net.py + net.safetensors (an MLP fitted to 300 digits scaled to [0, 1]), the same
    digits as [0, 1] (unit.npz) and as 0-255 pixel values (bytes.npz), and 200 holdout digits
    both ways."""
    from safetensors.torch import save_model
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digits")
    (root / "net.py").write_text(NET_PY)
    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype(np.float32)
    for name, rows in (("", slice(0, 300)), ("holdout_", slice(300, 500))):
        np.savez(root / f"{name}unit.npz", x=x[rows], y=y[rows])
        np.savez(root / f"{name}bytes.npz", x=np.round(x[rows] * 255), y=y[rows])
    namespace: dict = {}
    exec(NET_PY, namespace)
    torch.manual_seed(0)
    model = namespace["MLP"]()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    inputs, labels = torch.from_numpy(x[:300]), torch.from_numpy(y[:300])
    for _ in range(60):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()
    save_model(model, str(root / "net.safetensors"))
    return root


def request(digits: Path, tmp_path: Path, data: str, holdout: str) -> dict:
    return unlearnbench.delete(model=f"{digits}/net.py:MLP,{digits}/net.safetensors",
                               data=str(digits / data), holdout=str(digits / holdout),
                               forget="0,1,2,3,4", method="original", out=tmp_path / "out",
                               db=str(tmp_path / "store.db"))


def off_scale(audit: dict) -> list[dict]:
    return [w for w in audit["warnings"] if w["code"] == "inputs_off_scale"]


def test_inputs_in_the_trained_range_raise_no_warning(digits, tmp_path):
    assert off_scale(request(digits, tmp_path, "unit.npz", "holdout_unit.npz")) == []


def test_a_holdout_on_another_scale_than_the_data_is_named(digits, tmp_path):
    found = off_scale(request(digits, tmp_path, "unit.npz", "holdout_bytes.npz"))
    assert len(found) == 1
    message = found[0]["message"]
    assert "--holdout holdout_bytes.npz x runs from 0 to 255" in message
    assert "--data unit.npz x runs from 0 to 1" in message and "divide by 255" in message
    numbers = found[0]["numbers"]
    # the same digits: 255 times the data's root mean square, up to the rounding to integers
    assert numbers["holdout"]["rms"] / numbers["data"]["rms"] == pytest.approx(255, rel=0.01)


@pytest.mark.slow
def test_a_deletion_on_raw_bytes_warns_in_terminal_audit_and_store(digits, tmp_path):
    result = subprocess.run(
        [*CLI, "unlearn", "--model", f"{digits}/net.py:MLP,{digits}/net.safetensors",
         "--data", str(digits / "bytes.npz"), "--holdout", str(digits / "holdout_bytes.npz"),
         "--forget", "0,1,2,3,4", "--method", "original", "--out", "out", "--db", "store.db"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "inputs off scale" in line]
    # the data only: the holdout is on the data's scale
    assert len(lines) == 1 and lines[0].startswith("warning: inputs off scale: --data bytes.npz")
    assert "runs from 0 to 255" in lines[0] and "divide by 255" in lines[0]
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    [warning] = off_scale(audit)
    assert warning["numbers"]["max"] == 255 and warning["numbers"]["rms"] > 10
    assert "**inputs_off_scale**: inputs off scale" in (tmp_path / "out" / "audit.md").read_text()
    with sqlite3.connect(tmp_path / "store.db") as db:
        settings = json.loads(db.execute("SELECT settings FROM runs").fetchone()[0])
    assert [w["code"] for w in settings["deletion"]["warnings"]].count("inputs_off_scale") == 1


def test_the_npz_loader_warns_about_float_bytes_only(digits, tmp_path):
    with np.load(digits / "bytes.npz") as data:
        x, y = data["x"], data["y"]
    np.savez(tmp_path / "float_bytes.npz", x=x.reshape(-1, 8, 8), y=y)
    np.savez(tmp_path / "uint8.npz", x=x.reshape(-1, 8, 8).astype(np.uint8), y=y)  # scaled
    with pytest.warns(InputRangeWarning, match=r"runs from 0 to 255 .*divide by 255"):
        load_npz(str(tmp_path / "float_bytes.npz"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputRangeWarning)
        load_npz(str(tmp_path / "uint8.npz"))
        load_npz(str(digits / "unit.npz"))


@pytest.mark.slow
def test_a_generic_run_on_float_bytes_warns_in_one_line(digits, tmp_path):
    with np.load(digits / "bytes.npz") as data:
        np.savez(tmp_path / "raw.npz", x=data["x"], y=data["y"])
    result = subprocess.run(
        [*CLI, "run", "-b", f"npz-random10[path={tmp_path / 'raw.npz'},epochs=1]",
         "-m", "original", "--seeds", "1", "--db", "store.db", "--cache-dir", "cache"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "inputs off scale" in line]
    assert lines and all(line.startswith("warning: inputs off scale: ") for line in lines)
    assert "runs from 0 to 255" in lines[0] and "): divide by 255" in lines[0]
