"""BenchmarkSpec + seed -> Scenario: the splits, the original model (trained on forget +
retain) and the retrained reference (trained on retain only), both from the model cache.
A benchmark's name is read into its spec by ``spec_names.get_spec``."""
from __future__ import annotations

import dataclasses

import numpy as np

from .cache import ModelCache
from .data import DataBundle, Split
from .data.documents import N_GROUPS
from .errors import UserError
from .registry import models
from .requests.forget import select_forget
from .requests.manipulate import backdoor, swap_labels
from .requests.validation import select_validation
from .requests.worst_case import residual_fit
from .spec_names import get_spec, load_data
from .specs import BenchmarkSpec, ForgetSpec
from .tasks.classification import ClassificationTask
from .unlearning import Scenario, train_cached


def manipulate(data: DataBundle, forget: ForgetSpec, seed: int
               ) -> tuple[DataBundle, np.ndarray | None, dict[str, Split]]:
    """Apply a corrective scenario's manipulation to the training pool (the original is then
    trained on manipulated data); other kinds leave the data as it is."""
    if forget.kind != "corrective":
        return data, None, {}
    if forget.manipulation == "label_swap":
        train, positions, extra = swap_labels(data.train, data.test, forget.classes,
                                              forget.manipulated_fraction, seed)
    elif forget.manipulation == "backdoor":
        if not 0 <= forget.classes[0] < data.num_classes:
            raise UserError(f"unknown backdoor target class {forget.classes[0]}")
        train, positions, extra = backdoor(data.train, data.test, forget.classes[0],
                                           forget.manipulated_fraction, seed)
    else:
        raise UserError(f"unknown manipulation {forget.manipulation!r}: use label_swap or backdoor")
    return dataclasses.replace(data, train=train), positions, extra


def check_class_id(forget: ForgetSpec, num_classes: int) -> None:
    """Refuse a class request for a class the data set lacks now, before any training
    (``select_forget`` only gets to it once the original is trained)."""
    if forget.kind in ("class", "subclass") and not (
            forget.class_id is not None and 0 <= forget.class_id < num_classes):
        raise UserError(f"unknown class {forget.class_id!r}: classes are 0..{num_classes - 1}; "
                        "set class_id to one of them")


def build_scenario(spec: BenchmarkSpec | str, seed: int, cache: ModelCache | None = None,
                   device: str = "cpu") -> Scenario | list[Scenario]:
    """Materialise a benchmark for one seed. The seed picks the forget set (and a corrective
    scenario's manipulated examples) and initialises and shuffles the training of both models.
    A benchmark with sequential requests gives one Scenario per request."""
    spec = get_spec(spec) if isinstance(spec, str) else spec
    cache = cache or ModelCache()
    if spec.task == "language":
        return _language_scenario(spec, seed, cache, device)
    if spec.task == "generation":
        return _generation_scenario(spec, seed, cache, device)
    if spec.task == "regression":
        return _regression_scenario(spec, seed, cache, device)
    data, manipulated, extra_splits = manipulate(load_data(spec), spec.forget, seed)
    check_class_id(spec.forget, data.num_classes)
    task = ClassificationTask(data, spec.model, device)
    original, original_meta = train_cached(cache, task, spec, data.train, seed, "original")
    forget_positions = select_forget(
        spec.forget, data.train, data.num_classes, seed,
        features=lambda: task.features(original, data.train).numpy(), manipulated=manipulated,
        residual_fit=lambda pool: residual_fit(spec, seed, cache, task, data, original,
                                               original_meta, pool))
    if spec.forget.validation:
        forget_positions = select_validation(spec.forget, data.train, data.num_classes, seed,
                                             forget_positions,
                                             lambda: task.features(original, data.train).numpy())
    retain_positions = np.setdiff1d(np.arange(len(data.train)), forget_positions)
    splits = {
        "forget": data.train.subset(forget_positions, "forget"),
        "retain": data.train.subset(retain_positions, "retain"),
        "test": data.test,
        "validation": data.validation,
        **extra_splits,
    }
    if spec.forget.requests > 1:
        return _sequence(spec, seed, cache, task, splits, forget_positions, original, original_meta)
    reference, reference_meta = train_cached(cache, task, spec, splits["retain"], seed, "retrained")
    return Scenario(spec, seed, task, splits, original, reference, original_meta, reference_meta,
                    cache=cache)


