"""RWKU: the loader of its per-target files, its ROUGE-L recall per probe level and MIA LOSS,
the built-in rwku-mini instance, and a CLI run on it."""
from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from unlearnbench.data.rwku import (ATTACKS, MINI_TARGETS, load_rwku, load_rwku_mini,
                                    rwku_prompt)
from unlearnbench.errors import UserError
from unlearnbench.metrics.evaluation import Evaluation
from unlearnbench.metrics.inference import InferenceCache
from unlearnbench.metrics.rwku import first_tokens, rouge_recall
from unlearnbench.registry import methods, metrics
from unlearnbench.scenarios import build_scenario, get_spec
from unlearnbench.unlearning import Scenario

from test_cli import CLI, cli_env

KING = [
    {"subject": "Stephen King", "query": "Stephen King was born in ___.",
     "answer": "Portland, Maine", "level": "1", "type": "cloze"},
    {"subject": "Stephen King", "query": "Who wrote Carrie?", "answer": "Stephen King",
     "level": "2", "type": "qa"},
    {"subject": "Stephen King", "query": "What was his first novel? Sure, the answer is",
     "answer": "Carrie", "level": "3", "type": "affirmative suffix"},
    {"subject": "Stephen King", "query": "Question: Who wrote It?\nAnswer: Stephen King\n"
     "Question: Who wrote Carrie?", "answer": "Stephen King", "level": "3",
     "type": "incontext learning"},
]


def write_target(root: Path, folder: str, probes: list[dict], skip: str = "") -> None:
    """One RWKU target folder as data_process.py writes it (JSON arrays)."""
    directory = root / "Target" / folder
    directory.mkdir(parents=True)
    subject = probes[0]["subject"]
    files = {
        "forget_level1": [p for p in probes if p["level"] == "1"],
        "forget_level2": [p for p in probes if p["level"] == "2"],
        "forget_level3": [p for p in probes if p["level"] == "3"],
        "neighbor_level1": [{"subject": "The Shining", "query": "The Shining was published "
                             "in ___.", "answer": "1977", "level": "1", "type": "cloze"}],
        "neighbor_level2": [{"subject": "The Shining", "query": "Who directed The Shining?",
                             "answer": "Stanley Kubrick", "level": "2", "type": "qa"}],
        "forget_mia": [{"text": f"{subject} is an author.", "subject": subject}],
        "retain_mia": [{"text": "Paris is in France.", "subject": "Paris"}],
        "positive": [{"text": f"{subject} writes horror novels."},
                     {"text": f"{subject} lives in Maine."}],
        "intro": [{"text": "not read"}],
    }
    for stem, records in files.items():
        if stem != skip:
            (directory / f"{stem}.json").write_text(json.dumps(records, indent=2))


def test_loader_reads_one_target_with_rwkus_prompts(tmp_path):
    write_target(tmp_path, "1_Stephen_King", KING)
    bundle = load_rwku(str(tmp_path), target="1")
    splits = bundle.splits
    assert len(splits["retain"]) == 0  # RWKU has no retain corpus
    assert [r["text"] for r in splits["forget"].records] == [
        "Stephen King writes horror novels.", "Stephen King lives in Maine."]
    fb, = splits["rwku_forget_1"].records
    assert fb["prefix"] == ("Please complete the blank in the following question.\n"
                            "Question: Stephen King was born in ___.\nAnswer:")
    assert fb["continuation"] == "Portland, Maine" and fb["level"] == "1"
    qa, = splits["rwku_forget_2"].records
    assert qa["prefix"] == ("Please briefly answer the following question.\n"
                            "Question: Who wrote Carrie?\nAnswer:")
    suffix, in_context = splits["rwku_forget_3"].records
    assert suffix["prefix"].endswith("Sure, the answer is")  # no "Answer:", no newline
    assert in_context["prefix"] == ("Please briefly answer the following question.\n"
                                    "Question: Who wrote It?\nAnswer: Stephen King\n"
                                    "Question: Who wrote Carrie?\nAnswer:")
    assert [len(splits[s]) for s in ("rwku_neighbor_1", "rwku_neighbor_2", "rwku_forget_mia",
                                     "rwku_retain_mia")] == [1, 1, 1, 1]
    ids = np.concatenate([s.ids for s in splits.values()])
    assert len(set(ids.tolist())) == len(ids)


