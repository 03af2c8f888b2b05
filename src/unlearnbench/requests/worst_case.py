"""The runs behind the "hardest" forget kind (worst-case forget sets, Fan et al. 2024): the
``against`` method unlearns a candidate pool from the original, a model trained without the
pool says what forgetting it fully looks like, and each pool example is scored by how much
better the unlearned model still fits it. The selection itself is
``requests.forget.select_hardest``; this module runs the models, which needs the scenario
machinery the data layer does not import."""
from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from torch import nn

from ..cache import ModelCache
from ..data import DataBundle, Split
from ..errors import Diverged, UserError
from ..specs import BenchmarkSpec
from ..tasks.classification import ClassificationTask


def residual_fit(spec: BenchmarkSpec, seed: int, cache: ModelCache, task: ClassificationTask,
                 data: DataBundle, original: nn.Module, original_meta: dict,
                 pool: np.ndarray) -> np.ndarray:
    """For each pool example (positions into ``data.train``): its cross-entropy under a model
    trained without the pool minus its cross-entropy under the model ``spec.forget.against``
    returns when asked to forget the whole pool. Large: the unlearned model still fits the
    example much better than a model that never saw it (the example was not forgotten);
    about 0: unlearning reached what retraining gives; negative: it overshot.

    The method runs with the benchmark's hyperparameters for it and ``seed``, on a temporary
    scenario whose forget split is the pool and retain split the rest of the training set
    (the original stands in for the reference: unlearning methods never read it). The
    held-out model is trained like a reference (same recipe and seed, retain = the rest) and
    cached by its training ids like one."""
    # Imported here: the API imports the scenario module, which imports this one.
    from ..unlearning import unlearn
    from ..unlearning import Scenario, train_cached as train_cached

    train = data.train
    splits = {"forget": train.subset(pool, "forget"),
              "retain": train.subset(np.setdiff1d(np.arange(len(train)), pool), "retain"),
              "test": data.test, "validation": data.validation}
    scenario = Scenario(spec, seed, task, splits, original, original, original_meta,
                        original_meta, cache=cache)
    try:
        unlearned, _ = unlearn(scenario, spec.forget.against, seed=seed)
    except Diverged as exc:
        raise UserError(f"method {spec.forget.against!r} diverged while unlearning the "
                        f"hardest-set candidate pool ({exc}); choose gentler hyperparameters "
                        "for it in the benchmark or another method") from None
    held_out, _ = train_cached(cache, task, spec, splits["retain"], seed, "hardest-pool held out")
    return (cross_entropy(task, held_out, splits["forget"])
            - cross_entropy(task, unlearned, splits["forget"]))


def cross_entropy(task: ClassificationTask, model: nn.Module, split: Split) -> np.ndarray:
    """Per-example −log p(y | x) of ``split`` under ``model``."""
    logits = task.predict_logits(model, split)
    return F.cross_entropy(logits, split.targets, reduction="none").numpy()
