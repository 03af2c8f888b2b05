"""The language benchmark on the tiny mixture-of-experts model (``models/moe.py``): the same
data, recipe and forget request as its tiny-Llama counterpart, for UOE and the routing
metrics."""
from ..registry import benchmarks
from ..specs import BenchmarkSpec
from .language import DATA_DEFINED, TINY_METHOD_PARAMS, TINY_MODEL, TINY_RECIPE

# The dense model's tuned values serve the methods both models share. UOE trains one expert
# and one router (7% of the weights) with AdamW: on the 20-person test scenario (5
# steps) lr 1e-3 left the forget NLL at 0.40 (target 0.21, retain model 5.75), 3e-3 took it
# to 1.3 and 1e-2 to 6.0 (retain NLL 0.21 -> 2.6). The benchmark's forget set takes 35 steps,
# 7 times as many: 2e-3 moves the weights about as far as 1e-2 in 5 steps.
MOE_METHOD_PARAMS: dict = {**TINY_METHOD_PARAMS, "uoe": {"lr": 2e-3}}


@benchmarks.register("entities-moe-forget05", dataset="entities")
def entities_moe_forget05() -> BenchmarkSpec:
    """200 fictitious people (TOFU-like QA), tiny MoE (4 experts, top-2) from scratch; forget 5%."""
    return BenchmarkSpec("entities-moe-forget05", "entities", "tiny-moe", TINY_RECIPE,
                         DATA_DEFINED, {"forget": "forget05"}, task="language",
                         model_options=TINY_MODEL, method_params=MOE_METHOD_PARAMS, model_seed=0)
