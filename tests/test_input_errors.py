"""Bad input found by trying to break things: each case is one line on stderr naming the
option or file and what to do, exit 2, no traceback; and the deletion audit's files stay
well-formed whatever names, ids and numbers go into them.

The command-line cases run real ``unlearnbench`` processes (test_cli.py's helpers), two at a
time, once per module; their tests read the results."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cli import ok, ub, ub_many
from test_cli import model_cache as model_cache  # the session's model cache (fixture)
from test_data_sources import _write_cifar
from test_deletion import PEOPLE, qa_records, tiny_llama, tiny_tokenizer
from test_deletion import classifier as classifier  # a fitted digits MLP and its data (fixture)

from unlearnbench.cache import ModelCache
from unlearnbench.cli import main
from unlearnbench.errors import Diverged, UserError
from unlearnbench.registry import methods
from unlearnbench.specs import Recipe, coerce, resolve_params

# --------------------------------------------------------------------------- CLI processes

RUN = ["run", "-b", "digits-random10", "-m", "original", "--no-progress"]

# name: (arguments, what the one error line must contain); {t} is the module's directory.
CASES = {
    "store in a file's place": ([*RUN, "--db", "{t}/a-file/x.db"],
                                "cannot write to the store '{t}/a-file/x.db'"),
    "config executor": ([*RUN, "--db", "{t}/c1.db", "--config", "{t}/executor.yaml"],
                        "--executor serial runs one job at a time"),
    "config address": ([*RUN, "--db", "{t}/c2.db", "--config", "{t}/address.yaml"],
                       "--address names a Ray cluster: add --executor ray"),
    "config threads not a number": ([*RUN, "--db", "{t}/c3.db", "--config", "{t}/threads.yaml"],
                                    "threads: expected int, got 'many'"),
    "config param a list": (["run", "-b", "digits-random10", "-m", "fisher", "--db", "{t}/c4.db",
                             "--config", "{t}/bool-list.yaml"],
                            "fisher.per_unit_mean: expected bool, got [1]"),
    "threads beyond a C int": ([*RUN, "--db", "{t}/t.db", "--threads", "99999999999"],
                               "--threads 99999999999 is too many"),
    "device without data": ([*RUN, "--db", "{t}/d.db", "--device", "meta"],
                            "device 'meta' holds no data"),
    "cache dir under a file": ([*RUN, "--db", "{t}/k.db", "--cache-dir", "{t}/a-file/cache"],
                               "the model cache '{t}/a-file/cache' is not a directory"),
    "report out under a file": (["report", "--db", "{t}/runs.db", "--out", "{t}/a-file/r.html"],
                                "the directory of --out '{t}/a-file/r.html' is a file"),
    "report out unwritable": (["report", "--db", "{t}/runs.db", "--out", "{t}/r.html"],
                              "cannot write --out '{t}/r.html' (Is a directory"),
    "cache dir that is a file": ([*RUN, "--db", "{t}/k2.db", "--cache-dir", "{t}/a-file"],
                                 "Invalid value for '--cache-dir': Directory '{t}/a-file' is a "
                                 "file. (see `unlearnbench run --help`)"),
    "misspelt flag": ([*RUN, "--db", "{t}/k3.db", "--seed", "2"],
                      "No such option '--seed'. (Did you mean one of: '--seeds'"),
    "show json and csv": (["show", "--db", "{t}/runs.db", "--json", "--csv"],
                          "--json and --csv each choose the output format: give one of them"),
    "cifar broken meta": (["run", "-b", "cifar10-random10[root={t}/cifar]", "-m", "original",
                           "--no-progress", "--db", "{t}/cifar.db"],
                          "{t}/cifar/batches.meta is not a CIFAR-10 batches.meta"),
    "model weights of another shape": (
        ["unlearn", "--model", "{t}/wide-lm", "--data", "{t}/qa.jsonl", "--forget", "q1",
         "--method", "ga", "--out", "{t}/out1", "--db", "{t}/u1.db"],
        "the weights of the model {t}/wide-lm do not fit its config.json: "
        "model.embed_tokens.weight is"),
    "model weights truncated": (
        ["unlearn", "--model", "{t}/cut-lm", "--data", "{t}/qa.jsonl", "--forget", "q1",
         "--method", "ga", "--out", "{t}/out2", "--db", "{t}/u2.db"],
        "could not load the model {t}/cut-lm (SafetensorError"),
}


def write_inputs(root: Path) -> None:
    """The files the cases name: a file standing where a directory should be, configs,
    CIFAR batches with a broken batches.meta, two damaged copies of a saved language model."""
    (root / "a-file").write_text("not a directory\n")
    base = "benchmarks: [digits-random10]\nmethods: [original]\n"
    (root / "executor.yaml").write_text(base + "executor: serial\nworkers: 2\n")
    (root / "address.yaml").write_text(base + "address: auto\n")
    (root / "threads.yaml").write_text(base + "threads: many\n")
    (root / "bool-list.yaml").write_text("params: {fisher: {per_unit_mean: [1]}}\n")
    (root / "r.html.partial").mkdir()  # where the report is written before its rename
    _write_cifar(root / "cifar")
    (root / "cifar" / "batches.meta").write_bytes(b"\x80\x04 not a pickle")
    with open(root / "qa.jsonl", "w") as out:
        out.writelines(json.dumps({"id": f"q{i}", **r}) + "\n"
                       for i, r in enumerate(qa_records(PEOPLE[:6])))
    tokenizer = tiny_tokenizer([r["question"] + r["answer"] for r in qa_records(PEOPLE)])
    for name in ("wide-lm", "cut-lm"):
        tiny_llama(len(tokenizer), tokenizer).save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    config = json.loads((root / "wide-lm" / "config.json").read_text())
    (root / "wide-lm" / "config.json").write_text(json.dumps(dict(config, hidden_size=64)))
    weights = root / "cut-lm" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])


@pytest.fixture(scope="module")
def cli_results(model_cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("input-errors")
    write_inputs(root)
    # a store with one run, for show and report
    ok(ub(*RUN, "--db", str(root / "runs.db"), cache=model_cache, cwd=root))
    commands = [[arg.format(t=root) for arg in CASES[name][0]] for name in CASES]
    return root, dict(zip(CASES, ub_many(commands, cache=model_cache, cwd=root)))


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line(cli_results, case):
    root, results = cli_results
    result = results[case]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert CASES[case][1].format(t=root) in lines[0]


@pytest.mark.slow
def test_model_cache_that_is_a_file(tmp_path):
    """$UNLEARNBENCH_CACHE naming a file is refused before anything is trained."""
    (tmp_path / "cache").write_text("a file")
    result = ub(*RUN, "--db", str(tmp_path / "x.db"), cache=tmp_path / "cache", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"error: the model cache '{tmp_path / 'cache'}' is not a "
                                     f"directory ('{tmp_path / 'cache'}' is a file); give "
                                     "--cache-dir (or $UNLEARNBENCH_CACHE) a directory")


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs a directory this user cannot write (root writes anywhere)")
def test_store_in_a_read_only_directory(model_cache, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = ub(*RUN, "--db", str(locked / "x.db"), cache=model_cache, cwd=tmp_path)
    finally:
        locked.chmod(0o755)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith(f"error: cannot write to the store '{locked}/x.db'")


@pytest.mark.slow
def test_config_says_what_the_flags_say(model_cache, tmp_path):
    """executor, address, no_progress and tuned are config keys like every other flag."""
    (tmp_path / "run.yaml").write_text("benchmarks: [digits-random10]\nmethods: [original]\n"
                                       "executor: serial\nno_progress: true\n")
    result = ok(ub("run", "--config", str(tmp_path / "run.yaml"), "--db", str(tmp_path / "r.db"),
                   cache=model_cache, cwd=tmp_path))
    assert "digits-random10 original seed=0: finished" in result.stdout
    (tmp_path / "tuned.yaml").write_text("benchmarks: [digits-random10]\nmethods: [ga]\n"
                                         "tuned: true\n")
    result = ub("run", "--config", str(tmp_path / "tuned.yaml"), "--db",
                str(tmp_path / "none.db"), cache=model_cache, cwd=tmp_path)
    assert result.returncode == 2
    assert "no store at" in result.stderr and "holds tuned hyperparameters" in result.stderr


# --------------------------------------------------------------------------- values

def test_coerce_takes_exponent_integers_and_refuses_containers_and_bools():
    ga = methods.get("ga").params
    assert resolve_params(ga, {"epochs": "1e3"}, "ga").epochs == 1000
    assert resolve_params(ga, {"epochs": 2.0}, "ga").epochs == 2
    refused = [(ga, "epochs", "1.5", "ga.epochs: expected int, got '1.5'"),
               (ga, "epochs", True, "ga.epochs: expected int, got True"),
               (ga, "lr", True, "ga.lr: expected float, got True"),
               (ga, "lr", [0.1], "ga.lr: expected float, got [0.1]"),
               (methods.get("fisher").params, "per_unit_mean", [1],
                "fisher.per_unit_mean: expected bool, got [1]"),
               (methods.get("fisher").params, "per_unit_mean", 2,
                "fisher.per_unit_mean: expected bool, got 2")]
    for params, name, value, message in refused:
        owner = message.split(".")[0]
        with pytest.raises(UserError) as info:
            resolve_params(params, {name: value}, owner)
        assert str(info.value) == message
    with pytest.raises(UserError, match=r"^graddiff.optimizer: expected str, got \{'a': 1\}$"):
        coerce({"a": 1}, str, "graddiff.optimizer")


# --------------------------------------------------------------------------- model cache

def test_cache_entry_that_is_a_directory_is_refused_before_training(tmp_path):
    cache = ModelCache(tmp_path)
    weights, _ = cache.paths("k")
    weights.mkdir(parents=True)
    trained = []
    with pytest.raises(UserError, match="model cache entry .*k.safetensors' is a directory, not a "
                                        "file; remove it"):
        cache.get_or_train("k", lambda: torch.nn.Linear(2, 2), trained.append)
    assert trained == []


def test_cache_that_cannot_be_written_is_a_user_error(tmp_path):
    (tmp_path / "models").write_text("a file where the models directory goes")
    with pytest.raises(UserError, match=r"cannot write the trained model into the model cache "
                                        r"'.*' \(File exists\); give --cache-dir"):
        ModelCache(tmp_path).get_or_train("k", lambda: torch.nn.Linear(2, 2), lambda model: {})


# --------------------------------------------------------------------------- population

def test_nan_confidences_are_named():
    from unlearnbench.stats.population import example_epsilons, klom, ulira_accuracy

    rng = np.random.default_rng(0)
    unlearned, retrained = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    unlearned[1, 2] = np.nan
    unlearned[3, 5] = np.inf
    for score, what in ((example_epsilons, "confidences"), (ulira_accuracy, "confidences"),
                        (klom, "margins")):
        with pytest.raises(ValueError) as info:
            score(unlearned, retrained)
        assert str(info.value).startswith(f"the unlearned population's {what} hold NaN or "
                                          "infinite values on 2 of 6 examples (2, 5)")


def test_population_refuses_a_model_with_nan_logits(model_cache):
    from unlearnbench.studies.population import collect
    from unlearnbench.scenarios import build_scenario, get_spec

    scenario = build_scenario(get_spec("digits-random10"), 0, ModelCache(model_cache))
    broken = scenario.task.fresh_model(0)
    with torch.no_grad():
        next(broken.parameters()).fill_(float("nan"))
    with pytest.raises(Diverged, match=r"^the model gives NaN or infinite logits on "
                                       rf"{len(scenario.splits['forget'])} of "
                                       rf"{len(scenario.splits['forget'])} forget examples$"):
        collect(scenario, [scenario.original, broken])


# --------------------------------------------------------------------------- deletion

def request(classifier: Path, data: Path, tmp_path: Path) -> list[str]:
    return ["unlearn", "--model", f"{classifier}/net.py:MLP,{classifier}/net.safetensors",
            "--data", str(data), "--forget", "d1098", "--method", "ga",
            "--out", str(tmp_path / "out"), "--db", str(tmp_path / "store.db")]


@pytest.mark.parametrize("array", ["x", "y"])
def test_deletion_data_with_nan_names_the_rows(classifier, tmp_path, capsys, array):
    with np.load(classifier / "train.npz") as data:
        arrays = {name: data[name] for name in data.files}
    arrays["y"] = arrays["y"].astype(np.float64)
    rows = [3, 17, 40, 41, 90, 91, 300]
    arrays[array][rows[:4]] = np.nan
    arrays[array][rows[4:]] = np.inf
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(SystemExit) as exit_info:
        main(request(classifier, tmp_path / "bad.npz", tmp_path))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err == (f"error: --data {tmp_path / 'bad.npz'}: {array} holds NaN or infinite values "
                   "in 7 row(s) (0-based: 3, 17, 40, 41, 90, ...); fix or drop those rows and "
                   "save the file again")
    assert not (tmp_path / "out").exists()


def test_audit_is_standard_json_and_escaped_markdown(classifier, tmp_path):
    from markdown_it import MarkdownIt

    import unlearnbench
    from unlearnbench.deletion.audit import write_report

    # A model file and ids full of Markdown: none may add markup or break a line.
    name = "n|e*t_`x`<i>\n# h.py"
    shutil.copy(classifier / "net.py", tmp_path / name)
    ids = ["a|b", "*x*", "_y_", "`z`", "<b>w</b>", "[l](u)", "~s~", "&amp;"]
    with np.load(classifier / "train.npz") as data:
        x, y = data["x"], data["y"]
    np.savez(tmp_path / "data.npz", x=x, y=y, ids=np.array(ids + [f"r{i}" for i in
                                                                 range(len(ids), len(x))]))
    audit = unlearnbench.delete(f"{tmp_path / name}:MLP,{classifier}/net.safetensors",
                                str(tmp_path / "data.npz"), ids, "ga", str(tmp_path / "out"),
                                holdout=str(classifier / "holdout.npz"),
                                db=str(tmp_path / "store.db"))

    text = (tmp_path / "out" / "audit.md").read_text()
    tokens = MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(text)
    kinds = {t.type for t in tokens} | {c.type for t in tokens for c in t.children or []}
    assert not kinds & {"em_open", "s_open", "link_open", "html_inline", "html_block"}
    # Bold text is only the audit's own labels and warning codes, never a name or an id.
    strong = [t.children[i + 1].content for t in tokens if t.type == "inline"
              for i, c in enumerate(t.children) if c.type == "strong_open"]
    labels = {"Removed", "Method", "Unlearned model", "Speed-up over retraining", "Recorded"}
    assert labels <= set(strong)
    assert all(text in labels or re.fullmatch(r"[a-z_]+", text) for text in strong), strong
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings[0] == r"Deletion audit: n\|e\*t\_\`x\`\<i\>\\n\# h.py"
    title = next(t for t in tokens if t.type == "inline" and t.content == headings[0])
    assert "".join(c.content for c in title.children) == "Deletion audit: n|e*t_`x`<i>\\n# h.py"
    assert headings[1:] == ["Warnings", "Before and after", "Membership inference",
                            "Retrained comparison", "Training recipe", "Provenance"]
    removed = next(t for t in tokens if t.type == "inline" and t.content.startswith("**Removed**"))
    shown = "".join(c.content for c in removed.children if c.type == "text")
    assert "ids: " + ", ".join(ids) in shown
    cells = [t for t in tokens if t.type in ("th_open", "td_open")]
    # before/after: (header + 3 splits x 2 scores) x (split, score, original, unlearned);
    # membership inference: (header + 2 models) x (model, AUC, interval); training recipe:
    # (header + each field) x (field, value, given or default)
    recipe_rows = 1 + len(dataclasses.fields(Recipe))
    assert len(cells) == 7 * 4 + 3 * 3 + recipe_rows * 3

    # audit.json: non-finite numbers are null, each reason under its JSON pointer.
    audit["metrics"]["unlearned"]["forget"]["loss"] = math.inf
    audit["membership_inference"]["unlearned"]["auc"] = math.nan
    audit["timings"]["unlearn_seconds"] = -math.inf
    write_report(audit, tmp_path)

    def refuse(token):
        raise AssertionError(f"{token} is not JSON")

    written = json.loads((tmp_path / "audit.json").read_text(), parse_constant=refuse)
    assert written["metrics"]["unlearned"]["forget"]["loss"] is None
    assert written["membership_inference"]["unlearned"]["auc"] is None
    assert written["non_finite_numbers"] == {"/metrics/unlearned/forget/loss": "Infinity",
                                             "/membership_inference/unlearned/auc": "NaN",
                                             "/timings/unlearn_seconds": "-Infinity"}
    assert written["request"]["ids"] == ids