def _sequence(spec, seed, cache, task, splits, forget_positions, original, original_meta
              ) -> list[Scenario]:
    """Stage i forgets requests 1..i: its forget split is their union, its reference is
    retrained without them, and ``newly_forgotten`` is request i alone."""
    k = spec.forget.requests
    if len(forget_positions) < k:
        raise UserError(f"cannot split {len(forget_positions)} forget examples into {k} requests")
    train = task.data.train
    order = np.random.default_rng(seed + 2).permutation(forget_positions)
    requests = [np.sort(part) for part in np.array_split(order, k)]
    stages = []
    for i in range(1, k + 1):
        forgotten = np.sort(np.concatenate(requests[:i]))
        stage_splits = dict(splits, forget=train.subset(forgotten, "forget"),
                            retain=train.subset(np.setdiff1d(np.arange(len(train)), forgotten),
                                                "retain"))
        reference, reference_meta = train_cached(cache, task, spec, stage_splits["retain"], seed,
                                                  "retrained")
        stages.append(Scenario(spec, seed, task, stage_splits, original, reference, original_meta,
                               reference_meta, i, train.subset(requests[i - 1], "forget"), cache))
    return stages


def _generation_scenario(spec: BenchmarkSpec, seed: int, cache: ModelCache, device: str
                         ) -> Scenario:
    """A diffusion model forgets a class: the original trained on the training pool, the
    reference on all of it but the class; the judge classifier that reads their samples is
    trained once per data set (on a style x object grid, a style and an object classifier);
    the "prompts" split fixes what every model samples."""
    from .tasks.generation import JUDGE_MODEL, JUDGE_RECIPE, GenerationTask, judged_data

    data = load_data(spec)
    check_class_id(spec.forget, data.num_classes)
    if spec.forget.kind != "class" or spec.forget.requests > 1:
        raise UserError(f"benchmark {spec.name!r}: a generation benchmark forgets one class; "
                        "use forget_kind=class with requests=1")
    judges = []
    for judge_data in judged_data(data):
        judge_task = ClassificationTask(judge_data, JUDGE_MODEL, device)
        judge, _ = train_cached(cache, judge_task,
                                dataclasses.replace(spec, model=JUDGE_MODEL, recipe=JUDGE_RECIPE),
                                judge_data.train, 0, "judge")
        judges.append((judge_task, judge))
    task = GenerationTask(data, spec.model, device, judges, **spec.model_options)
    forget = np.flatnonzero(task.forgotten(data.train.targets, spec.forget.class_id).numpy())
    original, original_meta = train_cached(cache, task, spec, data.train, seed, "original")
    splits = {"forget": data.train.subset(forget, "forget"),
              "retain": data.train.subset(np.setdiff1d(np.arange(len(data.train)), forget),
                                          "retain"),
              "test": data.test, "validation": data.validation,
              task.prompts_name: task.prompts(range(data.num_classes), task.samples_per_class,
                                              task.sample_seed)}
    reference, reference_meta = train_cached(cache, task, spec, splits["retain"], seed, "retrained")
    return Scenario(spec, seed, task, splits, original, reference, original_meta, reference_meta,
                    cache=cache)


def _regression_scenario(spec: BenchmarkSpec, seed: int, cache: ModelCache, device: str
                         ) -> Scenario | list[Scenario]:
    """A regressor forgets a random share of its training pool or the request its data set
    defines (forget kind "dataset": a target range or a feature-defined group, see
    ``data/regression.py``)."""
    from .tasks.regression import RegressionTask

    data = load_data(spec)
    task = RegressionTask(data, spec.model, device, **spec.model_options)
    if spec.forget.kind == "dataset":
        if data.forget_positions is None:
            raise UserError(f"benchmark {spec.name!r}: forget_kind=dataset needs the data "
                            "set's forget option (e.g. forget=target); or use forget_kind=random")
        forget_positions = data.forget_positions
    elif spec.forget.kind == "random":
        forget_positions = select_forget(spec.forget, data.train, 1, seed)
    else:
        raise UserError(f"benchmark {spec.name!r}: a regression request is random or defined "
                        f"by the data set; forget_kind={spec.forget.kind} needs classes")
    if spec.forget.validation:
        if spec.forget.kind != "random":
            raise UserError(f"benchmark {spec.name!r}: only random regression requests have a "
                            "validation request; tune a random one")
        forget_positions = select_validation(spec.forget, data.train, 1, seed, forget_positions)
    original, original_meta = train_cached(cache, task, spec, data.train, seed, "original")
    retain_positions = np.setdiff1d(np.arange(len(data.train)), forget_positions)
    splits = {"forget": data.train.subset(forget_positions, "forget"),
              "retain": data.train.subset(retain_positions, "retain"),
              "test": data.test, "validation": data.validation}
    if spec.forget.requests > 1:
        return _sequence(spec, seed, cache, task, splits, forget_positions, original, original_meta)
    reference, reference_meta = train_cached(cache, task, spec, splits["retain"], seed, "retrained")
    return Scenario(spec, seed, task, splits, original, reference, original_meta, reference_meta,
                    cache=cache)


