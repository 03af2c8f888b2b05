"""The language evaluation suite's shared pass: per-token statistics of a text set from one
forward pass, checked against explicit computations on the small real scenario."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F


@pytest.fixture(scope="module")
def scenario(language_scenario):
    return language_scenario


@pytest.fixture(scope="module")
def stats(scenario):
    return scenario.task.token_statistics(scenario.original, scenario.forget, batch_size=7)


def test_mean_nll_is_the_answer_nll(scenario, stats):
    expected = scenario.task.answer_nll(scenario.original, scenario.forget).numpy()
    np.testing.assert_allclose(stats.mean_nll(), expected, rtol=1e-5, atol=1e-6)
    assert len(stats.offsets) == len(scenario.forget) + 1


def test_token_statistics_match_an_explicit_computation(scenario, stats):
    """Record 3 alone: log p of each answer token, μ = Σ p log p, σ² = Σ p (log p)² − μ²,
    argmax hits — from the model's full logits, position by position."""
    task, model = scenario.task, scenario.original
    batch = task.make_batch(scenario.forget.records[3:4], scenario.forget.ids[3:4])
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[0]
    positions = (batch.targets[0] != -100).nonzero().squeeze(-1).tolist()
    start, end = stats.offsets[3], stats.offsets[4]
    assert end - start == len(positions)
    for k, position in enumerate(positions):
        log_p = F.log_softmax(logits[position].double(), -1)
        token = int(batch.targets[0, position])
        mu = float((log_p.exp() * log_p).sum())
        var = float((log_p.exp() * log_p ** 2).sum()) - mu ** 2
        assert stats.log_probs[start + k] == pytest.approx(float(log_p[token]), abs=1e-4)
        assert stats.mu[start + k] == pytest.approx(mu, abs=1e-4)
        assert stats.sigma[start + k] == pytest.approx(var ** 0.5, abs=1e-3)
        assert stats.hit[start + k] == (int(log_p.argmax()) == token)
    assert stats.hit.mean() > 0.5  # the target has memorised its forget answers


def test_records_read_shortest_first_keep_their_place(scenario, stats):
    """The pass reads records by length (less padding) and puts them back in split order:
    every record's log-probs are those of the record read alone, its greedy answer too."""
    task, model, forget = scenario.task, scenario.original, scenario.forget
    order = task.length_order(forget)
    assert not np.array_equal(order, np.arange(len(order)))  # the order does change
    for i in range(len(forget)):
        batch = task.make_batch(forget.records[i:i + 1], forget.ids[i:i + 1])
        with torch.no_grad():
            logits = model(input_ids=batch.input_ids,
                           attention_mask=batch.attention_mask).logits[0, :-1]
        scored = batch.targets[0] != -100
        alone = F.log_softmax(logits[scored].double(), -1).gather(
            -1, batch.targets[0, scored][:, None]).squeeze(-1).numpy()
        np.testing.assert_allclose(stats.log_probs[stats.offsets[i]:stats.offsets[i + 1]],
                                   alone, atol=1e-4)
    answers = task.generate(model, forget, batch_size=64)
    for i in (int(order[0]), int(order[-1])):
        assert answers[i] == task.generate(model, forget.subset(np.array([i])), batch_size=1)[0]


def test_output_layer_runs_from_the_first_scored_position(scenario):
    """A Hugging Face model computes logits only from the batch's first scored column on;
    they are the full forward pass's at the scored positions."""
    from unlearnbench.tasks.language import takes_logits_to_keep

    task, model, forget = scenario.task, scenario.original, scenario.forget
    batch = task.make_batch(forget.records[:8], forget.ids[:8])
    assert takes_logits_to_keep(type(model)) and batch.first_scored > 0
    with torch.no_grad():
        full = model(input_ids=batch.input_ids,
                     attention_mask=batch.attention_mask).logits[:, :-1][batch.targets != -100]
        kept = task.logits(model, batch)
    assert kept.shape == full.shape
    torch.testing.assert_close(kept, full, atol=1e-5, rtol=1e-5)