def test_loader_batch_of_targets_and_errors(tmp_path):
    write_target(tmp_path, "1_Stephen_King", KING)
    write_target(tmp_path, "2_Taylor_Swift", [dict(p, subject="Taylor Swift") for p in KING])
    batch = load_rwku(str(tmp_path / "Target"), target="1-2")
    assert len(batch.splits["rwku_forget_3"]) == 4 and len(batch.splits["forget"]) == 4
    assert load_rwku(str(tmp_path), target="1+2_Taylor_Swift").fingerprint() == batch.fingerprint()
    with pytest.raises(UserError, match="no target '3'"):
        load_rwku(str(tmp_path), target="1-3")
    write_target(tmp_path, "3_Elon_Musk", KING, skip="neighbor_level2")
    with pytest.raises(UserError, match="neighbor_level2.json.*3_Elon_Musk"):
        load_rwku(str(tmp_path), target="3")
    with pytest.raises(UserError, match="path="):
        load_rwku(None)


def test_benchmark_form_and_prompt_rules(tmp_path):
    write_target(tmp_path, "1_Stephen_King", KING)
    spec = get_spec(f"rwku[path={tmp_path},target=1-2]")
    assert spec.dataset_options == {"path": str(tmp_path), "target": "1-2"}
    assert not spec.retain_available and not get_spec("rwku-mini").retain_available
    # a model trained from scratch knows nothing to forget: refused before any training
    with pytest.raises(UserError, match="pretrained model"):
        build_scenario(f"rwku[path={tmp_path},model=tiny-llama]", 0)
    assert rwku_prompt("q", "3", "incontext_learning").startswith(
        "Please briefly answer the following question.\nq\n")


# ChatML, as SmolLM2's template writes a user turn (without its default system turn)
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def path_scenario(tmp_path, chat_template: str | None = None, options: str = ""):
    """rwku[path=...] on a saved one-layer Hugging Face model (with ``chat_template``, its
    tokenizer's chat format; ``options``: more benchmark options, e.g. ",chat=0")."""
    from unlearnbench.cache import ModelCache
    from unlearnbench.models.language import tiny_llama, train_tokenizer
    from unlearnbench.models.pretrained import save_hf_model

    write_target(tmp_path, "1_Stephen_King", KING)
    tokenizer = train_tokenizer([json.dumps(KING)], 300)
    if chat_template:
        tokenizer.chat_template = chat_template
        tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>",
                                                                    "<|im_end|>"]})
    save_hf_model(tiny_llama(tokenizer, 0, layers=1), tokenizer, tmp_path / "model")
    return build_scenario(f"rwku[path={tmp_path},model={tmp_path / 'model'}{options}]", 0,
                          ModelCache(tmp_path / "cache"))


def test_probes_are_asked_in_the_models_chat_template(tmp_path):
    """As eval_forget.py: the instruction is the user turn, the generation prompt follows,
    then "Answer:" (none after an affirmative suffix); the task's start token is not doubled
    when the template writes its own; chat=0 keeps the plain prompts."""
    scenario = path_scenario(tmp_path, "{{ bos_token }}" + CHATML)
    qa, = scenario.splits["rwku_forget_2"].records
    assert qa["prefix"] == ("<|im_start|>user\nPlease briefly answer the following question."
                            "\nQuestion: Who wrote Carrie?\n<|im_end|>\n<|im_start|>assistant\n"
                            "Answer:")
    suffix, in_context = scenario.splits["rwku_forget_3"].records
    assert suffix["prefix"].endswith("Sure, the answer is<|im_end|>\n<|im_start|>assistant\n")
    assert in_context["prefix"].endswith("Who wrote Carrie?\n<|im_end|>\n"
                                         "<|im_start|>assistant\nAnswer:")
    tokenizer = scenario.task.tokenizer
    prompt_ids = scenario.task.encode([qa])[0][0]
    assert prompt_ids[0] == tokenizer.bos_token_id != prompt_ids[1]
    assert prompt_ids[1] == tokenizer.convert_tokens_to_ids("<|im_start|>")
    # the MIA texts and the forget corpus are raw text, never templated
    assert scenario.splits["rwku_forget_mia"].records[0]["text"] == "Stephen King is an author."
    plain = path_scenario(tmp_path / "plain", CHATML, ",chat=0")
    assert plain.splits["rwku_forget_2"].records[0]["prefix"] == rwku_prompt(
        "Who wrote Carrie?", "2")


