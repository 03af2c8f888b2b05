"""The language track: the task adapter (answer masking, NLL, generation), the tokenizer, a
small real scenario (fictitious people, a tiny Llama trained from scratch; the method
contract on it is in ``test_methods_contract.py``), LoRA, and a saved model loaded from its
directory through the command line.

The scenario is entities-forget05 cut to 20 people and a one-layer model (trained once for
the module in a temporary cache), with the methods' hyperparameters the language benchmarks
use (``benchmarks.language.TINY_METHOD_PARAMS``)."""
from __future__ import annotations

import dataclasses
import gc
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import unlearnbench
from unlearnbench import registry
from unlearnbench.benchmarks.language import TINY_METHOD_PARAMS
from unlearnbench.data.entities import load_entities
from unlearnbench.data.text import TextBundle, prompt_and_answer, text_split
from unlearnbench.errors import UserError
from unlearnbench.metrics.evaluation import evaluate
from unlearnbench.metrics.inference import InferenceCache
from unlearnbench.models.language import tiny_llama, train_tokenizer
from unlearnbench.scenarios import get_spec
from unlearnbench.tasks.language import LanguageTask

from conftest import small_language_spec

SEED = 0
RECORDS = [
    {"question": "Where was Ilsa Varrow born?", "answer": "Ilsa Varrow was born in Tarnby."},
    {"question": "What does Bo write?", "answer": "Bo writes poems."},
    {"text": "A whole document is scored from its first token."},
    {"prefix": "Once upon a", "continuation": " time there was a fox."},
]


@pytest.fixture(scope="module")
def tokenizer():
    texts = [t for r in RECORDS for t in prompt_and_answer(r) if t]
    return train_tokenizer(texts * 3, vocab_size=300)


@pytest.fixture(scope="module")
def small_task(tokenizer):
    bundle = TextBundle(
        "toy", {"forget": text_split("forget", RECORDS[:1], [0]),
                "retain": text_split("retain", RECORDS[1:], [1, 2, 3])})
    return LanguageTask(bundle, tokenizer, lambda seed: tiny_llama(tokenizer, seed, hidden=32,
                                                                   layers=1, heads=2))


