"""The tiny mixture-of-experts model, UOE (unlearning one expert) and the routing-shift
metrics, on entities-moe-forget05 cut to 20 people and a two-block MoE (trained once for the
module in a temporary model cache)."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

import unlearnbench
from unlearnbench import testing
from unlearnbench.cache import ModelCache
from unlearnbench.errors import UserError
from unlearnbench.methods.uoe import expert_affinity
from unlearnbench.metrics.evaluation import evaluate, metric_names_for
from unlearnbench.metrics.routing import gates_per_token
from unlearnbench.models.moe import moe_blocks
from unlearnbench.scenarios import get_spec
from unlearnbench.specs import Recipe

ROUTING = ("routing_shift", "routing_shift_forget")


@pytest.fixture(scope="module")
def moe(tmp_path_factory):
    spec = dataclasses.replace(
        get_spec("entities-moe-forget05"), name="entities-moe-test",
        dataset_options={"forget": "forget05", "n_entities": 20},
        recipe=Recipe(epochs=20, batch_size=32, lr=1e-2, weight_decay=0.0, optimizer="adamw"),
        model_options={"vocab_size": 512, "layers": 2, "hidden": 64})
    cache = ModelCache(tmp_path_factory.mktemp("moe-model-cache"))
    return unlearnbench.scenario(spec, seed=testing.SEED, cache=cache)


@pytest.fixture(scope="module")
def runs(moe):
    """Each (method, params) run once on the MoE scenario, with its forget NLL and metrics."""
    done = {}

    def run(method: str, **params):
        key = (method, tuple(sorted(params.items())))
        if key not in done:
            model, _ = unlearnbench.unlearn(moe, method, params, seed=testing.SEED)
            done[key] = (model, evaluate(moe, model, names=["forget_nll", *ROUTING]))
        return done[key]

    return run


def test_the_moe_model_trains_and_routes(moe):
    """The target knows its forget answers, and its routers spread the tokens over the experts:
    every block's gates are distributions and sends some tokens' first choice to 2+ experts."""
    nll = evaluate(moe, moe.original, names=["forget_nll"])["forget_nll"].value
    assert nll < 0.5, f"forget answer NLL {nll}: the target has not learned its data"
    assert len(moe_blocks(moe.original)) == 2
    gates = torch.cat(gates_per_token(moe.task, moe.original, moe.forget), 1)  # (2, T, 4)
    assert gates.shape[0] == 2 and gates.shape[2] == 4
    torch.testing.assert_close(gates.sum(-1), torch.ones(gates.shape[:2]))  # float32 softmax
    for block in gates:
        assert len(block.argmax(-1).unique()) >= 2


def test_uoe_meets_the_method_contract(moe):
    """Deterministic, the original untouched, finite weights, the step budget, and the forget
    NLL closer to the retain model's than the target's (the benchmark tunes its lr)."""
    testing.check_method("uoe", moe)


def test_uoe_refuses_a_model_without_routers(language_scenario):
    with pytest.raises(UserError, match="uoe .* has no routers; choose an MoE benchmark"):
        unlearnbench.unlearn(language_scenario, "uoe")


def test_uoe_trains_only_the_top_expert_and_its_router(moe, runs):
    """The expert with the highest mean gate probability on the forget set, over every block,
    is the only expert that changes, with its block's router; all else is bit-identical (the
    other weights get no gradient and AdamW without weight decay does not step them)."""
    affinity = expert_affinity(moe.task, moe.original, moe.forget)
    layer, expert = divmod(int(affinity.argmax()), affinity.shape[1])
    model, results = runs("uoe")
    name = moe_blocks(model)[layer][0]
    changed = {f"{name}.gate.weight", f"{name}.experts.gate_up_proj",
               f"{name}.experts.down_proj"}
    before, after = moe.original.state_dict(), model.state_dict()
    for key in before:
        if key not in changed:
            assert torch.equal(before[key], after[key]), f"{key} changed"
    assert not torch.equal(before[f"{name}.gate.weight"], after[f"{name}.gate.weight"])
    for key in (f"{name}.experts.gate_up_proj", f"{name}.experts.down_proj"):
        for other in range(before[key].shape[0]):
            same = torch.equal(before[key][other], after[key][other])
            assert same == (other != expert), f"{key}[{other}]"
    target = evaluate(moe, moe.original, names=["forget_nll"])["forget_nll"].value
    assert results["forget_nll"].value > target + 0.5  # nats: answers clearly less likely


def test_uoe_shifts_routing_less_than_ga_at_a_comparable_forget_nll(moe, runs):
    """GA at the first learning rate (of a rising few) that forgets at least as much as UOE
    (a forget NLL at least UOE's) changes more of the retain records' expert choices. UOE
    at lr 1e-2, which forgets far (forget NLL 0.2 -> 6 nats here)."""
    _, uoe = runs("uoe", lr=1e-2)
    for lr in (0.05, 0.06, 0.07, 0.08):
        _, ga = runs("ga", lr=lr)
        if ga["forget_nll"].value >= uoe["forget_nll"].value:
            break
    assert ga["forget_nll"].value >= uoe["forget_nll"].value, "no GA run forgot as much"
    assert uoe["routing_shift"].value < ga["routing_shift"].value


def test_routing_metrics_apply_to_moe_models_only(moe, language_scenario):
    assert set(ROUTING) <= set(metric_names_for(moe))
    assert not set(ROUTING) & set(metric_names_for(language_scenario))


@pytest.mark.parametrize("name", ROUTING)
def test_routing_metrics_meet_the_metric_contract(moe, name):
    testing.check_metric(name, moe)


def test_routing_shift_on_a_known_change(moe):
    """The original against itself changes no choice. Swapping the rows of experts 0 and 1 in
    the last block's router swaps their gate probabilities there and nowhere else (no later
    router reads that block's output): a token whose top 2 held exactly one of them has one of
    its 2 choices changed in 1 of the 2 blocks, a quarter; the others none."""
    assert evaluate(moe, moe.original, names=["routing_shift"])["routing_shift"].value == 0.0
    swapped = copy.deepcopy(moe.original)
    weight = moe_blocks(swapped)[-1][1].gate.weight
    with torch.no_grad():
        weight[[0, 1]] = weight[[1, 0]].clone()
    expected = []
    for gates in gates_per_token(moe.task, moe.original, moe.splits["retain_eval"]):
        top = gates[-1].topk(2).indices  # the last block's choices, (tokens, 2)
        exactly_one = (top == 0).any(-1) ^ (top == 1).any(-1)
        expected.append(float(exactly_one.float().mean()) / 4)
    value = evaluate(moe, swapped, names=["routing_shift"])["routing_shift"].value
    assert 0 < value == pytest.approx(sum(expected) / len(expected), abs=1e-9)  # exact counts


def test_uoe_reads_the_retain_set_only_with_a_retain_term():
    from unlearnbench.registry import methods
    from unlearnbench.unlearning import method_needs

    params = methods.get("uoe").params
    assert method_needs("uoe", params(loss="ga")) == {"forget"}
    assert method_needs("uoe", params(loss="npo")) == {"forget", "retain"}
    assert method_needs("uoe", params(loss="graddiff", retain_weight=0.0)) == {"forget"}