def test_answers_sharing_a_prompt_read_it_once(scenario, monkeypatch):
    """The perturbed answers (K per question) run each question once with its key/value cache
    kept; their statistics are those of the plain pass (one record at a time) up to float32
    rounding, record by record, in split order."""
    from unlearnbench.data.text import answer_variants
    from unlearnbench.tasks import language, shared_prompts

    task, model = scenario.task, scenario.original
    perturbed = answer_variants(scenario.forget, "perturbed")
    prompts, _ = task.encode(perturbed.records)
    assert language.worth_sharing(model, prompts)
    prompt_rows = []
    real = shared_prompts.answer_logits

    def counted(model, prompts, answers, pad_id, device):
        prompt_rows.append(len(prompts))
        return real(model, prompts, answers, pad_id, device)

    monkeypatch.setattr(language, "answer_logits", counted)
    shared = task.token_statistics(model, perturbed, batch_size=12)
    assert sum(prompt_rows) == len(scenario.forget) < len(perturbed)  # one row per question
    monkeypatch.setattr(language, "worth_sharing", lambda model, prompts: False)
    plain = task.token_statistics(model, perturbed, batch_size=1)
    np.testing.assert_array_equal(shared.offsets, plain.offsets)
    np.testing.assert_array_equal(shared.closing, plain.closing)
    for field in ("log_probs", "mu", "sigma"):
        np.testing.assert_allclose(getattr(shared, field), getattr(plain, field), atol=1e-4)
    assert np.mean(shared.hit == plain.hit) > 0.99  # an argmax may flip on a near tie


def test_which_text_sets_share_their_prompts(scenario):
    from unlearnbench.tasks.shared_prompts import chunks, prompt_groups, worth_sharing

    assert prompt_groups([[1, 2], [1, 3], [1, 2], [1, 3], [4]]) == [[0, 2], [1, 3], [4]]
    assert worth_sharing(scenario.original, [[1, 2]] * 4)
    assert not worth_sharing(scenario.original, [[1, 2], [1, 3]])  # one answer per prompt
    assert not worth_sharing(scenario.original, [[1]] * 4)  # documents: the start token only
    assert not worth_sharing(torch.nn.Linear(2, 2), [[1, 2]] * 4)  # no key/value cache
    # at most ``batch_size`` answers a chunk; a larger group is cut
    assert list(chunks([[0, 1, 2], [3, 4], [5, 6, 7, 8, 9]], 4)) == \
        [[[0, 1, 2]], [[3, 4]], [[5, 6, 7, 8]], [[9]]]
    assert list(chunks([[0, 1], [2, 3]], 4)) == [[[0, 1], [2, 3]]]


# -- the registered suite -------------------------------------------------------------------
from unlearnbench.metrics.evaluation import evaluate, metric_names_for  # noqa: E402
from unlearnbench.registry import metrics  # noqa: E402
from unlearnbench.metrics.inference import InferenceCache  # noqa: E402
from unlearnbench.metrics.text_scores import truth_ratio  # noqa: E402
from unlearnbench.sweep.jobs import expand_metric_names  # noqa: E402


@pytest.fixture(scope="module")
def full(scenario):
    """Every language metric but GradNorm (a backward pass per record by definition), for the
    target, with the retain model evaluated through the same cache. (The relearning attack
    scores a fine-tuned copy, another model, outside the shared cache.)"""
    cache = InferenceCache(scenario.task)
    names = [n for n in metric_names_for(scenario) if n != "mia_gradnorm"
             and not metrics.get(n).attributes.get("on_request")]
    return cache, evaluate(scenario, scenario.original, names=names, cache=cache)


