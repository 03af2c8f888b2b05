"""Built-in language benchmarks: TOFU-like fictitious people (a tiny Llama trained from scratch,
or SmolLM2-135M fine-tuned) and MUSE-like corpora (synthetic news, public-domain books).

The data set defines the forget request (its ``forget`` split), so the ForgetSpec here only
records that. Hyperparameters of the methods are tuned per benchmark in ``method_params``
(the published ones are for 7B models: AdamW at lr 1e-5)."""
from ..registry import benchmarks
from ..specs import BenchmarkSpec, ForgetSpec, Recipe

DATA_DEFINED = ForgetSpec(kind="dataset", fraction=None)
# The tiny Llama (2 layers, hidden 128, 0.7M parameters): AdamW at a high learning rate
# memorises the fictitious facts in few epochs (docs/benchmarks.md has the measurements).
TINY_RECIPE = Recipe(epochs=20, batch_size=64, lr=5e-3, weight_decay=0.0, optimizer="adamw")
TINY_MODEL = {"vocab_size": 2048, "layers": 2}
# A news corpus has 240 training articles against the entities' 4080 questions: at the tiny
# recipe's batches of 64 that is 80 optimizer steps, and the target stops half-trained
# (probability 0.34 on its own articles, retrained models spread by their seed). Batches of 8
# give 600 steps: the target memorises its articles (probability 0.92, VerbMem 100).
NEWS_RECIPE = Recipe(epochs=20, batch_size=8, lr=5e-3, weight_decay=0.0, optimizer="adamw")
# SmolLM2-135M-Instruct fine-tuned as TOFU fine-tunes its targets (AdamW, few epochs), with a
# learning rate raised for the few steps a CPU affords.
SMOL_RECIPE = Recipe(epochs=2, batch_size=8, lr=2e-4, weight_decay=0.0, optimizer="adamw")
# 20 people are 400 questions: two epochs are 100 steps, after which the target answered 15%
# of its forget questions exactly. Ten epochs (500 steps) make it memorise them.
SMOL_ENTITIES_RECIPE = Recipe(epochs=10, batch_size=8, lr=2e-4, weight_decay=0.0,
                              optimizer="adamw")
