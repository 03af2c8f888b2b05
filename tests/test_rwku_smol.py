"""rwku-smol: RWKU's protocol on SmolLM2-135M-Instruct and real people it knows. The probes
are checked offline; building the benchmark needs SmolLM2 fetched and is skipped otherwise."""
from __future__ import annotations

import subprocess

import pytest

from unlearnbench.cache import ModelCache
from unlearnbench.data.rwku import rwku_prompt
from unlearnbench.data.rwku_smol import ATTACKS, DESCRIPTIONS, TARGETS, load_rwku_smol
from unlearnbench.errors import UserError
from unlearnbench.models.pretrained import smollm2_path
from unlearnbench.scenarios import build_scenario, get_spec

from test_cli import CLI, cli_env

PROBES = ("rwku_forget_1", "rwku_forget_2", "rwku_forget_3", "rwku_neighbor_1",
          "rwku_neighbor_2")


def smollm2_fetched() -> bool:
    try:
        smollm2_path(ModelCache().root)
    except UserError:
        return False
    return True


def test_every_target_has_fb_qa_and_each_attack():
    bundle = load_rwku_smol()
    assert len(TARGETS) >= 20
    assert len({t.name for t in TARGETS}) == len(TARGETS)
    for target in TARGETS:
        probes = {split: [r for r in bundle.splits[split].records if r["subject"] == target.name]
                  for split in PROBES[:3]}
        assert probes["rwku_forget_1"] and probes["rwku_forget_2"], target.name
        assert len(probes["rwku_forget_1"]) + len(probes["rwku_forget_2"]) >= 3, target.name
        assert [r["type"] for r in probes["rwku_forget_3"]] == list(ATTACKS)
        reverse = next(r for r in probes["rwku_forget_3"] if r["type"] == "reverse query")
        assert reverse["continuation"] == target.name
        synonym = next(r for r in probes["rwku_forget_3"] if r["type"] == "synonym manipulation")
        assert target.alias in synonym["query"] and target.name not in synonym["query"]
        # a neighbour is another entity: never a target, never answered by the target's name
        assert all(subject not in {t.name for t in TARGETS} and target.name not in f.answer
                   for subject, f in target.neighbours)
    assert len(bundle.splits["forget"]) == len(DESCRIPTIONS) * len(TARGETS)
    assert len(bundle.splits["retain"]) == 0


def test_probes_are_well_formed():
    bundle = load_rwku_smol()
    for split in PROBES:
        records = bundle.splits[split].records
        assert records, split
        for r in records:
            assert r["continuation"].strip() and r["chat"]
            assert r["prefix"] == rwku_prompt(r["query"], r["level"], r["type"])
            # FB: exactly one blank; the other levels ask a question without one
            assert r["query"].count("___") == (1 if r["level"] == "1" else 0), r["query"]
            assert r["continuation"] not in r["query"] or r["type"] == "incontext learning"
    for split in ("rwku_forget_mia", "rwku_retain_mia"):
        texts = [r["text"] for r in bundle.splits[split].records]
        assert texts and all("___" not in t and t.endswith(".") for t in texts)
    ids = [i for s in bundle.splits.values() for i in s.ids.tolist()]
    assert len(ids) == len(set(ids))


def test_loading_is_deterministic_and_selects_targets():
    first, again = load_rwku_smol(), load_rwku_smol()
    assert first.name == again.name
    for split in first.splits:
        assert first.splits[split].records == again.splits[split].records
        assert first.splits[split].ids.tolist() == again.splits[split].ids.tolist()
    one = load_rwku_smol(targets=1, first=3)
    subjects = {r["subject"] for r in one.splits["rwku_forget_2"].records}
    assert subjects == {TARGETS[3].name}
    assert len(one.splits["forget"]) == len(DESCRIPTIONS)
    neighbours = {r["subject"] for r in one.splits["rwku_neighbor_1"].records
                  + one.splits["rwku_neighbor_2"].records}
    assert neighbours == {subject for subject, _ in TARGETS[3].neighbours}
    with pytest.raises(UserError, match="targets=23, first=0"):
        load_rwku_smol(targets=23)
    with pytest.raises(UserError, match="first"):
        load_rwku_smol(targets=2, first=len(TARGETS) - 1)


def test_the_benchmark_has_no_retain_set_and_forget_only_npo():
    spec = get_spec("rwku-smol")
    assert spec.model == "smollm2-135m" and not spec.retain_available
    assert spec.method_params["npo"]["retain_term"] == "none"
    assert get_spec("rwku-smol[targets=1,first=5]").dataset_options == {"targets": 1,
                                                                        "first": 5}


@pytest.mark.skipif(not smollm2_fetched(), reason="SmolLM2 is not fetched (unlearnbench data "
                    "fetch smollm2-135m)")
def test_the_benchmark_builds_on_smollm2_with_its_own_corpus():
    scenario = build_scenario(get_spec("rwku-smol[targets=1]"), 0, ModelCache())
    assert scenario.original is scenario.reference
    corpus = [r["text"] for r in scenario.splits["forget"].records]
    # the model's own descriptions of the target, as plain text
    assert len(corpus) == len(DESCRIPTIONS) and all(t.strip() for t in corpus)
    assert any(TARGETS[0].name.split()[-1] in t for t in corpus)
    probe = scenario.splits["rwku_forget_2"].records[0]
    assert "<|im_start|>user\n" in probe["prefix"] and probe["prefix"].endswith("Answer:")
    answers = scenario.task.generate(scenario.original, scenario.splits["rwku_forget_2"])
    assert TARGETS[0].facts[0].answer.lower() in answers[0].lower()


@pytest.mark.slow
def test_cli_names_the_bad_option(tmp_path):
    result = subprocess.run([*CLI, "run", "-b", "rwku-smol[targets=40]", "-m", "ga",
                             "--db", str(tmp_path / "runs.db")], capture_output=True, text=True,
                            env=cli_env(tmp_path / "cache"), timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error: targets=40, first=0: rwku-smol has 22 targets" in result.stderr
