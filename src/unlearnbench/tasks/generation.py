"""The generation task adapter: class-conditional diffusion models of images (see
``models/diffusion.py``). A split's labels are the conditions the images are generated under.

What methods see mirrors the classification task, so a method written for classifiers runs
here unchanged:

- ``nll(model, batch)``: per example, the noise-prediction MSE ‖ε_θ(x_t, t, c) − ε‖² (mean
  over pixels) at a timestep t and noise ε drawn from the batch's seed (so one batch always
  gets the same draws): the DDPM training loss, which GA ascends and fine-tuning descends;
- ``relabel_wrong``: each image under a uniformly drawn other condition (RL, SalUn);
- ``fit``: DDPM training, with a seeded ``condition_dropout`` share of each batch's conditions
  replaced by the null condition so that the model learns the unconditional prediction
  classifier-free guidance needs (``nll`` itself always uses the given conditions);
- ``sample`` / ``generate``: deterministic DDIM samples, judged by the scenario's classifier
  (``judges``) in the same cached pass, for the metrics of ``metrics/generation.py``.

On a style × object grid (``data/styles.py``: a ``GridBundle``) a condition is the pair
(style, object) written as one integer, the U-Net embeds each factor, there are two judges
(a style and an object classifier) and a request forgets one style, one object or one pair
(``forget_factor``).

Images are [0, 1] grey levels in the data and in what ``sample`` returns; the model works on
[−1, 1]."""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from ..data import DataBundle, Split
from ..data.styles import FACTORS, GridBundle
from ..errors import UserError
from ..models.diffusion import Schedule
from ..registry import models
from ..specs import Recipe
from ..train import StepBudget, epochs_of, fit_recipe
from .classification import batch_positions

# The judge: a small CNN trained on the real training pool, every class included (it must
# recognise the forgotten class), once per data set (seed 0); 97.8% test accuracy on digits.
JUDGE_MODEL = "cnn"
JUDGE_RECIPE = Recipe(epochs=15, batch_size=64, lr=0.05)
# What the report shows of each model (``showcase``): this many conditions, the first images
# of each.
SHOWN_CONDITIONS = 4
SHOWN_PER_CONDITION = 4


@dataclass
class Batch:
    inputs: torch.Tensor   # images in [0, 1]
    targets: torch.Tensor  # their conditions
    ids: np.ndarray
    seed: int              # draws the batch's timesteps and noise

    def __len__(self) -> int:
        return len(self.targets)


@dataclass
class Generations:
    """One model's images for a prompt set, and what the judge classifier makes of them."""

    images: torch.Tensor      # (N, C, H, W) in [0, 1]
    conditions: torch.Tensor  # (N,) the class each image was generated for
    predicted: torch.Tensor   # (N,) the judge's class (on a grid: the judges' pair)
    features: torch.Tensor    # (N, F) the judge's penultimate activations (judges': joined)