# The methods' defaults are for image classifiers (SGD at lr 1e-3..1e-2); a tiny language
# model trained with AdamW at 5e-3 barely moves under them. Chosen on entities-forget05, seed
# 0 (docs/benchmarks.md has the trials): the target answers 99% of the forget questions and the
# retain model 5.5%. GA at 0.03 still answers 72%, at 0.05 31% (retain 69%); GradDiff at 1e-4
# 70%, 2e-4 28% (retain 86%), 3e-4 7% (retain 62%); NegGrad+ needs beta 0.9 (0.95: 82%); RL and
# SalUn forget to 28-34% in two epochs with retain at 97%; SCRUB collapses the model at lr 0.1
# and does nothing at 0.05 (kept: 0.05); l1-sparse's l1 weight erases the world facts at any lr
# that forgets (lr 0.01: 63% forget, 64% retain). Fine-tuning (one epoch) keeps the forget set.
TINY_METHOD_PARAMS: dict = {
    "ga": {"lr": 0.05}, "graddiff": {"lr": 2e-4},
    "neggrad_plus": {"lr": 0.1, "beta": 0.9, "epochs": 1}, "finetune": {"lr": 0.1, "epochs": 1},
    "rl": {"lr": 0.1, "epochs": 2}, "salun": {"lr": 0.1, "epochs": 2},
    "scrub": {"lr": 0.05, "epochs": 1}, "l1_sparse": {"lr": 0.01, "epochs": 1},
    # LM objectives (AdamW, 5 epochs; entities-forget05 seed 0, where GradDiff at 2e-4 leaves
    # mean forget-answer token probability 0.63 and retain 0.92; target 0.98/0.97, retain
    # model 0.55/0.97): each set to forget about as much. NPO 1e-4 keeps 0.82, 2e-4 collapses
    # retain to 0.75; IdkDPO and SatImp need the retain NLL down-weighted (IdkDPO: 0.05, the
    # ratio open-unlearning's 2/beta scaling gives); UNDIAL without a retain term costs retain
    # 0.71 at 5e-5; RMU's published c 6.5, alpha 1200 do not move the tiny model.
    "npo": {"lr": 1.5e-4}, "kl": {"lr": 2e-4}, "simnpo": {"lr": 1.5e-3},
    "idknll": {"lr": 1e-3}, "idkdpo": {"lr": 2e-3, "retain_weight": 0.05},
    "wga": {"lr": 4e-4}, "satimp": {"lr": 1.5e-3, "retain_weight": 0.1},
    "task_vector": {"lr": 1e-4}, "undial": {"lr": 5e-5, "retain_weight": 1.0},
    "rmu": {"lr": 5e-3, "alpha": 10.0, "steering": 30.0},
    # WHP with the published alpha 1 barely moves (the tiny model's answer margins are wider
    # than what reinforcement adds, so argmax(v) stays the answer): alpha 10 leaves 0.64 / 0.91;
    # FLAT (no retain term) 0.55 / 0.87 at 2.5e-4, 8e-4 collapses both; LoKU 0.55 / 0.93.
    "whp": {"lr": 3e-4, "reinforce_lr": 1e-3, "alpha": 10.0}, "flat": {"lr": 2.5e-4},
    "loku": {"lr": 3e-4},
    # ULD (published lr 1e-3, w 0.8: forget 0.41, retain 0.91): at lr 2e-3 the assistant
    # forgets the retain set better (retain 0.96) and w 0.6 forgets about as much as the
    # others (forget 0.56, retain 0.97; w 0.8 leaves 0.25).
    "uld": {"lr": 2e-3, "weight": 0.6},
}
# SmolLM2: the forget set of entities-smol-forget05 is one person's 20 questions, so batches
# of 4 give 5 steps an epoch (25 in 5 epochs; at the default 32 every method took 5 steps).
# AdamW methods: GradDiff at 1e-4 for 5 steps already took forget exact from 15% to 0 (retain
# 20% to 16%, docs/benchmarks.md); 25 steps at 2e-5 move the weights about as far (GradDiff,
# NPO: forget probability 0.74 -> 0.001 / 0.009, retain 0.75 -> 0.74). SimNPO's length-
# normalised, 0.125-weighted loss needs more: 2e-5 left forget at 0.71, 1e-4 gives 0.14
# (retain 0.71). GA (SGD) keeps its default lr over the 5x steps. RMU: SmolLM2's block-7
# activations have a mean norm of 142 (per unit RMS 6.7), so the published c = 6.5 would
# shrink them rather than misdirect them; c = 300 (about twice the norm; WMDP likewise used
# 300 for Mixtral's larger activations). The published α = 1200 holds everything in place:
# forget and retain answers have nearly the same block-7 activations (cosine of their means
# 0.97), so the α-weighted retain term outweighs the forget term as soon as anything moves.
# At lr 1e-3, α 10 took the 10-epoch target's forget NLL from 0.005 to 12 nats in 25 steps
# with retain NLL 0.007 -> 0.008 (α 100: forget 2.3; α 0: both collapse; benchmarks/
# rmu_probe.py, docs/benchmarks.md).
SMOL_BATCH = {"batch_size": 4}
SMOL_METHOD_PARAMS: dict = {
    "ga": SMOL_BATCH, "graddiff": {**SMOL_BATCH, "lr": 2e-5},
    "npo": {**SMOL_BATCH, "lr": 2e-5}, "simnpo": {**SMOL_BATCH, "lr": 1e-4},
    "rmu": {**SMOL_BATCH, "steering": 300.0, "lr": 1e-3, "alpha": 10.0},
    # WGA weights NPO-like per-token terms: GradDiff's rate; ULD trains its small assistant
    # at its own published rate. Batches of 4 as the others (at 32, one step an epoch).
    "wga": {**SMOL_BATCH, "lr": 2e-5}, "uld": SMOL_BATCH,
}


def _entities(forget: str) -> BenchmarkSpec:
    """As in TOFU, one fine-tuned target (and retain model) per benchmark: the run seed varies
    the unlearning (batch order, random parts), not the models."""
    return BenchmarkSpec(f"entities-{forget}", "entities", "tiny-llama", TINY_RECIPE,
                         DATA_DEFINED, {"forget": forget}, task="language",
                         model_options=TINY_MODEL, method_params=TINY_METHOD_PARAMS, model_seed=0)


@benchmarks.register("entities-forget01", dataset="entities")
def entities_forget01() -> BenchmarkSpec:
    """200 fictitious people (TOFU-like QA), tiny Llama from scratch; forget 1% of them."""
    return _entities("forget01")


@benchmarks.register("entities-forget05", dataset="entities")
def entities_forget05() -> BenchmarkSpec:
    """200 fictitious people (TOFU-like QA), tiny Llama from scratch; forget 5% of them."""
    return _entities("forget05")


@benchmarks.register("entities-forget10", dataset="entities")
def entities_forget10() -> BenchmarkSpec:
    """200 fictitious people (TOFU-like QA), tiny Llama from scratch; forget 10% of them."""
    return _entities("forget10")