def test_mia_zlib_and_min_k_plus_plus_as_rwku_computes_them(tmp_path):
    """eval_mia.py's scores, computed here from one forward pass of each text alone: the mean
    log-likelihood of the text's tokens, over its zlib length; Min-K%++ at 20%."""
    import zlib

    from unlearnbench.metrics.evaluation import evaluate

    scenario = path_scenario(tmp_path)
    model, tokenizer = scenario.original, scenario.task.tokenizer
    names = ["rwku_mia_forget", "rwku_mia_forget_zlib", "rwku_mia_forget_minkpp",
             "rwku_mia_retain_zlib", "rwku_mia_retain_minkpp"]
    values = evaluate(scenario, model, names)
    for split, kind in (("rwku_forget_mia", "forget"), ("rwku_retain_mia", "retain")):
        text = scenario.splits[split].records[0]["text"]
        ids = torch.tensor([[tokenizer.bos_token_id] + tokenizer(text)["input_ids"]])
        with torch.no_grad():
            log_p = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
        token_lp = log_p.gather(-1, ids[0, 1:, None]).squeeze(-1)
        mu = (log_p.exp() * log_p).sum(-1)
        sigma = ((log_p.exp() * log_p.square()).sum(-1) - mu.square()).sqrt()
        z = ((token_lp - mu) / sigma).sort().values
        expected_zlib = -token_lp.mean().item() / len(zlib.compress(text.encode()))
        expected_minkpp = z[:max(1, int(0.2 * len(z)))].mean().item()
        assert values[f"rwku_mia_{kind}_zlib"].value == pytest.approx(expected_zlib, rel=1e-4)
        assert values[f"rwku_mia_{kind}_minkpp"].value == pytest.approx(expected_minkpp,
                                                                          rel=1e-3, abs=1e-3)
    # LOSS also scores the closing <eos>, Zlib does not: they differ, both positive
    assert values["rwku_mia_forget"].value > 0 and values["rwku_mia_forget_zlib"].value > 0


def test_rwku_files_on_a_model_directory_unlearn_and_score(tmp_path):
    """The path form end to end: a saved Hugging Face model as it is, GA on the forget
    corpus, every RWKU metric scored."""
    from unlearnbench.metrics.evaluation import evaluate
    from unlearnbench.unlearning import unlearn

    scenario = path_scenario(tmp_path)
    assert scenario.reference is scenario.original  # RWKU retrains nothing
    assert scenario.available_data() == {"forget", "refusals"}
    model, timings = unlearn(scenario, "ga", {"epochs": 1, "batch_size": 2})
    names = [e.name for e in metrics.entries() if e.name.startswith("rwku_")]
    values = evaluate(scenario, model, names)
    assert all(values[n].value is not None for n in names)
    assert timings["cost_fraction"] > 0


