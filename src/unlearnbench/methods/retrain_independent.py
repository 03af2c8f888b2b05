"""Retrain from scratch on the retain set with another training seed: the noise floor."""
import time

import numpy as np

from ..cache import ModelCache, content_key
from ..registry import methods
from ..train import synchronize
from .base import UnlearnContext

# The training seed is the run seed plus this offset, so it is never the reference's (the
# run seed, or a language benchmark's fixed model seed) and each run seed gives another model.
SEED_OFFSET = 100000


def training_seed(seed: int) -> int:
    return SEED_OFFSET + seed


@methods.register("retrain_independent", tasks=("classification", "language"),
                  needs=("retain",), exact=True)
def retrain_independent(ctx: UnlearnContext, params: None):
    """Retrain on the retain set as the reference was, with another seed (the noise floor).

    A model as exact as the reference but independent of it: its distance to the reference
    is what training noise alone gives, the floor no unlearning method can be expected to go
    below. The training seed is 100000 + the run seed. Cached like a reference (a cache hit
    takes no training time, so its timings are not a cost, but it is charged the examples
    training passes); a capped, budgeted or observed run trains without the cache, as the cap
    or the observer needs the training itself."""
    seed = training_seed(ctx.seed)
    task, data = ctx.task, ctx.task.retraining_set(ctx.retain)
    budget = ctx.budget
    if (budget.max_steps is not None or budget.max_examples is not None
            or budget.observer is not None):
        return task.fit(task.fresh_model(seed), data, ctx.recipe, seed, budget)
    # The key a reference trained with this seed has (``scenarios.train_cached``), so the
    # two share a cache entry when both exist.
    key = content_key({"data": task.fingerprint(), "model": task.model_name,
                       "recipe": ctx.recipe, "seed": seed, "device": task.device.type,
                       "train_ids": np.asarray(data.ids)})

    trained = []

    def train(model):
        trained.append(model)
        wall, cpu = time.perf_counter(), time.process_time()
        task.fit(model, data, ctx.recipe, seed, budget)
        synchronize(task.device)
        return {"role": "retrained", "seed": seed, "examples": len(data),
                "train_seconds": time.perf_counter() - wall,
                "train_cpu_seconds": time.process_time() - cpu}

    model, _ = (ctx.cache or ModelCache()).get_or_train(key, lambda: task.fresh_model(seed),
                                                        train)
    if not trained:  # a cache hit: the cost is the training's, not the look-up's
        budget.examples += ctx.recipe.epochs * len(data)
    return model
