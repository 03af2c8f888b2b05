"""Fixtures and helpers shared by the language-method tests (``test_language_methods*.py``),
on the small language scenario of ``conftest.py``.

A test module takes the fixtures with ``from language_fixtures import batch as batch,
scenario as scenario``: the redundant alias marks the import as used on purpose, since pytest
finds a fixture by the test's argument name and the linter sees no other use."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from unlearnbench.methods.base import UnlearnContext
from unlearnbench.tasks.language import LanguageTask

SEED = 0


@pytest.fixture(scope="module")
def scenario(language_scenario):
    return language_scenario


@pytest.fixture(scope="module")
def batch(scenario):
    """A real batch: four forget records of different answer lengths."""
    forget = scenario.forget
    return scenario.task.make_batch(forget.records[:4], forget.ids[:4])


def forget_probability(scenario, model) -> float:
    """Mean over the forget set of exp(−mean answer NLL): the per-token answer probability."""
    return float(torch.exp(-scenario.task.answer_nll(model, scenario.forget)).mean())


def unlearn_context(scenario, task=None) -> UnlearnContext:
    """The context a method gets on the scenario (on another task when one is given)."""
    return UnlearnContext(task or scenario.task, scenario.original, scenario.forget,
                          scenario.retain, scenario.spec.recipe, SEED)


def task_without_refusals(task: LanguageTask) -> LanguageTask:
    """The same task on a data set that has no refusal strings."""
    return LanguageTask(dataclasses.replace(task.data, refusals=()), task.tokenizer,
                        task.make_model)
