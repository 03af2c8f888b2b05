"""Shared test settings and the small language scenario several test modules share."""
import os

import pytest
import torch

# Small models gain nothing from intra-op threads, and spinning threads slow down many-fold
# when another process shares the cores (the CLI's --threads defaults to 1 for the same reason).
torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def small_language_spec(name: str = "entities-test", **recipe):
    """entities-forget05 cut to 20 people and a one-layer tiny Llama (trains in seconds)."""
    from unlearnbench.testing import tiny_language_spec

    return tiny_language_spec(name, **recipe)


@pytest.fixture(scope="session")
def language_cache(tmp_path_factory):
    from unlearnbench.cache import ModelCache

    return ModelCache(tmp_path_factory.mktemp("language-model-cache"))


@pytest.fixture(scope="session")
def language_scenario(language_cache):
    """The small language scenario, trained once per test session."""
    import unlearnbench

    return unlearnbench.scenario(small_language_spec(), seed=0, cache=language_cache)