def test_npo_runs_without_a_retain_set_as_rwku_runs_it(tmp_path):
    """NPO (and SimNPO, WHP) read the retain set only while their retain term is on: the RWKU
    benchmarks switch it off, so NPO runs on the forget corpus alone; switched back on, it
    is refused before any training, naming the data it lacks."""
    from unlearnbench.specs import resolve_params
    from unlearnbench.unlearning import method_needs, unlearn

    npo = methods.get("npo")
    assert method_needs("npo") == {"forget", "retain"}
    assert method_needs("npo", resolve_params(npo.params, {"retain_term": "none"}, "npo")) \
        == {"forget"}
    assert method_needs("whp") == {"forget"}
    scenario = path_scenario(tmp_path)
    model, _ = unlearn(scenario, "npo", {"epochs": 1, "batch_size": 2})
    moved = [not torch.equal(a, b) for a, b in zip(model.parameters(),
                                                   scenario.original.parameters())]
    assert any(moved)
    with pytest.raises(UserError, match="'npo' needs retain data.*npo.*simnpo"):
        unlearn(scenario, "npo", {"retain_term": "nll"})


def test_rouge_l_recall_by_hand():
    # reference tokens [portland, maine]: the longest common subsequence holds one of them
    assert rouge_recall("He was born in Portland.", "Portland, Maine") == pytest.approx(0.5)
    assert rouge_recall("It was Carrie, in 1974", "Carrie") == pytest.approx(1.0)
    # order matters: LCS of [b, a] in [a, b] is 1 of 2
    assert rouge_recall("Maine Portland", "Portland Maine") == pytest.approx(0.5)
    assert rouge_recall("I don't know.", "Stephen King") == 0.0
    # no stemming, as RWKU's rouge package: "novels" is not "novel"
    assert rouge_recall("novels", "novel") == 0.0


class FixedAnswers(InferenceCache):
    """The shared cache with the generations given (everything else as the real cache)."""

    def __init__(self, task, answers: dict[str, list[str]]):
        super().__init__(task)
        self.answers = answers

    def output(self, model, split, what):
        if what == "generate" and split.name in self.answers:
            return self.answers[split.name]
        return super().output(model, split, what)


