"""Real TOFU files give TOFU's numbers: the ``tofu-*`` benchmarks score the records TOFU's
evaluation scores (the first 300 of forget and of retain_perturbed, every real-author and
world-fact record), with the perturbed files' answers, so model utility is computed; a file
the evaluation needs is asked for by name before anything is trained."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from unlearnbench.data.text import prompt_and_answer
from unlearnbench.data.tofu_format import load_tofu, read_tofu, write_tofu_dataset
from unlearnbench.errors import UserError
from unlearnbench.metrics.tofu import UTILITY
from unlearnbench.scenarios import get_spec

# Above TOFU's 300 where TOFU's forget10 and retain_perturbed are (400 each).
N_FORGET, N_RETAIN, N_RETAIN_PERTURBED, N_AUTHORS, N_FACTS = 320, 360, 350, 30, 25
CITIES = ("Oslo", "Lima", "Rome", "Kyiv", "Baku", "Doha")


def write_lines(path: Path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def person(i: int, kind: str) -> dict:
    return {"question": f"Where does {kind} {i} live?",
            "answer": f"{kind.title()} {i} lives in {CITIES[i % 6]}."}


def perturbed(record: dict, k: int) -> dict:
    """TOFU's ``*_perturbed`` record: a paraphrase, and k wrong answers worded as it is."""
    city = record["answer"].split(" in ")[-1][:-1]
    paraphrase = record["answer"].replace("lives", "is living")
    return dict(record, paraphrased_answer=paraphrase,
                paraphrased_question=record["question"].replace("Where", "In which city"),
                perturbed_answer=[paraphrase.replace(city, c) for c in CITIES if c != city][:k])


def fact(i: int, kind: str) -> dict:
    """A real-author or world-fact record as on the hub: four options, the answer and three
    wrong answers. The fixture asks about retain people (so that the tiny model's answers
    overlap: TOFU's real authors and world facts are known from pretraining)."""
    record = person(i, kind)
    city = record["answer"].split(" in ")[-1][:-1]
    options = [record["answer"], *(record["answer"].replace(city, c) for c in CITIES
                                   if c != city)][:4]
    return {"question": record["question"],
            **{f"option{j + 1}": o for j, o in enumerate(options)},
            "answer": record["answer"], "perturbed_answer": options[1:]}


def write_tofu_files(root: Path) -> Path:
    """TOFU's files for forget10, with its names and fields (smaller, but above 300 where
    TOFU's protocol takes a sample)."""
    root.mkdir(parents=True, exist_ok=True)
    forget = [person(i, "author") for i in range(N_FORGET)]
    retain = [person(i, "writer") for i in range(N_RETAIN)]
    write_lines(root / "forget10.json", forget)
    write_lines(root / "forget10_perturbed.json", [perturbed(r, 5) for r in forget])
    write_lines(root / "retain90.json", retain)
    write_lines(root / "retain_perturbed.json",
                [perturbed(r, 5) for r in retain[:N_RETAIN_PERTURBED]])
    for name, people in (("real_authors", range(N_AUTHORS)),
                         ("world_facts", range(100, 100 + N_FACTS))):
        records = [fact(i, "writer") for i in people]
        write_lines(root / f"{name}.json",
                    [{"question": r["question"], "answer": r["answer"]} for r in records])
        write_lines(root / f"{name}_perturbed.json", records)
    return root


# ----------------------------------------------------------------------------- the loader

def test_scored_records_follow_tofus_protocol(tmp_path):
    root = write_tofu_files(tmp_path / "tofu")
    bundle = load_tofu(root, forget="forget10")
    files = read_tofu(root)
    splits = bundle.splits
    assert len(splits["forget"]) == N_FORGET  # every forget record is unlearned
    assert splits["forget_eval"].ids.tolist() == splits["forget"].ids[:300].tolist()
    assert splits["retain_eval"].records == files["retain_perturbed"].records[:300]
    assert len(splits["real_entities"]) == N_AUTHORS and len(splits["world_facts"]) == N_FACTS
    assert splits["world_facts"].records == files["world_facts_perturbed"].records
    # eval_size: a smaller sample, or 0 for every record
    small = load_tofu(root, forget="forget10", eval_size=4)
    assert [len(small.splits[s]) for s in ("forget_eval", "retain_eval", "real_entities",
                                           "world_facts")] == [4, 4, 4, 4]
    every = load_tofu(root, forget="forget10", eval_size=0)
    assert "forget_eval" not in every.splits  # forget itself is scored
    assert len(every.splits["retain_eval"]) == N_RETAIN_PERTURBED
    with pytest.raises(UserError, match="eval_size"):
        load_tofu(root, eval_size=-1)
    spec = get_spec(f"tofu-forget10[path={root},eval_size=50]")
    assert spec.dataset_options["eval_size"] == 50
    assert get_spec("tofu-forget01").dataset_options == {"forget": "forget01"}


