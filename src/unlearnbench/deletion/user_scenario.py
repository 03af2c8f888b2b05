"""A Scenario around a user's own model and data, so that every registered method runs on it
through ``unlearning.unlearn`` as on a benchmark: the task adapter (classification or language)
wraps the loaded model, the request's ids make the forget split, the rest is retain, and a
holdout file (never trained on) is the holdout split. There is no retrained reference unless
the audit retrains one. One batch runs through the model before anything else, so data that
does not fit the model fails at once with a one-line message."""
from __future__ import annotations

import numpy as np
import torch

from ..cache import ModelCache
from ..data import DataBundle, Split, make_split
from ..data.entities import REFUSALS
from ..data.text import TextBundle, text_split
from ..errors import UserError
from ..specs import BenchmarkSpec, ForgetSpec, Recipe
from ..tasks.classification import ClassificationTask
from ..unlearning import Scenario
from .user_data import UserData
from .user_model import UserModel, one_line

# How a request trains from scratch when ``--set recipe.*`` says nothing else: retraining,
# EU-k's re-initialised layers, and LoRA for language models (recipe.lora_rank).
DEFAULT_RECIPES = {"classification": Recipe(),
                   "language": Recipe(epochs=5, batch_size=8, lr=1e-5, weight_decay=0.0,
                                      optimizer="adamw")}
# Language records longer than this many tokens are cut (or the model's context, if shorter).
MAX_LENGTH = 256


def user_scenario(user: UserModel, data: UserData, holdout: UserData | None,
                  forget_positions: np.ndarray, recipe: Recipe, seed: int, device: str,
                  cache: ModelCache | None = None) -> Scenario:
    """The scenario of the request: benchmark ``user:<model name>``, splits forget (the rows
    at ``forget_positions``), retain (every other row) and holdout (when given)."""
    retain_positions = np.setdiff1d(np.arange(len(data)), forget_positions)
    make = _classification if user.task == "classification" else _language
    task, full, held = make(user, data, holdout, forget_positions, retain_positions, device)
    splits = {"forget": full.subset(forget_positions, "forget"),
              "retain": full.subset(retain_positions, "retain")}
    if held is not None:
        splits["holdout"] = held
    spec = BenchmarkSpec(name=f"user:{user.name}", dataset=task.data.name, model=user.name,
                         recipe=recipe, task=user.task,
                         # an explicit list of ids, not a selector: recorded for reading only
                         forget=ForgetSpec(kind="ids", fraction=None, count=len(forget_positions)))
    return Scenario(spec, seed, task, splits, user.model, reference=None,
                    cache=cache or ModelCache())


def _holdout_ids(data: UserData, holdout: UserData) -> np.ndarray:
    """Holdout ids follow the data's row numbers, so no id is shared between them."""
    return np.arange(len(data), len(data) + len(holdout))


def _classification(user: UserModel, data: UserData, holdout: UserData | None, forget, retain,
                    device: str):
    full = make_split("data", data.x, data.y)
    held = None
    if holdout is not None:
        if holdout.x.shape[1:] != data.x.shape[1:]:
            raise UserError(f"--holdout rows have shape {holdout.x.shape[1:]} but --data rows "
                            f"{data.x.shape[1:]}; both must be inputs of the same model")
        held = make_split("holdout", holdout.x, holdout.y, _holdout_ids(data, holdout))
    num_classes = check_classifier(user, full, held, device)
    empty = full.subset(np.arange(0), "none")
    bundle = DataBundle(f"user:{data.path.name}", full, held or empty, held or empty, num_classes)
    return ClassificationTask(bundle, user.name, device, make_model=user.fresh), full, held


def check_classifier(user: UserModel, data: Split, holdout: Split | None, device: str) -> int:
    """Run one batch; the model must return (batch, classes) logits covering every label.
    Returns the number of classes."""
    try:
        with torch.no_grad():
            logits = user.model(data.inputs[:8].to(device))
    except Exception as exc:  # the user's forward: anything may go wrong
        raise UserError(f"the data does not fit the model: rows of shape "
                        f"{tuple(data.inputs.shape[1:])} gave {one_line(exc)}") from None
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or len(logits) != min(8, len(data)):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise UserError(f"the model returned {shape} for a batch of {min(8, len(data))}; a "
                        "classifier must return (batch, classes) logits")
    classes = logits.shape[1]
    for name, split in (("--data", data), ("--holdout", holdout)):
        if split is not None and len(split) and not 0 <= int(split.targets.min()) <= int(
                split.targets.max()) < classes:
            raise UserError(f"{name} labels run from {int(split.targets.min())} to "
                            f"{int(split.targets.max())} but the model has {classes} outputs")
    return classes


def _language(user: UserModel, data: UserData, holdout: UserData | None, forget, retain,
              device: str):
    from ..tasks.language import LanguageTask

    full = text_split("data", data.records)
    held = None if holdout is None else text_split("holdout", holdout.records,
                                                   _holdout_ids(data, holdout))
    splits = {"forget": full.subset(forget, "forget"), "retain": full.subset(retain, "retain")}
    if held is not None:
        splits["holdout"] = held
    # Refusal strings for the methods that answer with one (IdkNLL, IdkDPO, FLAT): the generic
    # "I don't know" answers of the entities data (TOFU's idontknow list plays this part).
    bundle = TextBundle(f"user:{data.path.name}", splits, refusals=REFUSALS)
    context = getattr(user.model.config, "max_position_embeddings", None) or MAX_LENGTH
    task = LanguageTask(bundle, user.tokenizer, user.fresh, device,
                        max_length=min(MAX_LENGTH, context), model_name=user.name)
    check_language_model(task, user, [full] + ([held] if held is not None else []))
    return task, full, held


def check_language_model(task, user: UserModel, splits: list) -> None:
    """Every token id the tokenizer gives must be inside the model's embedding table; then one
    batch runs through the model."""
    size = user.model.get_input_embeddings().num_embeddings
    for split in splits:
        prompts, answers = task.encode(split.records)
        largest = max(max(p + a) for p, a in zip(prompts, answers))
        if largest >= size:
            raise UserError(f"the tokenizer does not fit the model: it gives token id {largest} "
                            f"but the model embeds {size} tokens; give the tokenizer the model "
                            "was trained with (its files in the model directory)")
    try:
        with torch.no_grad():
            task.nll(user.model, next(task.batches(splits[0], 2)))
    except Exception as exc:
        raise UserError(f"the data does not run through the model ({one_line(exc)})") from None