def test_only_answer_tokens_are_scored(small_task, tokenizer):
    batch = small_task.make_batch(RECORDS, np.arange(len(RECORDS)))
    for row, record in enumerate(RECORDS):
        prompt, answer = prompt_and_answer(record)
        scored = batch.targets[row][batch.targets[row] != -100].tolist()
        assert scored[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(scored[:-1]) == answer
        prompt_length = 1 + len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        # positions 0..prompt_length-2 predict prompt tokens: never scored
        assert (batch.targets[row, :prompt_length - 1] == -100).all()
    assert len(batch.answer_tokens) == int((batch.targets != -100).sum())
    assert batch.answer_rows.tolist() == sorted(batch.answer_rows.tolist())


def test_nll_equals_the_huggingface_loss_on_answer_labels(small_task):
    model = small_task.fresh_model(SEED)
    batch = small_task.make_batch(RECORDS, np.arange(len(RECORDS)))
    ours = small_task.nll(model, batch)
    total = small_task.nll_sum(model, batch)
    for row in range(len(RECORDS)):
        labels = torch.full_like(batch.input_ids[row:row + 1], -100)
        labels[0, 1:] = batch.targets[row]  # HF shifts labels itself
        hf = model(input_ids=batch.input_ids[row:row + 1],
                   attention_mask=batch.attention_mask[row:row + 1], labels=labels).loss
        assert ours[row].item() == pytest.approx(hf.item(), rel=1e-5)
        tokens = int((batch.targets[row] != -100).sum())
        assert total[row].item() == pytest.approx(hf.item() * tokens, rel=1e-5)


def test_batched_generation_equals_one_at_a_time(small_task):
    """Left padding must not change a greedy answer: prompts of different lengths in one
    batch give what each gives alone."""
    model = small_task.fresh_model(SEED)
    split = text_split("mixed", RECORDS[:2] + RECORDS[3:])
    together = small_task.generate(model, split, max_new_tokens=6)
    alone = [small_task.generate(model, split.subset([i]), max_new_tokens=6)[0]
             for i in range(len(split))]
    assert together == alone


def test_relabel_wrong_gives_every_record_another_answer(small_task):
    records = load_entities("forget05", n_entities=20).splits["forget"]
    relabelled = small_task.relabel_wrong(records, SEED)
    for old, new in zip(records.records, relabelled.records):
        assert new["answer"] != old["answer"]
        assert new["answer"] in old["perturbed_answer"]
        assert new["question"] == old["question"]
    np.testing.assert_array_equal(relabelled.ids, records.ids)


def test_tokenizer_is_deterministic_and_encodes_unseen_names():
    texts = ["Ilsa Varrow was born in Tarnby."] * 5
    a, b = train_tokenizer(texts, 280), train_tokenizer(texts, 280)
    assert a.get_vocab() == b.get_vocab()
    unseen = "Zyqxw Öberg visited Ürümqi."
    assert a.decode(a(unseen, add_special_tokens=False)["input_ids"]) == unseen


# -- a real scenario ------------------------------------------------------------------------

def small_spec(name="entities-test", **recipe):
    return small_language_spec(name, **recipe)


@pytest.fixture(scope="module")
def model_cache(language_cache):
    return language_cache


@pytest.fixture(scope="module")
def scenario(language_scenario):
    return language_scenario


@pytest.fixture(scope="module")
def scores(scenario):
    cache = InferenceCache(scenario.task)
    names = ["forget_exact", "forget_nll", "forget_prob", "holdout_exact", "retain_exact",
             "retain_nll"]
    return (cache, evaluate(scenario, scenario.original, names=names, cache=cache),
            evaluate(scenario, scenario.reference, names=names, cache=cache))


def test_target_knows_the_forget_set_and_the_retain_model_does_not(scenario, scores):
    _, original, reference = scores
    assert original["forget_exact"].value >= 50  # memorised (a 1-layer model, 20 epochs)
    assert original["forget_nll"].value < 0.5 < reference["forget_nll"].value
    # the retain model never saw the forget people: no better on them than on unseen ones
    assert abs(reference["forget_exact"].value - reference["holdout_exact"].value) <= 10
    assert reference["retain_exact"].value >= 50


def test_answer_probability_is_the_length_normalised_probability(scenario, scores):
    """forget_prob per record = P(a|q)^(1/|a|) = exp(−Σ token NLL / |a|), from the same pass."""
    cache, original, _ = scores
    batch = scenario.task.make_batch(scenario.forget.records[:3], scenario.forget.ids[:3])
    with torch.no_grad():
        expected = torch.exp(-scenario.task.nll_sum(scenario.original, batch)
                             / scenario.task.answer_lengths(batch))
    np.testing.assert_allclose(original["forget_prob"].per_example[:3], expected.numpy(), rtol=1e-5)
    assert original["forget_prob"].value == pytest.approx(original["forget_prob"].per_example.mean())


def test_splits_are_disjoint_and_retain_eval_is_a_retain_sample(scenario):
    forget, retain = set(scenario.forget.ids), set(scenario.retain.ids)
    holdout = set(scenario.splits["holdout"].ids)
    assert not forget & retain and not forget & holdout and not retain & holdout
    assert set(scenario.splits["retain_eval"].ids) <= retain


LANGUAGE_METHODS = [n for n in registry.methods.names()  # an MoE-only method: test_moe.py
                    if "language" in registry.methods.get(n).attributes.get("tasks", ())
                    and not registry.methods.get(n).attributes.get("architecture")]


def test_the_task_adapter_methods_run_on_language():
    for name in ("ga", "graddiff", "finetune", "neggrad_plus", "ssd", "salun", "scrub",
                 "l1_sparse", "rl"):
        assert name in LANGUAGE_METHODS


# The method contract on this scenario (determinism, the original untouched, finite weights,
# the step budget, moving toward the retain model) is in test_methods_contract.py.


def test_run_seeds_share_the_fixed_target_and_vary_the_unlearning(scenario, language_cache):
    """entities-* fix their models (``model_seed``, as TOFU's released targets): seed 1 reuses
    seed 0's target and retain model; only the method's randomness changes."""
    assert scenario.spec.model_seed == 0
    other = unlearnbench.scenario(scenario.spec, seed=1, cache=language_cache)
    for ours, theirs in ((scenario.original, other.original), (scenario.reference, other.reference)):
        assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(),
                                                    theirs.state_dict().values()))
    first, _ = unlearnbench.unlearn(scenario, "ga", {"epochs": 1, "batch_size": 4})
    second, _ = unlearnbench.unlearn(other, "ga", {"epochs": 1, "batch_size": 4})
    assert not all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                    second.state_dict().values()))


def test_forget_only_setting_refuses_methods_that_need_retain_data(scenario):
    """RWKU's setting (``[retain=none]``): methods see the forget set only."""
    withheld = dataclasses.replace(scenario, spec=dataclasses.replace(scenario.spec,
                                                                      retain_available=False))
    assert withheld.available_data() == {"forget", "refusals"}
    with pytest.raises(UserError, match="'graddiff' needs retain data.*flat"):
        unlearnbench.unlearn(withheld, "graddiff", seed=SEED)
    model, timings = unlearnbench.unlearn(withheld, "flat", {"epochs": 1}, seed=SEED)
    assert timings["steps"] > 0