def test_one_forward_pass_per_model_and_text_set(scenario, full):
    """Probability, NLL, truth ratio, normalised probability, LOSS, zlib, Min-K, Min-K++,
    reference, PrivLeak, EM and ES share one pass per (model, text set): here 2 models
    (target, retain model) × the text sets they read. Generation is one more pass per
    (model, question split), shared by exact answers, ROUGE and fluency."""
    cache, results = full
    assert all(r.value is None or np.isfinite(r.value) for r in results.values())
    forward = {key for key in cache.keys() if key[2] == "token_statistics"}
    assert cache.counts["token_statistics"] == len(forward)
    text_sets = {name for _, name, _ in forward}
    qa = ["forget", "retain_eval", "holdout", "world_facts", "real_entities"]
    expected = set(qa) | {f"{s}~perturbed" for s in qa if s != "holdout"} | \
        {"forget~paraphrased", "retain_eval~paraphrased", "forget~incontext"}
    assert text_sets == expected
    # the target reads all of them; the retain model those forget quality, the reference
    # attack and PrivLeak need (forget, its paraphrased and perturbed answers, holdout)
    assert len(forward) == len(expected) + 4
    generated = {key for key in cache.keys() if key[2] == "generate"}
    assert cache.counts["generate"] == len(generated) == len(qa)


def test_truth_ratio_and_forget_quality_of_the_target(scenario, full):
    cache, results = full
    stats = lambda split: cache.output(scenario.original, split, "token_statistics")  # noqa: E731
    from unlearnbench.data.text import answer_variants
    forget = scenario.forget
    para = stats(answer_variants(forget, "paraphrased")).mean_nll()
    pert = stats(answer_variants(forget, "perturbed")).mean_nll().reshape(len(forget), -1)
    ratios = truth_ratio(para, pert)
    np.testing.assert_allclose(results["forget_truth_ratio"].per_example,
                               np.minimum(ratios, 1 / ratios))
    # forget quality: the KS p-value against the retain model's ratios from the same cache
    from scipy.stats import ks_2samp
    ref = lambda split: cache.output(scenario.reference, split, "token_statistics")  # noqa: E731
    theirs = truth_ratio(ref(answer_variants(forget, "paraphrased")).mean_nll(),
                         ref(answer_variants(forget, "perturbed")).mean_nll().reshape(len(forget), -1))
    assert results["forget_quality"].value == pytest.approx(ks_2samp(ratios, theirs).pvalue)
    assert results["forget_quality"].value < 0.5  # 20 people: a weak test, yet not the same
    assert 0 < results["model_utility"].value <= 1


def test_privleak_is_zero_for_the_retain_model(scenario):
    result = evaluate(scenario, scenario.reference, names=["privleak", "mia_mink"])
    assert result["privleak"].value == pytest.approx(0.0, abs=1e-12)
    assert 0.0 <= result["mia_mink"].value <= 1.0


def test_target_is_recognised_as_trained_on_its_forget_set(full):
    _, results = full
    for attack in ("mia_loss", "mia_zlib", "mia_mink", "mia_minkpp", "mia_reference"):
        low, high = results[attack].interval
        assert low <= results[attack].value <= high
        assert results[attack].value > 0.8, attack  # forget answers memorised, holdout not
    assert results["privleak"].value < -50  # MUSE's sign: still leaking
    assert results["forget_em"].value > 0.5 and results["forget_es"].value > 0.3


def test_metric_groups_expand():
    tofu = expand_metric_names(["tofu"])
    assert {"forget_quality", "model_utility", "forget_truth_ratio", "retain_prob"} <= set(tofu)
    assert expand_metric_names(["mia", "mia_loss"]) == expand_metric_names(["mia"])


# -- robustness probes and MUSE ---------------------------------------------------------------
def test_relearning_brings_forget_answers_back_for_the_retain_model(scenario):
    """The attack trains on forget half A and probes half B: for the retain model (never saw
    either) probability on B rises above what it had before the attack."""
    result = evaluate(scenario, scenario.reference, names=["relearn_forget_prob"])["relearn_forget_prob"]
    half = len(scenario.forget) // 2
    before = np.exp(-scenario.task.answer_nll(scenario.reference, scenario.forget.subset(
        np.arange(half, len(scenario.forget)))).numpy()).mean()
    assert result.value > before
    np.testing.assert_array_equal(result.ids, scenario.forget.ids[half:])