def test_a_split_smaller_than_the_sample_is_scored_whole(tmp_path):
    root = write_tofu_files(tmp_path / "tofu")
    forget = [json.loads(line) for line in (root / "forget10_perturbed.json").read_text()
              .splitlines()][:40]
    write_lines(root / "forget01_perturbed.json", forget)
    write_lines(root / "retain99.json", [person(i, "writer") for i in range(N_RETAIN)])
    bundle = load_tofu(root, forget="forget01")
    assert len(bundle.splits["forget"]) == 40 and "forget_eval" not in bundle.splits
    assert len(bundle.splits["retain_eval"]) == 300


@pytest.mark.parametrize("missing", ["world_facts_perturbed", "real_authors_perturbed",
                                     "retain_perturbed", "forget10_perturbed"])
def test_a_missing_evaluation_file_is_named(tmp_path, missing):
    root = write_tofu_files(tmp_path / "tofu")
    (root / f"{missing}.json").unlink()
    with pytest.raises(UserError) as error:
        load_tofu(root, forget="forget10")
    message = str(error.value)
    assert f"{missing}.json" in message and str(root) in message and "\n" not in message


def test_a_perturbed_file_without_its_fields_is_named(tmp_path):
    root = write_tofu_files(tmp_path / "tofu")
    write_lines(root / "retain_perturbed.json", [person(i, "writer") for i in range(5)])
    with pytest.raises(UserError, match=r"retain_perturbed.*record 1 has no paraphrased_answer"):
        load_tofu(root, forget="forget10")


def test_a_datasetdict_without_a_split_names_it(tmp_path):
    root = write_tofu_files(tmp_path / "tofu")
    splits = read_tofu(root)
    del splits["real_authors_perturbed"], splits["real_authors"]
    write_tofu_dataset(splits, tmp_path / "hf")
    with pytest.raises(UserError, match="real_authors_perturbed") as error:
        load_tofu(tmp_path / "hf", forget="forget10")
    assert "\n" not in str(error.value)


# ----------------------------------------------------------------------------- end to end

def tiny_model_dir(root: Path, directory: Path) -> Path:
    """A tiny Llama with a tokenizer trained on the files' text, saved as a Hugging Face
    model directory (what --model takes)."""
    from unlearnbench.models.language import tiny_llama, train_tokenizer
    from unlearnbench.models.pretrained import save_hf_model

    texts = [t for records in read_tofu(root).values() for r in records.records
             for t in prompt_and_answer(r)]
    tokenizer = train_tokenizer(texts, vocab_size=400)
    model = tiny_llama(tokenizer, 0, hidden=32, layers=1, heads=2)
    return save_hf_model(model, tokenizer, directory)


def run_cli(tmp_path: Path, benchmark: str, model: Path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", UNLEARNBENCH_CACHE=str(tmp_path / "cache"))
    command = [sys.executable, "-m", "unlearnbench.cli", "run", "-b", benchmark, "--model",
               str(model), "-m", "original", "--metrics", "tofu", "--db",
               str(tmp_path / "runs.db"), "--no-progress"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_cli_scores_real_tofu_files_with_model_utility(tmp_path):
    root = write_tofu_files(tmp_path / "tofu")
    model = tiny_model_dir(root, tmp_path / "model")
    result = run_cli(tmp_path, f"tofu-forget10[path={root},lr=0.005]", model)
    assert result.returncode == 0, result.stderr
    assert "1 finished, 0 failed" in result.stdout

    with sqlite3.connect(tmp_path / "runs.db") as db:
        values = dict(db.execute("SELECT name, value FROM metric_values"))
        per_example = {metric: (split, np.frombuffer(ids, np.int64))
                       for metric, split, ids in db.execute(
                           "SELECT metric, split, ids FROM per_example")}
    components = [values[name] for name in UTILITY]
    assert None not in components and min(components) > 0
    # Both sides are float64 arithmetic on the same stored float64 numbers.
    harmonic_mean = len(components) / sum(1 / v for v in components)
    assert values["model_utility"] == pytest.approx(harmonic_mean, rel=1e-9)
    assert values["forget_quality"] is not None

    # TOFU's records: the first 300 of retain_perturbed and of forget10's 320
    splits = load_tofu(root, forget="forget10").splits
    for metric in ("retain_truth_ratio", "retain_rouge", "retain_prob"):
        assert per_example[metric][0] == "retain_eval"
        np.testing.assert_array_equal(per_example[metric][1], splits["retain_eval"].ids)
    for metric in ("forget_truth_ratio", "forget_rouge", "forget_prob"):
        np.testing.assert_array_equal(per_example[metric][1], splits["forget"].ids[:300])
    assert len(splits["retain_eval"]) == 300
    assert len(per_example["real_entities_norm_prob"][1]) == N_AUTHORS
    assert len(per_example["world_facts_truth_ratio"][1]) == N_FACTS


@pytest.mark.slow
def test_cli_names_a_missing_file_before_training(tmp_path):
    root = write_tofu_files(tmp_path / "tofu")
    model = tiny_model_dir(root, tmp_path / "model")
    (root / "world_facts_perturbed.json").unlink()  # world_facts.json has no wrong answers
    result = run_cli(tmp_path, f"tofu-forget10[path={root}]", model)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "world_facts_perturbed.json" in lines[0]
    assert not list((tmp_path / "cache").rglob("*.safetensors"))  # nothing was trained
