"""A deletion audit's verdicts: warnings where its numbers cannot be taken at face value
(utility collapsed, a membership test without power, the forget accuracy rising, a retrained
reference weaker than the original), the effective training recipe (with its learning-rate
schedule) and the speed-up over retraining, each request its own row in `show`, and the
README's deletion example run exactly as written. Real digits MLPs fitted here, real
unlearning, real SQLite stores and CLI processes."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shlex
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from test_deletion import (NET_PY, PEOPLE, import_file, qa_records, run_cli, tiny_llama,
                           tiny_tokenizer)

import unlearnbench
from unlearnbench.cli import main
from unlearnbench.errors import UserError
from unlearnbench.specs import Recipe

README = Path(__file__).resolve().parents[1] / "README.md"


def write_classifier(root: Path, n_train: int, steps: int) -> Path:
    """net.py, net.safetensors (the MLP after ``steps`` full-batch Adam steps on ``n_train``
    digits), train.npz (ids d<row>), holdout.npz (300 other digits from the same
    distribution) and ids.txt (the first 25 training ids)."""
    from safetensors.torch import save_model
    from sklearn.datasets import load_digits

    root.mkdir(parents=True, exist_ok=True)
    (root / "net.py").write_text(NET_PY)
    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    train, held = order[:n_train], order[n_train:n_train + 300]
    np.savez(root / "train.npz", x=x[train], y=y[train], ids=np.array([f"d{i}" for i in train]))
    np.savez(root / "holdout.npz", x=x[held], y=y[held])
    (root / "ids.txt").write_text("".join(f"d{i}\n" for i in train[:25]))
    torch.manual_seed(0)
    model = import_file(root / "net.py", f"net_{root.name}").MLP()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    inputs, labels = torch.from_numpy(x[train]), torch.from_numpy(y[train])
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()
    save_model(model, str(root / "net.safetensors"))
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """fit: 500 digits to 100% (holdout 93%); underfit: 500 digits, 15 steps (holdout about
    85%, training records look like unseen ones); overfit: 100 digits memorised (the loss
    attack tells them from unseen ones)."""
    root = tmp_path_factory.mktemp("verdicts")
    return {"fit": write_classifier(root / "fit", 500, 150),
            "underfit": write_classifier(root / "underfit", 500, 15),
            "overfit": write_classifier(root / "overfit", 100, 300)}


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNBENCH_CACHE", str(tmp_path / "cache"))


def delete(root: Path, out: Path, method: str = "ga", **options) -> dict:
    """A deletion request through the API on the model in ``root``, its ids.txt and holdout."""
    return unlearnbench.delete(
        model=f"{root}/net.py:MLP,{root}/net.safetensors", data=str(root / "train.npz"),
        forget=(root / "ids.txt").read_text().split(), method=method, out=out,
        holdout=str(root / "holdout.npz"), db=str(out.parent / "store.db"), **options)


def codes(audit: dict) -> list[str]:
    return [warning["code"] for warning in audit["warnings"]]


@pytest.mark.slow
def test_a_collapsing_method_warns_everywhere(models, tmp_path):
    root = models["fit"]
    result = run_cli("unlearn", "--model", f"{root}/net.py:MLP,{root}/net.safetensors",
                     "--data", str(root / "train.npz"), "--forget", f"@{root}/ids.txt",
                     "--holdout", str(root / "holdout.npz"), "--method", "ga", "--set", "lr=5",
                     "--out", "out", "--db", "store.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    collapsed = [w for w in audit["warnings"] if w["code"] == "utility_collapsed"]
    # gradient ascent at lr 5 takes the retain and the holdout accuracy to about chance (10%)
    assert {w["numbers"]["split"] for w in collapsed} == {"retain", "holdout"}
    for warning in collapsed:
        numbers = warning["numbers"]
        assert numbers["before"] - numbers["after"] > 50 and numbers["tolerance"] == 2
        assert warning["message"].startswith("utility collapsed: ")
    # on the terminal, after the run: one line per warning, the last lines printed
    lines = result.stdout.strip().splitlines()
    shown = [line for line in lines if line.startswith("warning: ")]
    assert shown == [f"warning: {w['message']}" for w in audit["warnings"]]
    assert lines[-len(shown):] == shown
    report = (tmp_path / "out" / "audit.md").read_text()
    assert report.count("**utility_collapsed**: utility collapsed: ") == 2


def test_the_utility_tolerance_is_an_option(models, tmp_path, capsys):
    audit = delete(models["fit"], tmp_path / "out", params={"lr": 5}, utility_tolerance=100)
    assert "utility_collapsed" not in codes(audit) and audit["utility_tolerance"] == 100
    with pytest.raises(SystemExit) as exit_info:
        main(["unlearn", "--model", "m.py:MLP,w.safetensors", "--data", "d.npz", "--forget", "1",
              "--method", "ga", "--out", str(tmp_path / "o"), "--utility-tolerance", "-1"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: --utility-tolerance -1.0 is not allowed")


def test_a_membership_test_without_power_warns(models, tmp_path):
    """Forget and holdout records come from one distribution; a model that did not overfit
    scores them alike, so no unlearning could be seen by this test. A memorising model's
    forget records stand out, and the test can show forgetting."""
    weak = delete(models["underfit"], tmp_path / "weak", params={"lr": 0.01})
    original = weak["membership_inference"]["original"]
    assert original["low"] <= 0.5 <= original["high"]
    (warning,) = [w for w in weak["warnings"] if w["code"] == "no_test_power"]
    assert warning["message"].startswith(
        "this test cannot show forgetting on this model; the original's forget records "
        "already look unseen")
    memorised = delete(models["overfit"], tmp_path / "memorised", params={"lr": 0.01})
    assert memorised["membership_inference"]["original"]["low"] > 0.5
    assert "no_test_power" not in codes(memorised)


def test_a_rising_forget_accuracy_warns(models, tmp_path):
    # fine-tuning an under-trained model on the rest improves it on the forget records too
    audit = delete(models["underfit"], tmp_path / "out", method="finetune",
                   params={"lr": 0.1, "epochs": 10})
    before, after = (audit["metrics"][role]["forget"]["accuracy"]
                     for role in ("original", "unlearned"))
    assert after > before
    (warning,) = [w for w in audit["warnings"] if w["code"] == "forget_score_rose"]
    assert warning["numbers"] == {"before": before, "after": after}


def test_a_weak_retrain_recipe_warns_and_the_retrained_model_is_saved(models, tmp_path):
    root = models["fit"]
    weak = delete(root, tmp_path / "weak", retrain=True, recipe={"epochs": 1})
    (warning,) = [w for w in weak["warnings"] if w["code"] == "retrain_weak"]
    assert warning["message"].startswith(
        "the retrain recipe does not reproduce the original; compare with care")
    assert warning["numbers"]["retrained"] < warning["numbers"]["original"] - 30
    # 30 epochs come within a few points of the original on holdout (93%): no warning
    full = delete(root, tmp_path / "full", retrain=True, recipe={"epochs": 30},
                  utility_tolerance=5)
    assert "retrain_weak" not in codes(full)
    # the retrained model is saved as the model came in, and scores what the audit says
    from unlearnbench.deletion.user_model import load_user_model

    retrained = load_user_model(str(tmp_path / "full" / "retrained")).model
    assert full["retrain"]["path"] == str(tmp_path / "full" / "retrained")
    with np.load(root / "holdout.npz") as held, torch.no_grad():
        predicted = retrained(torch.from_numpy(held["x"])).argmax(1).numpy()
        accuracy = 100.0 * float((predicted == held["y"]).mean())
    assert accuracy == pytest.approx(full["metrics"]["retrained"]["holdout"]["accuracy"],
                                     abs=1e-9)  # the same predictions, counted the same way
    assert str(tmp_path / "full" / "retrained" / "model.safetensors") in \
        full["output"]["files_sha256"]


def test_schedule_constant_changes_training():
    """The recipe's schedule is honoured: on the same data, seed and recipe, constant and
    cosine learning rates train different weights (and each is reproducible)."""
    from unlearnbench.scenarios import get_spec, load_data
    from unlearnbench.tasks.classification import ClassificationTask

    spec = get_spec("digits-random10[schedule=constant,epochs=2]")
    assert spec.recipe.schedule == "constant" and Recipe().schedule == "cosine"
    task = ClassificationTask(load_data(spec), spec.model, "cpu")
    split = task.data.train

    def trained(schedule):
        recipe = dataclasses.replace(spec.recipe, schedule=schedule)
        return task.fit(task.fresh_model(0), split, recipe, seed=0).state_dict()

    constant, cosine = trained("constant"), trained("cosine")
    assert all(torch.equal(a, b) for a, b in zip(constant.values(), trained("constant").values()))
    assert any(not torch.equal(a, b) for a, b in zip(constant.values(), cosine.values()))
    with pytest.raises(UserError, match="schedule='linear' is not allowed"):
        get_spec("digits-random10[schedule=linear]")


def test_the_audit_holds_the_effective_recipe_and_the_speedup(models, tmp_path):
    root = models["fit"]
    estimated = delete(root, tmp_path / "estimated", recipe={"schedule": "constant", "lr": 0.02})
    recipe = estimated["recipe"]
    assert set(recipe) == {f.name for f in dataclasses.fields(Recipe)}
    assert recipe["schedule"] == "constant" and recipe["lr"] == 0.02
    assert recipe["epochs"] == Recipe().epochs and estimated["recipe_given"] == ["lr", "schedule"]
    speed = estimated["speedup"]
    retrain_steps = Recipe().epochs * -(-475 // Recipe().batch_size)  # 475 records retained
    assert speed["kind"] == "estimate" and speed["retrain_steps"] == retrain_steps
    assert speed["value"] == retrain_steps / estimated["timings"]["steps"]
    assert estimated["recorded_metrics"]["speedup_estimate"] == speed["value"]
    report = (tmp_path / "estimated" / "audit.md").read_text()
    assert "| schedule | constant | given |" in report and "| epochs | 20 | default |" in report
    assert "x, estimate: recipe epochs (20)" in report

    measured = delete(root, tmp_path / "measured", retrain=True, recipe={"epochs": 5})
    speed = measured["speedup"]
    assert speed["kind"] == "measured"
    assert speed["retrain_seconds"] == measured["retrain"]["seconds"]
    assert speed["value"] == pytest.approx(
        measured["retrain"]["seconds"] / measured["timings"]["unlearn_seconds"], rel=1e-12)
    assert measured["recorded_metrics"]["speedup"] == speed["value"]


def test_two_deletions_are_two_rows_in_show(models, tmp_path, capsys):
    """Two unrelated requests on one model, same method and seed, are never averaged as
    seeds: each is its own row, with its hashes and command in the store."""
    root = models["fit"]
    ids = (root / "ids.txt").read_text().split()
    first = delete(root, tmp_path / "first", params={"lr": 5})
    second = unlearnbench.delete(
        model=f"{root}/net.py:MLP,{root}/net.safetensors", data=str(root / "train.npz"),
        forget=ids[:5], method="ga", out=tmp_path / "second", holdout=str(root / "holdout.npz"),
        db=str(tmp_path / "store.db"), params={"lr": 5})
    db = str(tmp_path / "store.db")
    main(["show", "--db", db, "-b", "user:net.py"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if re.match(r"│\s+\d+ │", line)]
    assert [int(row.split("│")[1]) for row in rows] == [first["store"]["run_id"],
                                                       second["store"]["run_id"]]
    assert "│      25 │" in rows[0] and "│       5 │" in rows[1]
    assert f"run {first['store']['run_id']}: warning: utility collapsed" in out
    main(["show", "--db", db, "-b", "user:net.py", "--json"])
    table = json.loads(capsys.readouterr().out)
    assert len(table) == 2 and all(row["seeds"] == [0] for row in table)

    con = sqlite3.connect(db)
    stored = dict(con.execute("SELECT id, settings FROM runs").fetchall())
    commands = [c for (c,) in con.execute("SELECT command FROM runs ORDER BY id")]
    con.close()
    request = json.loads(stored[first["store"]["run_id"]])["deletion"]
    assert request["forget_ids_sha256"] == hashlib.sha256(
        "".join(f"{i}\n" for i in sorted(ids)).encode()).hexdigest()
    assert request["data_sha256"] == hashlib.sha256(
        (root / "train.npz").read_bytes()).hexdigest()
    assert request["model_sha256"] == hashlib.sha256("".join(
        first["model"]["files_sha256"].values()).encode()).hexdigest()
    assert [w["code"] for w in request["warnings"]] == codes(first)
    assert all(c.startswith("unlearnbench.delete(model=") for c in commands)
    assert "forget=['" + "', '".join(ids[:5]) + "']" in commands[1]


# ------------------------------------------------------------------ the README, as written

def readme_commands() -> list[str]:
    """The command block of the README's deletion section, continuation lines joined."""
    section = README.read_text().split("## Unlearning your own model", 1)[1]
    block = section.split("```\n", 2)[1]
    return block.replace("\\\n", " ").strip().splitlines()