def test_in_context_reintroduction_scores_the_answer_behind_its_fact(scenario):
    """The probe's probability is that of the answer after "question answer\n" and the
    question prompt. (A one-layer model trained on QA alone cannot copy from its context:
    here the probe is a definition check; it discriminates on pretrained models.)"""
    from unlearnbench.data.text import TextSplit

    result = evaluate(scenario, scenario.reference, names=["incontext_forget_prob"])
    record = scenario.forget.records[0]
    prompted = {"prefix": f"{record['question']} {record['answer']}\nQuestion: "
                          f"{record['question']}\nAnswer:", "continuation": " " + record["answer"]}
    nll = scenario.task.answer_nll(scenario.reference, TextSplit("one", (prompted,),
                                                                 scenario.forget.ids[:1]))
    assert result["incontext_forget_prob"].per_example[0] == pytest.approx(
        float(np.exp(-float(nll[0]))), rel=1e-4)


def test_knowmem_prompt_holds_the_shots_and_leaves_them_out_of_the_retain_score():
    from types import SimpleNamespace

    from unlearnbench.data.news import load_news
    from unlearnbench.metrics.muse import ICL_SHOTS, in_context

    bundle = load_news(n_articles=24)
    ev = SimpleNamespace(scenario=SimpleNamespace(splits=bundle.splits))
    retain = in_context(ev, "knowmem_retain")
    forget = in_context(ev, "knowmem_forget")
    shots = bundle.splits["knowmem_retain"].records[:ICL_SHOTS]
    assert len(retain) == len(bundle.splits["knowmem_retain"]) - ICL_SHOTS
    assert len(forget) == len(bundle.splits["knowmem_forget"])
    first = forget.records[0]["prefix"]
    assert first.count("Question:") == ICL_SHOTS + 1 and first.endswith("Answer:")
    assert all(f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" in first for s in shots)
    assert first.endswith(f"Question: {bundle.splits['knowmem_forget'].records[0]['question']}\nAnswer:")


def test_release_drops_a_scored_model_but_not_shared_outputs(scenario):
    import copy

    cache = InferenceCache(scenario.task)
    cache.output(scenario.original, scenario.forget, "token_statistics")
    same = copy.deepcopy(scenario.original)
    cache.output(same, scenario.forget, "token_statistics")
    assert cache.passes == 1  # same weights: one pass
    cache.release(same)
    assert len(cache.keys()) == 1  # the original still holds those weights
    other = copy.deepcopy(scenario.original)
    with torch.no_grad():
        next(other.parameters()).add_(0.01)
    cache.output(other, scenario.forget, "token_statistics")
    assert cache.passes == 2 and len(cache.keys()) == 2
    cache.release(other)
    assert cache.keys() == [(cache.fingerprint(scenario.original), "forget", "token_statistics")]


def test_outputs_kept_on_disk_are_read_back_without_a_pass(scenario, tmp_path):
    """The retain model's outputs, saved by one cache (one process), serve the next."""
    first = InferenceCache(scenario.task)
    first.keep_on_disk(scenario.reference, tmp_path)
    stats = first.output(scenario.reference, scenario.forget, "token_statistics")
    answers = first.output(scenario.reference, scenario.forget, "generate")
    assert first.passes == 2 and len(list(tmp_path.iterdir())) == 2
    second = InferenceCache(scenario.task)
    second.keep_on_disk(scenario.reference, tmp_path)
    again = second.output(scenario.reference, scenario.forget, "token_statistics")
    assert second.output(scenario.reference, scenario.forget, "generate") == answers
    assert second.passes == 0
    np.testing.assert_array_equal(again.log_probs, stats.log_probs)
    np.testing.assert_array_equal(again.offsets, stats.offsets)
    # in another process, another text set under the same name is not mistaken for it
    fresh = InferenceCache(scenario.task)
    fresh.keep_on_disk(scenario.reference, tmp_path)
    other = scenario.forget.subset(np.arange(3), "forget")
    assert len(fresh.output(scenario.reference, other, "token_statistics").offsets) == 4
    assert fresh.passes == 1
    # a damaged file is recomputed
    for path in tmp_path.glob("*.npz"):
        path.write_bytes(b"not numpy")
    third = InferenceCache(scenario.task)
    third.keep_on_disk(scenario.reference, tmp_path)
    third.output(scenario.reference, scenario.forget, "token_statistics")
    assert third.passes == 1
