"""Built-in skill-unlearning benchmarks: forget one skill, keep another, scored by the answer
accuracy on held-out questions of each skill (``metrics/skills.py``). ``skills-mini``: three-
word reversal and copying, both learnt by a tiny Llama from scratch; ``skills-smol``: the
times table and copying, both had by SmolLM2-135M-Instruct as it is (``data/skills.py``)."""
from ..registry import benchmarks
from ..specs import BenchmarkSpec, ForgetSpec, Recipe
from .language import DATA_DEFINED, SMOL_METHOD_PARAMS, SMOL_RECIPE, TINY_METHOD_PARAMS, \
    TINY_MODEL

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


# Nothing is trained here; the methods that train (GA, NPO, ...) run 2 epochs over the 40
# forget questions in batches of 8 (10 steps), which keeps a SmolLM2 run to CPU-minutes.
SMOL_SKILL_PARAMS = {name: {**SMOL_METHOD_PARAMS.get(name, {}), "batch_size": 8, "epochs": 2}
                     for name in ("ga", "graddiff", "npo", "simnpo")}


@benchmarks.register("skills-smol", dataset="skills-smol")
def skills_smol() -> BenchmarkSpec:
    """Two skills SmolLM2-135M-Instruct has as it is (forget the times table, keep copying
    three words), asked in its chat template; nothing trained, no retrained reference;
    scored on held-out questions of each skill."""
    return BenchmarkSpec("skills-smol", "skills-smol", "smollm2-135m", SMOL_RECIPE,
                         DATA_DEFINED, {}, task="language",
                         method_params={**SMOL_METHOD_PARAMS, **SMOL_SKILL_PARAMS},
                         model_seed=0)
