"""ULD (unlearning from logit difference) on the small real scenario of ``test_language.py``
(20 fictitious people, a one-layer tiny Llama trained once in a temporary cache): the pair's
logits are the target's minus w times the assistant's on the plausible tokens, its batched
greedy decoding equals one-at-a-time decoding and a plain loop without a key/value cache,
every language metric scores it, it forgets while keeping the retain set, and the original
is left as it was. (The method contract runs over ``uld`` in ``test_language.py``.)"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import unlearnbench
from unlearnbench import registry
from unlearnbench.data.text import concat
from unlearnbench.errors import UserError
from unlearnbench.methods.uld import (
    LogitDifferenceModel,
    assistant_layer_count,
    logit_difference,
    plausible_tokens,
    truncated_copy,
    uniform_kl,
)
from unlearnbench.metrics.evaluation import evaluate, metric_names_for
from unlearnbench.models.inspect import model_fingerprint
from unlearnbench.models.language import tiny_llama

SEED = 0
# Enough steps on the small scenario (one forget batch per epoch) for the assistant to become
# uniform on the retain set; the published w 0.8 and lr a little above the published 1e-3.
TRAINED = {"epochs": 50, "lr": 3e-3, "weight": 0.8}


@pytest.fixture(scope="module")
def scenario(language_scenario):
    return language_scenario


@pytest.fixture(scope="module")
def original_state(scenario):
    return {k: v.clone() for k, v in scenario.original.state_dict().items()}


@pytest.fixture(scope="module")
def pair(scenario, original_state):
    model, timings = unlearnbench.unlearn(scenario, "uld", params=TRAINED, seed=SEED)
    return model, timings


@pytest.fixture(scope="module")
def batch(scenario):
    """Forget and retain records together, answers of different lengths (right padding)."""
    records = scenario.forget.records[:3] + scenario.retain.records[:3]
    ids = np.concatenate([scenario.forget.ids[:3], scenario.retain.ids[:3]])
    return scenario.task.make_batch(records, ids)


def answer_probability(scenario, model, split) -> float:
    """Mean over the split of exp(−mean answer NLL): the per-token answer probability."""
    return float(torch.exp(-scenario.task.answer_nll(model, split)).mean())


def test_registered_for_language_with_forget_and_retain():
    entry = registry.methods.get("uld")
    assert entry.attributes["tasks"] == ("language",)
    assert entry.attributes["needs"] == ("forget", "retain")


# -- the combination, by hand ---------------------------------------------------------------

def test_plausible_tokens_relative_to_the_top_token():
    # V = 5, relative_top 0.25: int(0.25·5) = 1 token always kept (the top one); otherwise a
    # token needs p >= 0.25·p_max. Probabilities 0.4, 0.2, 0.1, 0.2, 0.1 (p_max 0.4 -> 0.1).
    probs = torch.tensor([[0.4, 0.2, 0.1, 0.2, 0.1]])
    mask = plausible_tokens(probs.log(), 0.25)
    assert mask.tolist() == [[True, True, True, True, True]]  # 0.1 >= 0.25·0.4 exactly
    probs = torch.tensor([[0.5, 0.3, 0.09, 0.07, 0.04]])
    assert plausible_tokens(probs.log() + 3.0, 0.25).tolist() == [[True, True, False, False,
                                                                   False]]
    # relative_top 0: no filter
    assert plausible_tokens(probs.log(), 0.0).all()


def test_plausible_tokens_keep_the_reference_minimum_count():
    # V = 40, relative_top 0.1: the 4 most probable tokens are plausible even where they are
    # below 0.1·p_max (the reference sets min_tokens_to_keep = int(relative_top·V)).
    probs = torch.full((40,), 0.001)
    probs[:4] = torch.tensor([0.9, 0.05, 0.02, 0.011])
    probs = probs / probs.sum()
    mask = plausible_tokens(probs.log().unsqueeze(0), 0.1)[0]
    assert mask[:4].all() and not mask[4:].any()


def test_logit_difference_by_hand():
    target = torch.tensor([[2.0, 1.0, -3.0]])   # p ≈ 0.727, 0.268, 0.005: token 2 implausible
    assistant = torch.tensor([[1.0, -2.0, 5.0]])  # at relative_top 0.1
    out = logit_difference(target, assistant, 0.8, 0.1)
    torch.testing.assert_close(out, torch.tensor([[2.0 - 0.8, 1.0 + 1.6, -3.0]]))
    torch.testing.assert_close(logit_difference(target, assistant, 0.8, 0.0),
                               torch.tensor([[1.2, 2.6, -7.0]]))


def test_uniform_kl_is_zero_for_uniform_and_matches_the_definition():
    assert torch.allclose(uniform_kl(torch.full((2, 7), 3.0)), torch.zeros(2), atol=1e-6)
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.0]])
    p = logits.softmax(-1)
    expected = (0.25 * (math.log(0.25) - p.log())).sum()
    torch.testing.assert_close(uniform_kl(logits)[0], expected)
    torch.testing.assert_close(  # the reference's form: kl_div(log p, uniform)
        uniform_kl(logits).mean(),
        F.kl_div(logits.log_softmax(-1), torch.full_like(p, 0.25), reduction="batchmean"))


# -- the assistant ------------------------------------------------------------------------

def test_assistant_layer_count():
    assert assistant_layer_count(32, None) == 8  # the reference: 8 of Llama-2-7B's 32
    assert assistant_layer_count(30, None) == 8
    assert assistant_layer_count(2, None) == 1
    assert assistant_layer_count(1, None) == 1
    assert assistant_layer_count(4, 3) == 3
    for bad in (0, 5):
        with pytest.raises(UserError, match="layers must be between 1 and"):
            assistant_layer_count(4, bad)


def test_assistant_is_the_targets_first_blocks(scenario):
    target = tiny_llama(scenario.task.tokenizer, SEED, hidden=32, layers=4, heads=2)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    assistant = truncated_copy(target, 2)
    assert len(assistant.model.layers) == 2 and assistant.config.num_hidden_layers == 2
    assert len(target.model.layers) == 4 and target.config.num_hidden_layers == 4
    state = assistant.state_dict()
    for key, value in state.items():  # every assistant weight is the target's, copied
        assert torch.equal(value, before[key]) and value.data_ptr() != \
            target.state_dict()[key].data_ptr()
    assert not any(k.startswith(("model.layers.2.", "model.layers.3.")) for k in state)
    ids = torch.tensor([[1, 5, 7, 9]])
    assert assistant(input_ids=ids).logits.shape == (1, 4, len(scenario.task.tokenizer))


# -- the pair on the real scenario --------------------------------------------------------

def test_pair_logits_are_target_minus_w_assistant_on_plausible_tokens(scenario, pair, batch):
    model, _ = pair
    assert isinstance(model, LogitDifferenceModel) and model.target is scenario.original
    with torch.no_grad():
        target = scenario.original(input_ids=batch.input_ids,
                                   attention_mask=batch.attention_mask).logits
        assistant = model.assistant(input_ids=batch.input_ids,
                                    attention_mask=batch.attention_mask).logits
        ours = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    probs = target.softmax(-1)
    plausible = probs >= 0.01 * probs.max(-1, keepdim=True).values
    kth = probs.topk(int(0.01 * probs.shape[-1]), dim=-1).values[..., -1:]
    plausible |= probs >= kth
    assert plausible.any() and (~plausible).any()  # the filter matters on this batch
    torch.testing.assert_close(ours[plausible], (target - 0.8 * assistant)[plausible])
    torch.testing.assert_close(ours[~plausible], target[~plausible])
    # and the task adapter reads the pair like any model
    torch.testing.assert_close(scenario.task.logits(model, batch),
                               ours[:, :-1][batch.targets != -100])


def test_hidden_states_are_the_targets(scenario, pair, batch):
    model, _ = pair
    ours = scenario.task.hidden_states(model, batch, -1)
    torch.testing.assert_close(ours, scenario.task.hidden_states(scenario.original, batch, -1))


def greedy_without_cache(model, prompt: list[int], steps: int, eos: int) -> list[int]:
    """The pair's greedy continuation of one prompt, re-running it on the growing sequence."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            token = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
            ids.append(token)
            if token == eos:
                break
    return ids[len(prompt):]


