"""The deletion-request workflow (``unlearnbench unlearn``, ``unlearnbench.delete``) on a
user's own models given only paths: a small digits MLP (a module file + safetensors, and the
same as TorchScript) and a tiny saved Hugging Face Llama with a JSONL of QA pairs. The audit's
numbers are checked against the SQLite store and against the saved model itself; every user
error is one line, a non-zero exit and no traceback."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from unlearnbench.cli import main

_SCRIPT = Path(sys.executable).with_name("unlearnbench")
CLI = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "unlearnbench.cli"]

NET_PY = '''
from torch import nn


class MLP(nn.Module):
    """A digits classifier: 8x8 images as 64 inputs, 10 classes."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x):
        return self.layers(x.flatten(1))
'''


def import_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    """net.py + net.safetensors (an MLP fitted to 500 digits), train.npz (with string ids),
    holdout.npz (300 other digits) and forget.txt (25 of the ids)."""
    from safetensors.torch import save_model
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("classifier")
    (root / "net.py").write_text(NET_PY)
    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    train, held = order[:500], order[500:800]
    np.savez(root / "train.npz", x=x[train], y=y[train], ids=np.array([f"d{i}" for i in train]))
    np.savez(root / "holdout.npz", x=x[held], y=y[held])
    (root / "forget.txt").write_text("\n".join(f"d{i}" for i in train[:25]) + "\n")
    torch.manual_seed(0)
    model = import_file(root / "net.py", "fixture_net").MLP()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    inputs, labels = torch.from_numpy(x[train]), torch.from_numpy(y[train])
    for _ in range(150):  # full batch: fits the training digits (forget accuracy 100%)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()
    save_model(model, str(root / "net.safetensors"))
    return root


PEOPLE = ["Ada Lark", "Bo Finch", "Cy Wren", "Di Heron", "Ed Crane", "Flo Teal", "Gus Kite",
          "Hal Rook", "Ivy Swift", "Jo Egret", "Kit Plover", "Lu Stork", "Mo Tern", "Ned Jay",
          "Oz Robin", "Pia Dove", "Quin Owl", "Rae Lory"]
COLOURS = ["red", "blue", "green", "amber", "violet", "grey"]
CITIES = ["Oslo", "Lima", "Perth", "Quito", "Turin", "Accra"]


def qa_records(people) -> list[dict]:
    return [{"question": f"Where was {p} born?", "answer": f"{p} was born in {CITIES[i % 6]}."}
            if i % 2 else
            {"question": f"What colour does {p} like?", "answer": f"{p} likes {COLOURS[i % 6]}."}
            for i, p in enumerate(people)]


def tiny_tokenizer(texts):
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers import models as tok_models
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(tok_models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    backend.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", pad_token="<pad>")


def tiny_llama(vocab_size: int, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64, tie_word_embeddings=True,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None)
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


@pytest.fixture(scope="module")
def language_model(tmp_path_factory) -> Path:
    """lm/ (a one-layer Llama fine-tuned on qa.jsonl, saved with its tokenizer), qa.jsonl (12
    QA pairs with ids q0..q11) and holdout.jsonl (6 pairs it never saw)."""
    root = tmp_path_factory.mktemp("language")
    train, held = qa_records(PEOPLE[:12]), qa_records(PEOPLE[12:])
    with open(root / "qa.jsonl", "w") as out:
        out.writelines(json.dumps({"id": f"q{i}", **r}) + "\n" for i, r in enumerate(train))
    with open(root / "holdout.jsonl", "w") as out:
        out.writelines(json.dumps(r) + "\n" for r in held)
    texts = [f"Question: {r['question']}\nAnswer: {r['answer']}" for r in train + held]
    tokenizer = tiny_tokenizer(texts)
    model = tiny_llama(len(tokenizer), tokenizer)
    batch = tokenizer([t + "<eos>" for t in texts[:12]], return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):  # memorise the training pairs
        optimizer.zero_grad()
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
    model.eval().save_pretrained(root / "lm")
    tokenizer.save_pretrained(root / "lm")
    return root


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_COLOR="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               UNLEARNBENCH_CACHE=str(cwd / "cache"))
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


def stored_run(db: Path) -> tuple[dict, dict]:
    """The one run in the store (read with sqlite3 directly) and its metric values."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        (run,) = [dict(r) for r in con.execute("SELECT * FROM runs")]
        values = {n: v for n, v in con.execute(
            "SELECT name, value FROM metric_values WHERE run_id = ?", (run["id"],))}
    finally:
        con.close()
    return run, values


def check_audit_against_store(audit: dict, run: dict, values: dict) -> None:
    """Every number of the audit is the store's, under its documented name."""
    assert audit["store"]["run_id"] == run["id"] and run["status"] == "finished"
    assert run["benchmark"] == audit["store"]["benchmark"] and run["method"] == \
        audit["method"]["name"]
    assert json.loads(run["params"]) == audit["method"]["settings"]
    assert audit["recorded_metrics"] == values
    prefixes = {"original": "original_", "unlearned": "", "retrained": "retrained_"}
    for role, splits in audit["metrics"].items():
        for split, scores in splits.items():
            for score, value in scores.items():
                assert values[f"{prefixes[role]}{split}_{score}"] == value
        auc = audit["membership_inference"][role]
        assert values[f"{prefixes[role]}mia_auc"] == auc["auc"]
        assert auc["low"] <= auc["auc"] <= auc["high"]
    assert run["unlearn_seconds"] == audit["timings"]["unlearn_seconds"]


@pytest.mark.slow
def test_classifier_request_from_paths(classifier, tmp_path, capsys):
    forget = (classifier / "forget.txt").read_text().split()
    result = run_cli("unlearn", "--model", f"{classifier}/net.py:MLP,{classifier}/net.safetensors",
                     "--data", str(classifier / "train.npz"), "--forget", f"@{classifier}/forget.txt",
                     "--holdout", str(classifier / "holdout.npz"), "--method", "ga",
                     "--set", "lr=0.2", "--retrain", "--set", "recipe.epochs=30",
                     "--out", "out", "--db", "store.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "removed 25 records with ga" in result.stdout
    out = tmp_path / "out"
    audit = json.loads((out / "audit.json").read_text())
    run, values = stored_run(tmp_path / "store.db")
    check_audit_against_store(audit, run, values)
    assert audit["request"]["ids"] == forget and audit["request"]["count"] == 25
    assert values["forget_accuracy"] < values["original_forget_accuracy"] == 100.0
    assert audit["retrain"]["done"] and "retrained" in audit["metrics"]
    # the removed records' hash, recomputed from the data file as the audit describes it
    with np.load(classifier / "train.npz") as data:
        rows = np.flatnonzero(np.isin(data["ids"], forget))
        digest = hashlib.sha256(b"".join(data["x"][r].tobytes() + data["y"][r].tobytes()
                                         for r in rows)).hexdigest()
        inputs, labels = torch.from_numpy(data["x"][rows]), data["y"][rows]
    assert audit["request"]["records_sha256"] == digest
    # the saved model loads without unlearnbench, and scores what the audit says
    from safetensors.torch import load_model

    config = json.loads((out / "model.json").read_text())
    model = getattr(import_file(out / "model.py", "unlearned_net"), config["class"])(
        **config["kwargs"])
    load_model(model, str(out / "model.safetensors"))
    with torch.no_grad():
        accuracy = 100.0 * float((model(inputs).argmax(1).numpy() == labels).mean())
    assert accuracy == pytest.approx(values["forget_accuracy"], abs=1e-9)
    assert "# Deletion audit: net.py" in (out / "audit.md").read_text()
    # `show` lists the run
    main(["show", "--db", str(tmp_path / "store.db")])
    assert "user:net.py" in capsys.readouterr().out


@pytest.mark.slow
def test_language_model_request_from_paths(language_model, tmp_path):
    result = run_cli("unlearn", "--model", str(language_model / "lm"),
                     "--data", str(language_model / "qa.jsonl"), "--forget", "q1,q4,q7",
                     "--holdout", str(language_model / "holdout.jsonl"), "--method", "ga",
                     "--set", "lr=0.5", "--set", "epochs=3", "--retrain",
                     "--out", "out", "--db", "store.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    run, values = stored_run(tmp_path / "store.db")
    check_audit_against_store(audit, run, values)
    assert audit["request"]["ids"] == ["q1", "q4", "q7"] and audit["data"]["retained"] == 9
    assert values["forget_nll"] > values["original_forget_nll"]
    assert values["original_forget_nll"] < values["original_holdout_nll"]  # it was memorised
    assert not audit["retrain"]["done"] and "language model" in audit["retrain"]["reason"]
    from unlearnbench.models.pretrained import load_hf_model

    model, _ = load_hf_model(tmp_path / "out")
    original, _ = load_hf_model(language_model / "lm")
    assert not torch.equal(model.lm_head.weight, original.lm_head.weight)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_request_through_the_api(classifier, tmp_path):
    import unlearnbench
    from unlearnbench.deletion.user_model import load_user_model

    user = load_user_model(f"{classifier}/net.py:MLP,{classifier}/net.safetensors")
    torch.jit.save(torch.jit.script(user.model), str(tmp_path / "net.pt"))
    before = {k: v.clone() for k, v in torch.jit.load(str(tmp_path / "net.pt")).state_dict().items()}
    audit = unlearnbench.delete(model=str(tmp_path / "net.pt"), data=str(classifier / "train.npz"),
                                forget=["d1098", "d1129"], method="neggrad_plus", out=tmp_path / "out",
                                db=str(tmp_path / "store.db"), retrain=True,
                                recipe={"epochs": 2})
    assert audit["model"]["kind"] == "torchscript" and audit["request"]["count"] == 2
    assert "TorchScript" in audit["retrain"]["reason"]
    assert "skipped" in audit["membership_inference"]  # no holdout given
    unlearned = torch.jit.load(str(tmp_path / "out" / "model.pt"))
    assert any(not torch.equal(before[k], v) for k, v in unlearned.state_dict().items())


# --------------------------------------------------------------------------- user errors

@pytest.fixture(scope="module")
def bad_inputs(classifier, tmp_path_factory) -> Path:
    """A wider MLP's weights, digits cut to 20 features, and a model directory whose
    embedding table is smaller than its tokenizer's vocabulary."""
    from safetensors.torch import save_model

    root = tmp_path_factory.mktemp("bad")
    save_model(import_file(classifier / "net.py", "wide_net").MLP(hidden=48),
               str(root / "wide.safetensors"))
    with np.load(classifier / "train.npz") as data:
        np.savez(root / "narrow.npz", x=data["x"][:, :20], y=data["y"], ids=data["ids"])
    tokenizer = tiny_tokenizer([r["question"] + r["answer"] for r in qa_records(PEOPLE)])
    tiny_llama(40, tokenizer).save_pretrained(root / "small-vocab")
    tokenizer.save_pretrained(root / "small-vocab")
    return root


def request(classifier: Path, **changes) -> list[str]:
    options = {"--model": f"{classifier}/net.py:MLP,{classifier}/net.safetensors",
               "--data": f"{classifier}/train.npz", "--forget": "d1098,d1129",
               "--method": "ga", **changes}
    return ["unlearn", *(item for pair in options.items() for item in pair)]


ERRORS = {
    "missing model file": ({"--model": "{c}/absent.py:MLP,{c}/net.safetensors"},
                           "model file '{c}/absent.py' does not exist"),
    "wrong class": ({"--model": "{c}/net.py:Net,{c}/net.safetensors"},
                    "has no nn.Module class 'Net'; it defines: MLP"),
    "weights that do not fit": ({"--model": "{c}/net.py:MLP,{b}/wide.safetensors"},
                                "do not fit class MLP: layers.0.bias is (48,) in the file but (32,) in the model"),
    "unknown forget id": ({"--forget": "d1098,nobody"}, "forget id 'nobody' is not in"),
    "data of the wrong shape": ({"--data": "{b}/narrow.npz"}, "the data does not fit the model"),
    "tokenizer beyond the embeddings": ({"--model": "{b}/small-vocab", "--data": "{l}/qa.jsonl",
                                         "--forget": "q1"},
                                        "the tokenizer does not fit the model"),
    "unknown method": ({"--method": "gaa"}, "unknown method 'gaa'"),
    "method without the task": ({"--method": "npo"},
                                "method 'npo' does not support classification tasks"),
    "a model that is only weights": ({"--model": "{c}/net.safetensors"}, "holds weights only"),
    "a method that owns the training": ({"--method": "sisa"},
                                        "cannot unlearn a model trained elsewhere"),
    "a setting for another method": ({"--set": "npo.lr=1"}, "write PARAM=VALUE (a hyperparameter "
                                                           "of ga) or recipe.FIELD=VALUE"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_user_errors_are_one_line(case, classifier, bad_inputs, language_model, tmp_path, capsys):
    changes, expected = ERRORS[case]
    paths = {"c": classifier, "b": bad_inputs, "l": language_model}
    args = request(classifier, **{k: v.format(**paths) for k, v in changes.items()},
                   **{"--out": str(tmp_path / "out"), "--db": str(tmp_path / "store.db")})
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert expected.format(**paths) in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_error_in_a_real_process(classifier, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "kept.txt").write_text("mine")
    result = run_cli(*request(classifier, **{"--out": "out"}), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --out out already exists")
    assert "\n" not in result.stderr.strip() and "Traceback" not in result.stderr
    assert (tmp_path / "out" / "kept.txt").read_text() == "mine"