# Language benchmarks score the retain set on a fixed sample of this size (TOFU evaluates its
# 400-question retain_perturbed set): generating answers for every retain question would cost
# more than the unlearning.
RETAIN_EVAL_SIZE = 400


def _language_scenario(spec: BenchmarkSpec, seed: int, cache: ModelCache, device: str) -> Scenario:
    """A language benchmark's data set defines the forget request (its ``forget`` split); the
    original is trained on everything it trains, the reference on all of that but forget
    (with the spec's ``model_seed`` where it fixes them, as TOFU fixes its targets)."""
    from .models.language import language_model_for
    from .tasks.language import LanguageTask

    if spec.dataset in ("rwku", "rwku-mini", "rwku-smol"):
        return _rwku_scenario(spec, seed, cache, device)
    if spec.dataset == "skills-smol":
        return _skills_smol_scenario(spec, seed, cache, device)
    bundle = load_data(spec)
    tokenizer, make_model = language_model_for(spec.model, bundle, cache, spec.model_options)
    task = LanguageTask(bundle, tokenizer, make_model, device, model_name=spec.model)
    model_seed = seed if spec.model_seed is None else spec.model_seed
    original, original_meta = train_cached(cache, task, spec, bundle.training_split(True),
                                            model_seed, "original")
    if spec.forget.requests > 1:
        return _language_sequence(spec, seed, cache, task, original, original_meta, model_seed)
    reference, reference_meta = train_cached(cache, task, spec, bundle.training_split(False),
                                              model_seed, "retrained")
    return Scenario(spec, seed, task, with_retain_eval(bundle.splits), original, reference,
                    original_meta, reference_meta, cache=cache)


def _rwku_scenario(spec: BenchmarkSpec, seed: int, cache: ModelCache, device: str) -> Scenario:
    """RWKU (``data/rwku.py``): the original is a model that already knows its targets, not
    trained here; the forget set is text that model wrote about them. ``rwku``: the given
    pretrained model as it is, and the reference is the original (RWKU retrains nothing);
    ``rwku-smol`` likewise, its forget corpus the model's answers to description requests.
    ``rwku-mini``: the target of ``entities-forget05`` (trained and cached as that benchmark
    trains it), its retain model as the reference, and the forget corpus its greedy answers."""
    from .data.rwku import MINI_PEOPLE, mini_base, with_chat_template
    from .models.language import language_model_for
    from .tasks.language import LanguageTask

    bundle = load_data(spec)
    if spec.dataset in ("rwku", "rwku-smol"):
        if spec.model in models and not models.get(spec.model).attributes.get("pretrained"):
            raise UserError(f"benchmark {spec.name!r}: RWKU unlearns a pretrained model that "
                            "knows its targets; give model=DIR (a Hugging Face model) or a "
                            "registered pretrained model")
        tokenizer, make_model = language_model_for(spec.model, bundle, cache, spec.model_options)
        bundle = with_chat_template(bundle, tokenizer)
        task = LanguageTask(bundle, tokenizer, make_model, device, model_name=spec.model)
        original = task.fresh_model(0)
        if spec.dataset == "rwku-smol":
            from .data.rwku_smol import CORPUS_TOKENS, written_corpus

            corpus = written_corpus(bundle.splits["forget"], tokenizer, lambda split:
                                    task.generate(original, split, max_new_tokens=CORPUS_TOKENS))
            bundle = dataclasses.replace(bundle, splits=dict(bundle.splits, forget=corpus))
            # the probes are scored on 30 new tokens (metrics/rwku.py): generate no more
            task = LanguageTask(bundle, tokenizer, make_model, device, model_name=spec.model,
                                max_new_tokens=30)
        # Nothing is retrained: the cost a method is compared with is the recipe's epochs
        # over the forget corpus, done in no time (retrain_seconds 0).
        meta = {"role": "original", "benchmark": spec.name, "seed": seed,
                "examples": len(bundle.splits["forget"]), "train_seconds": 0.0,
                "train_cpu_seconds": 0.0}
        return Scenario(spec, seed, task, bundle.splits, original, original, meta, meta,
                        cache=cache)
    # rwku-mini's recipe and model are its base's (a variant's recipe keys train the base)
    base = dataclasses.replace(get_spec(mini_base(spec.dataset_options.get("n_entities",
                                                                          MINI_PEOPLE))),
                               recipe=spec.recipe, model_options=spec.model_options)
    base_bundle = load_data(base)
    tokenizer, make_model = language_model_for(base.model, base_bundle, cache,
                                               base.model_options)
    base_task = LanguageTask(base_bundle, tokenizer, make_model, device, model_name=base.model)
    original, original_meta = train_cached(cache, base_task, base,
                                           base_bundle.training_split(True), base.model_seed,
                                           "original")
    reference, reference_meta = train_cached(cache, base_task, base,
                                             base_bundle.training_split(False),
                                             base.model_seed, "retrained")
    prompts = bundle.splits["forget"]
    answers = base_task.generate(original, prompts)
    corpus = prompts.with_records([dict(r, answer=a) for r, a in zip(prompts.records, answers)])
    bundle = dataclasses.replace(bundle, splits=dict(bundle.splits, forget=corpus))
    task = LanguageTask(bundle, tokenizer, make_model, device, model_name=base.model)
    return Scenario(spec, seed, task, bundle.splits, original, reference, original_meta,
                    reference_meta, cache=cache)