def test_batched_generation_equals_one_at_a_time_and_an_uncached_loop(scenario, pair):
    model, _ = pair
    task = scenario.task
    split = concat("mixed", [scenario.forget.subset(range(3)),
                             scenario.splits["retain_eval"].subset(range(4))])
    prompts, _ = task.encode(split.records)
    assert len({len(p) for p in prompts}) > 1  # left padding is exercised
    batched = task.generate(model, split, batch_size=len(split), max_new_tokens=12)
    single = task.generate(model, split, batch_size=1, max_new_tokens=12)
    assert batched == single
    for prompt, text in zip(prompts[:3], batched[:3]):
        tokens = greedy_without_cache(model, prompt, 12, task.eos_id)
        if task.eos_id in tokens:
            tokens = tokens[:tokens.index(task.eos_id)]
        assert task.tokenizer.decode(tokens, skip_special_tokens=True).strip() == text
    # greedy decoding of the pair differs from the target's on the forget questions
    assert batched[:3] != task.generate(scenario.original, split, max_new_tokens=12)[:3]


def test_sampling_is_refused(scenario, pair):
    model, _ = pair
    with pytest.raises(UserError, match="greedily"):
        model.generate(input_ids=torch.tensor([[1, 2]]), do_sample=True)


def test_every_language_metric_scores_the_pair(scenario, pair):
    model, timings = pair
    names = metric_names_for(scenario)
    assert len(names) >= 10
    ours = evaluate(scenario, model, names=names, timings=timings)
    theirs = evaluate(scenario, scenario.original, names=names, timings=timings)
    assert set(ours) == set(names)
    # the parametric-trace metrics compare MLP value vectors, which the pair has none of
    weights = {n for n in names
               if registry.metrics.get(n).attributes.get("suite") == "concept_vectors"}
    assert weights and all(ours[n].value is None for n in weights)
    for name in set(names) - weights:
        value = ours[name].value
        # a metric that applies to the original applies to the pair too, and is finite
        assert (value is None) == (theirs[name].value is None), name
        if value is not None:
            assert math.isfinite(value), f"{name}: {value}"
    assert ours["forget_prob"].value < theirs["forget_prob"].value