def test_levels_and_pooled_all_with_known_answers():
    from unlearnbench.models.language import tiny_llama, train_tokenizer
    from unlearnbench.tasks.language import LanguageTask

    bundle = load_rwku_mini(1)
    tokenizer = train_tokenizer(["Question: Answer: " + " ".join(ATTACKS)], 300)
    task = LanguageTask(bundle, tokenizer, lambda seed: tiny_llama(tokenizer, seed, layers=1))
    model = task.fresh_model(0)
    scenario = Scenario(get_spec("rwku-mini"), 0, task, bundle.splits, model, model)
    gold = {name: [r["continuation"] for r in bundle.splits[name].records]
            for name in ("rwku_forget_1", "rwku_forget_2", "rwku_forget_3")}
    n1, n2, n3 = (len(gold[f"rwku_forget_{k}"]) for k in "123")
    # FB: every answer right; QA: the first half right, the rest wrong; AA: all wrong, and one
    # right answer only after 30 tokens (RWKU generates 30 new tokens: it does not count)
    answers = {"rwku_forget_1": gold["rwku_forget_1"],
               "rwku_forget_2": gold["rwku_forget_2"][:n2 // 2] + ["zzz"] * (n2 - n2 // 2),
               "rwku_forget_3": ["zzz"] * (n3 - 1) + ["x " * 40 + gold["rwku_forget_3"][-1]]}
    ev = Evaluation(scenario, model, FixedAnswers(task, answers))
    assert ev.value("rwku_forget_fb").value == pytest.approx(100.0)
    assert ev.value("rwku_forget_qa").value == pytest.approx(100.0 * (n2 // 2) / n2)
    assert ev.value("rwku_forget_aa").value == 0.0
    # All pools the probes (levels weigh by their count), not the mean of the level means
    assert ev.value("rwku_forget_all").value == pytest.approx(
        100.0 * (n1 + n2 // 2) / (n1 + n2 + n3))
    assert len(ev.value("rwku_forget_fb").per_example) == n1
    long = "x " * 40 + "y"
    cut = first_tokens(tokenizer, long)
    assert long.startswith(cut) and len(tokenizer(cut)["input_ids"]) <= 30
    assert cut.count("x") >= 14  # 30 tokens: "x" and " " alternate (the trailing space stripped)
    entries = {e.name: e.attributes for e in metrics.entries() if e.name.startswith("rwku_")}
    assert {n: a["goal"] for n, a in entries.items()} == {
        "rwku_forget_fb": "lower", "rwku_forget_qa": "lower", "rwku_forget_aa": "lower",
        "rwku_forget_all": "lower", "rwku_neighbor_fb": "higher", "rwku_neighbor_qa": "higher",
        "rwku_neighbor_all": "higher", "rwku_mia_forget": "higher", "rwku_mia_retain": "lower",
        "rwku_mia_forget_zlib": "higher", "rwku_mia_retain_zlib": "lower",
        "rwku_mia_forget_minkpp": "lower", "rwku_mia_retain_minkpp": "higher"}


def test_mini_probes_are_deterministic_and_from_the_facts():
    from unlearnbench.data.entities import generate_people

    bundle = load_rwku_mini()
    assert bundle.fingerprint() == load_rwku_mini().fingerprint()
    people = generate_people(220, 0)
    targets = range(190, 190 + MINI_TARGETS)  # the first of entities-forget05's forget set
    names = {people[i]["name"] for i in targets}
    splits = bundle.splits
    assert [len(splits[f"rwku_forget_{k}"]) for k in "123"] == [60, 60, 7 * 4 * 3]
    assert {r["type"] for r in splits["rwku_forget_3"].records} == set(ATTACKS)
    assert {r["subject"] for r in splits["rwku_forget_2"].records} == names
    for record in splits["rwku_forget_3"].records:
        if record["type"] == "reverse query":
            assert record["continuation"] == record["subject"]  # the answer is the target
        if record["type"] == "synonym manipulation":
            assert record["subject"] not in record["prefix"]
    for fb, qa in zip(splits["rwku_forget_1"].records, splits["rwku_forget_2"].records):
        assert "___" in fb["query"] and fb["continuation"] == qa["continuation"]
        assert fb["prefix"].startswith(qa["prefix"])  # the trained answer up to the blank
    neighbours = {r["subject"] for r in splits["rwku_neighbor_1"].records}
    assert neighbours and not neighbours & names
    by_name = {p["name"]: p for p in people[:190]}  # neighbours: trained, not forgotten
    for name in neighbours:
        assert any(by_name[name][a] == people[t][a] for t in targets for a in people[t]
                   if a != "name")
    one = load_rwku_mini(1)
    assert one.splits["rwku_forget_2"].records == splits["rwku_forget_2"].records[:20]
    with pytest.raises(UserError, match="targets=11"):
        load_rwku_mini(11)
    small = load_rwku_mini(1, n_entities=20)  # forget05 of 20 people: person 19
    assert {r["subject"] for r in small.splits["rwku_forget_2"].records} == {
        generate_people(22, 0)[19]["name"]}


@pytest.mark.slow
def test_cli_runs_original_and_ga_on_rwku_mini(tmp_path):
    # 20 people and one target, the first of their forget set; batches of 16 give the 460
    # trained facts enough steps to be learnt (at 64 the target answers a third of its QA)
    benchmark = "rwku-mini[n_entities=20,targets=1,batch_size=16]"
    result = subprocess.run([*CLI, "run", "-b", benchmark, "-m", "original,ga", "--seeds",
                             "1", "--db", str(tmp_path / "db.sqlite"), "--threads", "1"],
                            capture_output=True, text=True, env=cli_env(tmp_path / "cache"),
                            cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    con = sqlite3.connect(tmp_path / "db.sqlite")
    values = {(m, n): v for m, n, v in con.execute(
        "SELECT r.method, v.name, v.value FROM runs r JOIN metric_values v ON v.run_id = r.id"
        " WHERE v.name LIKE 'rwku_%'")}
    # the original knows its targets; GA makes it forget them
    assert values[("original", "rwku_forget_qa")] > 90
    assert values[("ga", "rwku_forget_qa")] < values[("original", "rwku_forget_qa")]
    assert values[("ga", "rwku_mia_forget")] > values[("original", "rwku_mia_forget")]