@pytest.fixture
def readme_files(tmp_path) -> Path:
    """The files the README's commands name: net.py, net.safetensors, train.npz, ids.txt,
    holdout.npz; my-hf-model/ (a tiny Llama fine-tuned on qa.jsonl), qa.jsonl (ids q0..q11)
    and unseen.jsonl."""
    write_classifier(tmp_path, 500, 150)
    train, held = qa_records(PEOPLE[:12]), qa_records(PEOPLE[12:])
    (tmp_path / "qa.jsonl").write_text(
        "".join(json.dumps({"id": f"q{i}", **r}) + "\n" for i, r in enumerate(train)))
    (tmp_path / "unseen.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held))
    texts = [f"{r['question']} {r['answer']}" for r in train + held]
    tokenizer = tiny_tokenizer(texts)
    model = tiny_llama(len(tokenizer), tokenizer)  # untrained: the commands need only run
    model.save_pretrained(tmp_path / "my-hf-model")
    tokenizer.save_pretrained(tmp_path / "my-hf-model")
    return tmp_path


@pytest.mark.slow
def test_the_readme_deletion_example_runs_as_written(readme_files):
    commands = readme_commands()
    assert len(commands) >= 3 and all(c.startswith(".venv/bin/unlearnbench ") for c in commands)
    for command in commands:
        args = shlex.split(command, comments=True)[1:]
        result = run_cli(*args, cwd=readme_files)
        assert result.returncode == 0, (command, result.stderr)
        if args[0] == "unlearn":
            out = readme_files / args[args.index("--out") + 1]
            assert json.loads((out / "audit.json").read_text())["command"] == shlex.join(
                ["unlearnbench", *args])
    assert any("--retrain" in c for c in commands)
    assert (readme_files / "unlearned-vs-retrained" / "retrained" / "model.safetensors").is_file()