def test_forgets_while_the_retain_set_stays(scenario, pair):
    """On retain answers the trained assistant is nearly uniform, so subtracting w times its
    logits shifts the plausible tokens by about one constant and leaves their distribution as
    the target's: the retain probability can only move by what the assistant has not yet
    flattened and by mass moving to or from implausible tokens (measured: 0.905 -> 0.890).
    A drop of at most 0.1 allows for that; the forget probability must fall by more than half
    (measured: 0.905 -> 0.02, the retain model's 0.017)."""
    model, timings = pair
    retain_eval = scenario.splits["retain_eval"]
    forget_before = answer_probability(scenario, scenario.original, scenario.forget)
    forget_after = answer_probability(scenario, model, scenario.forget)
    retain_before = answer_probability(scenario, scenario.original, retain_eval)
    retain_after = answer_probability(scenario, model, retain_eval)
    assert forget_before > 0.5 and forget_after < 0.5 * forget_before, (forget_before,
                                                                        forget_after)
    assert retain_after > retain_before - 0.1, (retain_before, retain_after)
    # the assistant learned the reversed objectives: it knows the forget answers and is near
    # uniform on the retain answers
    retain_batch = next(scenario.task.batches(retain_eval, 64))
    with torch.no_grad():
        kl = uniform_kl(scenario.task.logits(model.assistant, retain_batch)).mean()
        target_kl = uniform_kl(scenario.task.logits(scenario.original, retain_batch)).mean()
    assert kl < 0.1 * target_kl
    assert answer_probability(scenario, model.assistant, scenario.forget) > 0.5
    assert timings["steps"] == 50


def test_original_is_not_mutated_and_gets_no_gradient(scenario, pair, original_state, batch):
    model, _ = pair
    for key, value in scenario.original.state_dict().items():
        assert torch.equal(value, original_state[key]), key
    model.train()
    assert not scenario.original.training and model.assistant.training
    # (the original may carry gradients from its own training: they must not change)
    grads = [None if p.grad is None else p.grad.clone() for p in scenario.original.parameters()]
    scenario.task.nll(model, batch).mean().backward()
    for grad, parameter in zip(grads, scenario.original.parameters()):
        assert (grad is None and parameter.grad is None) or torch.equal(grad, parameter.grad)
    assert any(p.grad is not None for p in model.assistant.parameters())
    model.assistant.zero_grad(set_to_none=True)
    model.eval()
    assert not model.assistant.training


def test_fingerprint_tells_pairs_apart_by_weight(scenario, pair):
    model, _ = pair
    other = LogitDifferenceModel(model.target, model.assistant, 0.5, 0.01)
    assert model_fingerprint(other) != model_fingerprint(model)
    assert all(torch.isfinite(v).all() for v in model.state_dict().values()
               if v.is_floating_point())


def test_lora_assistant_is_merged(scenario):
    model, timings = unlearnbench.unlearn(scenario, "uld", params={"lora_rank": 2}, seed=SEED,
                                          max_steps=3)
    assert type(model.assistant).__name__ == "LlamaForCausalLM"
    assert not any("lora" in k for k in model.state_dict())
    assert timings["steps"] == 3
    assert math.isfinite(answer_probability(scenario, model, scenario.forget))


def test_a_later_request_trains_the_assistant_further(scenario, pair, original_state):
    first, _ = pair
    assistant_before = {k: v.clone() for k, v in first.assistant.state_dict().items()}
    second, timings = unlearnbench.unlearn(scenario, "uld", seed=SEED, max_steps=2,
                                           start=first)
    assert second.target is scenario.original and second.assistant is not first.assistant
    assert timings["steps"] == 2
    for key, value in first.assistant.state_dict().items():
        assert torch.equal(value, assistant_before[key]), key  # the first pair is untouched
    assert any(not torch.equal(v, assistant_before[k])
               for k, v in second.assistant.state_dict().items())


@pytest.mark.parametrize("params, message", [
    ({"relative_top": 1.5}, r"relative_top=1.5 is not allowed: .* in \[0, 1\]"),
    ({"layers": 2}, "layers must be between 1 and the target's 1 blocks"),
    ({"lora_rank": -1}, "lora_rank=-1 is not allowed: it must be an integer >= 0"),
])
def test_bad_params_are_refused(scenario, params, message):
    with pytest.raises(UserError, match=message):
        unlearnbench.unlearn(scenario, "uld", params=params, seed=SEED, max_steps=1)