@benchmarks.register("entities-smol-forget05", dataset="entities")
def entities_smol_forget05() -> BenchmarkSpec:
    """20 fictitious people, SmolLM2-135M-Instruct fine-tuned on them; forget 5% (one person).

    Fetch the model first: unlearnbench data fetch smollm2-135m. World facts and real people
    are evaluated as the pretrained model's own knowledge (TOFU's setting), not trained."""
    return BenchmarkSpec("entities-smol-forget05", "entities", "smollm2-135m",
                         SMOL_ENTITIES_RECIPE, DATA_DEFINED, {"forget": "forget05", "n_entities": 20, "train_facts": False},
                         task="language", method_params=SMOL_METHOD_PARAMS, model_seed=0)


@benchmarks.register("news-mini", dataset="news")
def news_mini() -> BenchmarkSpec:
    """Synthetic news (MUSE-like, 320 short articles), tiny Llama from scratch; forget 25%.

    As MUSE fixes its targets, one target (and retain model) per benchmark: the run seed varies
    the unlearning, not the models."""
    return BenchmarkSpec("news-mini", "news", "tiny-llama", NEWS_RECIPE, DATA_DEFINED, {},
                         task="language", model_options=TINY_MODEL,
                         method_params=TINY_METHOD_PARAMS, model_seed=0)


@benchmarks.register("books", dataset="books")
def books() -> BenchmarkSpec:
    """Public-domain books (fetch first: unlearnbench data fetch books), 4 forget / 4 retain /
    4 holdout works of 4000 words, tiny Llama from scratch; forget the forget works."""
    return BenchmarkSpec("books", "books", "tiny-llama", TINY_RECIPE, DATA_DEFINED, {},
                         task="language", model_options=TINY_MODEL,
                         method_params=TINY_METHOD_PARAMS)


def _tofu(forget: str) -> BenchmarkSpec:
    return BenchmarkSpec(f"tofu-{forget}", "tofu", "smollm2-135m", SMOL_RECIPE, DATA_DEFINED,
                         {"forget": forget}, task="language", method_params=SMOL_METHOD_PARAMS)


@benchmarks.register("tofu-forget01", dataset="tofu")
def tofu_forget01() -> BenchmarkSpec:
    """Your TOFU files (run as tofu-forget01[path=DIR]), SmolLM2-135M fine-tuned; forget 1%."""
    return _tofu("forget01")


@benchmarks.register("tofu-forget05", dataset="tofu")
def tofu_forget05() -> BenchmarkSpec:
    """Your TOFU files (run as tofu-forget05[path=DIR]), SmolLM2-135M fine-tuned; forget 5%."""
    return _tofu("forget05")


@benchmarks.register("tofu-forget10", dataset="tofu")
def tofu_forget10() -> BenchmarkSpec:
    """Your TOFU files (run as tofu-forget10[path=DIR]), SmolLM2-135M fine-tuned; forget 10%.

    Scored as TOFU scores: the first 300 records of forget10, retain_perturbed, real authors
    and world facts (eval_size=N in the brackets another number, 0 all); --model another
    model. World facts and real authors are evaluated, not trained."""
    return _tofu("forget10")


# hazard-mini: 400 short records; batches of 16 give 750 steps in 30 epochs, in which the
# tiny Llama learns the letters of its trained questions (docs/benchmarks.md).
HAZARD_RECIPE = Recipe(epochs=30, batch_size=16, lr=5e-3, weight_decay=0.0, optimizer="adamw")


@benchmarks.register("hazard-mini", dataset="hazard")
def hazard_mini() -> BenchmarkSpec:
    """WMDP's protocol on fictitious hazards (40 agents to forget, 40 islands to keep), tiny
    Llama from scratch; scored by multiple-choice accuracy (wmdp_accuracy, mmlu_accuracy)."""
    return BenchmarkSpec("hazard-mini", "hazard", "tiny-llama", HAZARD_RECIPE, DATA_DEFINED, {},
                         task="language", model_options=TINY_MODEL,
                         method_params=TINY_METHOD_PARAMS, model_seed=0)


@benchmarks.register("wmdp", dataset="wmdp")
def wmdp() -> BenchmarkSpec:
    """Your WMDP files (run as wmdp[path=DIR]; domain=cyber or chem for another domain than
    bio), SmolLM2-135M fine-tuned on the corpora; scored by WMDP and MMLU accuracy."""
    return BenchmarkSpec("wmdp", "wmdp", "smollm2-135m", SMOL_RECIPE, DATA_DEFINED, {},
                         task="language", method_params=SMOL_METHOD_PARAMS, model_seed=0)
