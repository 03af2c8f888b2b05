"""Built-in skill-unlearning benchmark: forget one skill (three-word reversal), keep another
(copying three words), both learnt by a tiny Llama from scratch (``data/skills.py``); scored
by the exact-answer accuracy on held-out questions of each skill (``metrics/skills.py``)."""
from ..registry import benchmarks
from ..specs import BenchmarkSpec, ForgetSpec, Recipe
from .language import TINY_METHOD_PARAMS, TINY_MODEL

# 2000 short questions; batches of 16 give 2500 steps in 20 epochs (the retain model 1250),
# in which the tiny Llama learns both rules (held-out accuracy in docs/benchmarks.md). With
# 1500 questions a skill in batches of 32 the retain model (940 steps) had learnt reversal
# on 1% of its questions when the target (1900 steps) had it on 100%.
SKILLS_RECIPE = Recipe(epochs=20, batch_size=16, lr=5e-3, weight_decay=0.0, optimizer="adamw")


@benchmarks.register("skills-mini", dataset="skills")
def skills_mini() -> BenchmarkSpec:
    """Two synthetic skills (forget three-word reversal, keep three-word copy), tiny Llama
    from scratch; scored by exact answers on held-out questions of each skill."""
    return BenchmarkSpec("skills-mini", "skills", "tiny-llama", SKILLS_RECIPE,
                         ForgetSpec(kind="dataset", fraction=None), {}, task="language",
                         model_options=TINY_MODEL, method_params=TINY_METHOD_PARAMS,
                         model_seed=0)