class GenerationTask:
    """Batches, per-example denoising loss, fresh models, training and guided sampling for one
    image data set and one conditional diffusion architecture.

    ``judges`` is a list of ``(classification task, trained classifier)``: the classifier that
    reads the generated images (metrics only), or on a grid one per factor, in the order of
    ``data.styles.FACTORS`` (see ``judged_data``). ``samples_per_class``, ``sample_steps``,
    ``guidance`` and ``sample_seed`` fix what ``generate`` samples for every model, so models
    are compared on the same starting noise. ``forget_factor`` (a grid only): what a
    request's ``class_id`` names, one "style", one "object" or, None, one (style, object)
    pair as its label. ``width`` and ``levels`` size the U-Net (``models/diffusion.py``)."""

    name = "generation"

    def __init__(self, data: DataBundle, model_name: str, device: str | torch.device = "cpu",
                 judges: list | None = None, timesteps: int = 1000,
                 condition_dropout: float = 0.1, samples_per_class: int = 50,
                 sample_steps: int = 10, guidance: float = 2.0, sample_seed: int = 0,
                 forget_factor: str | None = None, width: int = 16, levels: int = 2):
        self.data = data
        self.model_name = model_name
        self.model_entry = models.get(model_name)
        self.device = torch.device(device)
        self.judges = judges
        self.grid = data if isinstance(data, GridBundle) else None
        if forget_factor not in (None, *FACTORS) or (forget_factor and not self.grid):
            raise UserError(f"forget_factor={forget_factor!r}: a style x object grid data set "
                            f"forgets one of {', '.join(FACTORS)} (or, left out, one pair); "
                            "other data sets forget a class")
        self.forget_factor = forget_factor
        self.schedule = Schedule(timesteps)
        self.condition_dropout = condition_dropout
        self.samples_per_class = samples_per_class
        self.sample_steps = sample_steps
        self.guidance = guidance
        self.sample_seed = sample_seed
        self.network = {"width": width, "levels": levels}  # the U-Net's size
        self._real_features: dict[str, torch.Tensor] = {}

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def null_condition(self) -> int:
        return self.data.num_classes

    # -- batches ---------------------------------------------------------------------------
    def batches(self, split: Split, batch_size: int, shuffle: bool = False,
                seed: int = 0) -> Iterator[Batch]:
        for start, index in batch_positions(len(split), batch_size, shuffle, seed):
            positions = torch.from_numpy(index)
            yield Batch(split.inputs[positions].to(self.device),
                        split.targets[positions].to(self.device), split.ids[index],
                        seed * 100_003 + start)

    def epochs(self, split: Split, batch_size: int, epochs: int, seed: int) -> Iterator[Batch]:
        """Shuffled batches over several epochs, each epoch with its own seed."""
        return epochs_of(lambda e: self.batches(split, batch_size, True, seed * 1000 + e), epochs)

    def forgotten(self, labels: torch.Tensor, class_id: int) -> torch.Tensor:
        """Which ``labels`` a request for ``class_id`` names: that class, or on a grid every
        pair with that value of ``forget_factor`` (that pair where it is None)."""
        if self.forget_factor is None:
            return labels == class_id
        size = self.grid.factor_sizes[FACTORS.index(self.forget_factor)]
        if not 0 <= class_id < size:
            raise UserError(f"unknown {self.forget_factor} {class_id}: they are 0..{size - 1}; "
                            "set class_id to one of them")
        return self.grid.factor_values(labels, self.forget_factor) == class_id

    def join(self, name: str, splits: list[Split]) -> Split:
        return Split(name, torch.cat([s.inputs for s in splits]),
                     torch.cat([s.targets for s in splits]),
                     np.concatenate([s.ids for s in splits]))

    def relabel_wrong(self, split: Split, seed: int) -> Split:
        """Each example's condition paired with the image of a training example of a
        uniformly drawn other class (RL and SalUn): what a wrong label is to a conditional
        generator. SalUn's RL for diffusion pulls ε(x_t | c) toward ε(x_t | c′) for a random
        c′ ≠ c; this is its data-level form. Giving the forget images other conditions
        instead would teach those conditions the forgotten class (UA stayed at the
        original's on digits)."""
        generator = torch.Generator().manual_seed(seed)
        wrong = self.wrong_conditions(split.targets, generator)
        pool = self.data.train
        own = np.isin(pool.ids, split.ids)
        images = []
        for label in wrong.tolist():
            candidates = np.flatnonzero((pool.targets.numpy() == label) & ~own)
            pick = candidates[int(torch.randint(len(candidates), (1,), generator=generator))]
            images.append(pool.inputs[pick])
        return Split(split.name + "-relabelled", torch.stack(images), split.targets, split.ids)

    def wrong_conditions(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A uniformly drawn other class for each label; on a grid, the same pair with another
        value of the forgotten factor (another style for a pair request), so that the other
        factor is kept."""
        if self.grid is None:
            shift = torch.randint(1, self.num_classes, labels.shape, generator=generator)
            return (labels + shift) % self.num_classes
        styles, objects = (self.grid.factor_values(labels, f) for f in FACTORS)
        if self.forget_factor == "object":
            shift = torch.randint(1, self.grid.objects, labels.shape, generator=generator)
            return self.grid.label(styles, (objects + shift) % self.grid.objects)
        shift = torch.randint(1, len(self.grid.styles), labels.shape, generator=generator)
        return self.grid.label((styles + shift) % len(self.grid.styles), objects)

    def retraining_set(self, retain: Split) -> Split:
        return retain

    # -- the denoising loss ----------------------------------------------------------------
    def noised(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_t, t, ε) for the batch's images, t and ε drawn from the batch's seed."""
        generator = torch.Generator().manual_seed(batch.seed)
        t = torch.randint(0, self.schedule.timesteps, (len(batch),), generator=generator)
        noise = torch.randn(batch.inputs.shape, generator=generator)
        t, noise = t.to(self.device), noise.to(self.device)
        return self.schedule.noised(batch.inputs * 2 - 1, noise, t), t, noise

    def nll(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Per-example noise-prediction MSE under the batch's conditions."""
        x_t, t, noise = self.noised(batch)
        return (model(x_t, t, batch.targets) - noise).pow(2).flatten(1).mean(1)

    # -- models ----------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """What trained weights depend on besides architecture, recipe and seed: the data,
        the noise schedule and the condition dropout."""
        digest = hashlib.sha256(self.data.fingerprint().encode())
        digest.update(f"{self.schedule.timesteps}/{self.condition_dropout}".encode())
        if self.network != {"width": 16, "levels": 2}:  # the default size keeps its old keys
            digest.update(f"/{self.network['width']}x{self.network['levels']}".encode())
        return digest.hexdigest()[:16]

    def fresh_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        factors = {"factors": self.grid.factor_sizes} if self.grid else {}
        model = self.model_entry.obj(self.data.input_shape, self.data.num_classes, **factors,
                                     **self.network)
        return model.to(self.device).eval()

    def fit(self, model: nn.Module, split: Split, recipe: Recipe, seed: int,
            budget: StepBudget | None = None,
            after_batch: Callable[[Batch], None] | None = None) -> nn.Module:
        """Train ``model`` in place on ``split`` with ``recipe`` (DDPM's loss, cosine decay
        unless ``recipe.schedule`` is "constant"), dropping conditions to the null one."""
        return fit_recipe(_DroppingConditions(self), model, split, recipe, seed, budget,
                          after_batch,
                          lambda optimizer, total: torch.optim.lr_scheduler.CosineAnnealingLR(
                              optimizer, T_max=total))

    # -- sampling --------------------------------------------------------------------------
    def prompts(self, conditions, n: int, seed: int) -> Split:
        """``n`` prompts for each condition: the condition and its starting noise x_T, drawn
        from ``seed``."""
        targets = torch.as_tensor(list(conditions), dtype=torch.long).repeat_interleave(n)
        noise = torch.randn((len(targets), *self.data.input_shape),
                            generator=torch.Generator().manual_seed(seed))
        return Split("prompts", noise, targets, np.arange(len(targets)))

    @torch.no_grad()
    def denoise(self, model: nn.Module, prompts: Split, steps: int, guidance: float,
                batch_size: int = 500) -> torch.Tensor:
        """DDIM images in [0, 1] for every prompt, in order (on the CPU)."""
        parts = [(self.schedule.ddim(model, b.inputs, b.targets, steps, guidance) + 1) / 2
                 for b in self.batches(prompts, batch_size)]
        return torch.cat(parts).cpu()

    def sample(self, model: nn.Module, conditions, n: int, seed: int, steps: int | None = None,
               guidance: float | None = None) -> torch.Tensor:
        """``n`` images for each of ``conditions`` (grouped by condition), deterministic
        under ``seed``: DDIM with ``steps`` steps and guidance scale ``guidance`` (default:
        the task's)."""
        return self.denoise(model, self.prompts(conditions, n, seed),
                            steps or self.sample_steps,
                            self.guidance if guidance is None else guidance)

    def generate(self, model: nn.Module, prompts: Split) -> Generations:
        """The images of ``prompts`` (the scenario's "prompts" split, "grid_prompts" on a
        grid) and the judges' reading of them: what the inference cache keeps, once per
        model."""
        images = self.denoise(model, prompts, self.sample_steps, self.guidance)
        generated = Split("generated", images, prompts.targets.cpu(), prompts.ids)
        predicted = [task.predict_logits(judge, generated).argmax(1) for task, judge in self.judges]
        return Generations(images, generated.targets,
                           self.grid.label(*predicted) if self.grid else predicted[0],
                           self.judge_features(generated))

    def showcase(self, made: Generations, class_id: int) -> tuple[list[str], np.ndarray]:
        """A few of ``made``'s images for the report: the first ``SHOWN_PER_CONDITION`` of
        each of ``SHOWN_CONDITIONS`` conditions, as (their titles, 8-bit grey levels shaped
        (conditions, images, C, H, W)). A class request shows the forgotten class, then the
        classes after it; on a grid, a style (object) request shows the forgotten style
        (object) with the first objects (styles), a pair request the pair, then its style
        with the objects after it."""
        if self.grid is None:
            conditions = [(class_id + i) % self.num_classes
                          for i in range(min(SHOWN_CONDITIONS, self.num_classes))]
        elif self.forget_factor == "object":
            conditions = [self.grid.label(style, class_id)
                          for style in range(min(SHOWN_CONDITIONS, len(self.grid.styles)))]
        else:
            style = class_id if self.forget_factor == "style" else class_id // self.grid.objects
            first = 0 if self.forget_factor == "style" else class_id % self.grid.objects
            conditions = [self.grid.label(style, (first + i) % self.grid.objects)
                          for i in range(min(SHOWN_CONDITIONS, self.grid.objects))]
        forgotten = self.forgotten(torch.tensor(conditions), class_id).tolist()
        titles = [self.condition_name(c) + (" (forgotten)" if gone else "")
                  for c, gone in zip(conditions, forgotten)]
        rows = [np.flatnonzero(made.conditions.numpy() == c)[:SHOWN_PER_CONDITION]
                for c in conditions]
        images = (made.images[torch.from_numpy(np.stack(rows))] * 255).round()
        return titles, images.clamp(0, 255).to(torch.uint8).numpy()

    def condition_name(self, condition: int) -> str:
        """A class's number, or on a grid the pair's style and object ("bold 3")."""
        if self.grid is None:
            return str(condition)
        style, obj = (int(self.grid.factor_values(condition, f)) for f in FACTORS)
        return f"{self.grid.styles[style]} {obj}"

    def judge_features(self, split: Split) -> torch.Tensor:
        return torch.cat([task.features(judge, split) for task, judge in self.judges], dim=1)

    def real_features(self, split: Split) -> torch.Tensor:
        """The judges' penultimate features of a split of real images (computed once)."""
        if split.name not in self._real_features:
            self._real_features[split.name] = self.judge_features(split)
        return self._real_features[split.name]

    @property
    def prompts_name(self) -> str:
        """The scenario's split of prompts: its name tells the class metrics from the grid's."""
        return "grid_prompts" if self.grid else "prompts"


def judged_data(data: DataBundle) -> list[DataBundle]:
    """What each judge classifier learns: the data set's classes, or on a grid each factor."""
    if isinstance(data, GridBundle):
        return [data.factor_view(factor) for factor in FACTORS]
    return [data]


class _DroppingConditions:
    """What ``fit`` hands the shared training loop: the task's batches with a seeded
    ``condition_dropout`` share of their conditions set to the null condition."""

    def __init__(self, task: GenerationTask):
        self.task = task

    def epochs(self, split: Split, batch_size: int, epochs: int, seed: int) -> Iterator[Batch]:
        for batch in self.task.epochs(split, batch_size, epochs, seed):
            generator = torch.Generator().manual_seed(batch.seed + 1)
            drop = (torch.rand(len(batch), generator=generator)
                    < self.task.condition_dropout).to(batch.targets.device)
            null = torch.full_like(batch.targets, self.task.null_condition)
            yield dataclasses.replace(batch, targets=torch.where(drop, null, batch.targets))

    def nll(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return self.task.nll(model, batch)