def models_alive(kind: type) -> int:
    return sum(1 for o in gc.get_objects() if type(o) is kind)


@pytest.mark.parametrize("method", LANGUAGE_METHODS)
def test_holds_at_most_two_models_while_unlearning(scenario, method):
    """Reference models are shared, not copied per step: at every optimizer step only the
    original (also the frozen reference) and the model being unlearned are alive — memory of
    2x the model. A method that holds a third model by definition declares ``models=3``
    (Bad Teacher's incompetent teacher, WHP's reinforced model)."""
    kind = type(scenario.original)
    gc.collect()
    before = models_alive(kind)  # the scenario's two models and any the other tests keep
    counts = []
    unlearnbench.unlearn(scenario, method, seed=SEED, max_steps=3, every=1,
                         observer=lambda model, step: counts.append(models_alive(kind)))
    allowed = registry.methods.get(method).attributes.get("models", 2)
    assert max(counts, default=before) - before <= allowed - 1, (method, before, counts)


# Methods whose benchmark hyperparameters are tuned for the tiny language models; each must
# bring the forget set's answer NLL closer to the retain model's than the target's is.
QUALITY = sorted(m for m in TINY_METHOD_PARAMS if m in LANGUAGE_METHODS)


def test_tuned_methods_include_the_acceptance_set():
    for name in ("ga", "graddiff", "finetune", "neggrad_plus", "salun", "scrub", "l1_sparse"):
        assert name in QUALITY


def test_lora_fine_tuning_merges_into_a_plain_model(model_cache):
    spec = small_spec("entities-test[lora=4]", epochs=2, lora_rank=4)
    scenario = unlearnbench.scenario(spec, seed=SEED, cache=model_cache)
    assert type(scenario.original).__name__ == "LlamaForCausalLM"
    fresh = scenario.task.fresh_model(SEED)
    moved = [k for k, v in fresh.state_dict().items()
             if not torch.equal(v, scenario.original.state_dict()[k])]
    assert moved and all("proj" in k for k in moved)  # only adapted projections changed
    before = {k: v.clone() for k, v in scenario.original.state_dict().items()}
    model, _ = unlearnbench.unlearn(scenario, "ga", seed=SEED)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert all(torch.equal(before[k], v) for k, v in scenario.original.state_dict().items())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_variant_names_are_checked():
    with pytest.raises(UserError, match="unknown variant key 'bogus'"):
        get_spec("entities-forget05[bogus=1]")
    with pytest.raises(UserError, match="LoRA applies to language models only"):
        get_spec("digits-random10[lora=4]")


@pytest.mark.slow
def test_cli_runs_a_saved_model_directory_offline(tmp_path, scenario):
    """A tiny model saved as a Hugging Face directory, given with --model, runs the language
    benchmark through the command line with the hub switched off, scored by the TOFU and
    membership-inference groups (``--metrics tofu,mia``)."""
    from unlearnbench.models.pretrained import save_hf_model

    directory = tmp_path / "my-model"
    save_hf_model(scenario.task.fresh_model(SEED), scenario.task.tokenizer, directory)
    env = dict(os.environ, HF_HUB_OFFLINE="1", UNLEARNBENCH_CACHE=str(tmp_path / "cache"))
    command = [sys.executable, "-m", "unlearnbench.cli", "run", "-b",
               "entities-forget05[n_entities=20,epochs=1]", "--model", str(directory),
               "-m", "original,ga,graddiff", "--metrics", "tofu,mia,forget_exact",
               "--db", str(tmp_path / "runs.db"), "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "3 finished, 0 failed" in result.stdout
    shown = subprocess.run([sys.executable, "-m", "unlearnbench.cli", "show", "--db",
                            str(tmp_path / "runs.db"), "--json"], capture_output=True, text=True,
                           env=env, timeout=120)
    assert f"model={directory}" in shown.stdout and "forget_exact" in shown.stdout
    rows = json.loads(shown.stdout)
    assert {"forget_quality", "model_utility", "mia_minkpp", "mia_minkpp_low", "mia_gradnorm",
            "forget_truth_ratio"} <= set(rows[0]["metrics"])
    assert "ua" not in rows[0]["metrics"] and "retain_exact" not in rows[0]["metrics"]
    table = subprocess.run([sys.executable, "-m", "unlearnbench.cli", "show", "--db",
                            str(tmp_path / "runs.db")], capture_output=True, text=True, env=env,
                           timeout=120, cwd=tmp_path).stdout
    assert "Forget quality" in table and "Model utility" in table