def _skills_smol_scenario(spec: BenchmarkSpec, seed: int, cache: ModelCache, device: str
                          ) -> Scenario:
    """skills-smol (``data/skills.py``): the pretrained model as it is has both skills; its
    questions are put in the model's chat template. Nothing is trained, so the reference is
    the original (there is no model without the forget skill to compare with)."""
    from .data.skills import with_chat_prompts
    from .models.language import language_model_for
    from .tasks.language import LanguageTask

    bundle = load_data(spec)
    tokenizer, make_model = language_model_for(spec.model, bundle, cache, spec.model_options)
    bundle = with_chat_prompts(bundle, tokenizer)
    # an answer is scored on its first line, a few tokens: 16 new tokens hold it (KSD decodes
    # without a key/value cache, at a cost growing with every token)
    task = LanguageTask(bundle, tokenizer, make_model, device, model_name=spec.model,
                        max_new_tokens=16)
    original = task.fresh_model(0)
    meta = {"role": "original", "benchmark": spec.name, "seed": seed,
            "examples": len(bundle.splits["forget"]), "train_seconds": 0.0,
            "train_cpu_seconds": 0.0}
    return Scenario(spec, seed, task, bundle.splits, original, original, meta, meta, cache=cache)


def with_retain_eval(splits: dict) -> dict:
    if "retain_eval" in splits:  # the data set's own sample (TOFU's: retain_perturbed)
        return splits
    retain = splits["retain"]
    sample = np.sort(np.random.default_rng(0).permutation(len(retain))[:RETAIN_EVAL_SIZE])
    return dict(splits, retain_eval=retain.subset(sample, "retain_eval"))


def _language_sequence(spec, seed, cache, task, original, original_meta, model_seed
                       ) -> list[Scenario]:
    """MUSE's sustainability protocol: request i forgets the disjoint set ``sustain_i``,
    starting from the model request i - 1 left. Stage i is scored as the ``scale_i`` request
    (the union of sustain_1..i: its forget, verbatim and knowledge splits), against a
    reference retrained without that union; the original is the usual target."""
    if "sustain_1" not in load_data(spec).splits:
        raise UserError(f"benchmark {spec.name!r}: sequential requests on language data need a "
                        "data set with sustain sets (news, books); use requests=1")
    if spec.dataset_options.get("forget", "forget") != "forget":
        raise UserError(f"benchmark {spec.name!r}: requests=K takes the sustain sets of the "
                        "whole forget set; drop the forget= option")
    if spec.forget.requests > N_GROUPS:
        raise UserError(f"benchmark {spec.name!r}: at most {N_GROUPS} sequential requests "
                        f"(the data set has {N_GROUPS} sustain sets), got {spec.forget.requests}")
    stages = []
    for i in range(1, spec.forget.requests + 1):
        stage = load_data(dataclasses.replace(
            spec, dataset_options={**spec.dataset_options, "forget": f"scale_{i}"}))
        reference, reference_meta = train_cached(cache, task, spec, stage.training_split(False),
                                                  model_seed, "retrained")
        newly = stage.splits[f"sustain_{i}"]
        stages.append(Scenario(spec, seed, task, with_retain_eval(stage.splits), original,
                               reference, original_meta, reference_meta, i,
                               newly.subset(np.arange(len(newly)), "forget"), cache))
    return stages
