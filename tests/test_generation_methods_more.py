"""RECE and SFD on digits-gen-class beyond the contract and quality checks they share with the
other erasers (test_generation_methods.py): RECE's adversarial rounds keep the class erased
under the embedding attack where UCE's single edit does not, and SFD needs no real data."""
from __future__ import annotations

import dataclasses

import torch

from unlearnbench.methods.base import UnlearnContext
from unlearnbench.metrics.evaluation import evaluate
from unlearnbench.registry import methods
from unlearnbench.unlearning import unlearn

from generation_fixtures import scenario  # noqa: F401 (fixtures)


def context(scenario, forget, retain) -> UnlearnContext:
    return UnlearnContext(scenario.task, scenario.original, forget, retain, scenario.spec.recipe)


def test_rece_keeps_the_class_erased_under_the_embedding_attack_where_uce_does_not(scenario):
    attacked = {}
    for method in ("uce", "rece"):
        model, timings = unlearn(scenario, method)
        assert timings["steps"] == 0  # both are closed forms
        attacked[method] = evaluate(scenario, model, names=["attack_ua"])["attack_ua"].value
    # Measured on seed 0 (20 attacked images): UCE 10%, RECE 80%; 40 points is 8 images.
    assert attacked["rece"] >= attacked["uce"] + 40.0, attacked


def test_rece_edits_only_the_maps_that_read_the_condition(scenario):
    model, _ = unlearn(scenario, "rece", {"rounds": 2})
    original = dict(scenario.original.named_parameters())
    changed = sorted(n for n, p in model.named_parameters() if not torch.equal(p, original[n]))
    assert changed == ["down.embed.weight", "middle.0.embed.weight", "middle.1.embed.weight",
                       "up.embed.weight"]


def test_rece_with_no_adversarial_round_is_uce_at_the_same_scales(scenario):
    """Round 0 is UCE's closed form (UCE's λ with RECE's equal scales: the same solve)."""
    rece, _ = unlearn(scenario, "rece", {"rounds": 0, "erase_scale": 1.0, "preserve_scale": 1.0,
                                         "lamb": 0.5})
    uce, _ = unlearn(scenario, "uce")
    for (name, a), b in zip(rece.named_parameters(), uce.parameters()):
        # The same float64 solve rounded to float32 by two callers: equal to rounding.
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), name


def test_sfd_is_data_free(scenario):
    """SFD reads only which class the forget set holds: without the retain set, and with a
    forget set of five of the class's images, it returns the same weights."""
    entry = methods.get("sfd")
    params = dataclasses.replace(entry.params(), epochs=1)
    full = entry.obj(context(scenario, scenario.forget, scenario.retain), params)
    few = entry.obj(context(scenario, scenario.forget.subset([0, 1, 2, 3, 4]),
                            scenario.retain.subset([])), params)
    for (name, a), b in zip(full.named_parameters(), few.parameters()):
        assert torch.equal(a, b), name  # one code path on one device: bit for bit
