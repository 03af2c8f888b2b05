"""A style × object grid of 8×8 digits, an UnlearnCanvas-like data set for the generative track.

UnlearnCanvas (Zhang et al. 2024) draws 20 object classes in 60 artistic styles and asks a
generator to forget one style, one object or one (style, object) pair. Here the objects are
the ten digits of scikit-learn's data set and the styles are deterministic image
transformations chosen so that a small CNN tells them apart and a small DDPM learns them:

- ``plain``: the digit as it is;
- ``inverted``: 1 − x, a light background and a dark stroke;
- ``bold``: the stroke thickened (each pixel the largest of itself and its 4 neighbours);
- ``blurred``: a 3×3 box blur, a soft, wider and fainter stroke;
- ``striped``: a texture overlay, every other row of the background set to 0.5;
- ``framed``: a one-pixel border at full intensity around the digit.

On 28×28 MNIST (``canvas-mnist``) the bold, blurred and framed changes span two pixels.

Every digit image appears in every style. A grid example's label is the pair (style, object)
written as one integer, ``style * 10 + digit``, so every split, batch and method works on
integer labels as before; ``GridBundle.factor_values`` reads the pair back."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..registry import datasets
from . import DataBundle, Split, make_split
from .digits import load_digits
from .mnist import load_mnist


def _neighbours(x: np.ndarray) -> list[np.ndarray]:
    """The image shifted by one pixel up, down, left and right, zero-padded."""
    padded = np.pad(x, 1)
    return [padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]


def _scale(x: np.ndarray) -> int:
    """How many pixels a style's stroke change spans: 1 on 8x8 digits, 2 on 28x28 MNIST (a
    one-pixel change is within the stroke widths MNIST's writers already vary by)."""
    return max(1, x.shape[0] // 12)


def bold(x: np.ndarray) -> np.ndarray:
    for _ in range(_scale(x)):
        x = np.maximum.reduce([x, *_neighbours(x)])
    return x


def blurred(x: np.ndarray) -> np.ndarray:
    k = 2 * _scale(x) + 1
    padded = np.pad(x, k // 2)
    return sum(padded[i:i + x.shape[0], j:j + x.shape[1]] for i in range(k) for j in range(k)) / k**2


def striped(x: np.ndarray) -> np.ndarray:
    stripes = np.zeros_like(x)
    stripes[::2] = 0.5
    return np.maximum(x, stripes)


def framed(x: np.ndarray) -> np.ndarray:
    width = _scale(x)
    frame = np.ones_like(x)
    frame[width:-width, width:-width] = 0
    return np.maximum(x, frame)


STYLES = {
    "plain": lambda x: x,
    "inverted": lambda x: 1.0 - x,
    "bold": bold,
    "blurred": blurred,
    "striped": striped,
    "framed": framed,
}
FACTORS = ("style", "object")


@dataclass(frozen=True)
class GridBundle(DataBundle):
    """A data set whose label is a pair of factors, (style, object), written as one integer
    ``style * objects + object``; ``num_classes`` counts the pairs."""

    styles: tuple[str, ...]
    objects: int

    @property
    def factor_sizes(self) -> tuple[int, int]:
        return len(self.styles), self.objects

    def factor_values(self, labels, factor: str):
        """Each label's value of ``factor`` ("style" or "object")."""
        return labels // self.objects if factor == "style" else labels % self.objects

    def label(self, style, obj):
        return style * self.objects + obj

    def factor_view(self, factor: str) -> DataBundle:
        """The same images labelled by one factor only (what that factor's classifier learns)."""
        def relabel(split: Split) -> Split:
            return dataclasses.replace(split, targets=self.factor_values(split.targets, factor))

        return DataBundle(f"{self.name}-{factor}", relabel(self.train), relabel(self.validation),
                          relabel(self.test), self.factor_sizes[FACTORS.index(factor)])


def style_grid(split: Split, name: str, objects: int) -> Split:
    """Every image of ``split`` in every style, style by style (ids: style * len + row)."""
    images = split.inputs[:, 0].numpy()
    styled = [np.stack([transform(image) for image in images]) for transform in STYLES.values()]
    labels = [style * objects + split.targets.numpy() for style in range(len(STYLES))]
    return make_split(name, np.concatenate(styled)[:, None].clip(0, 1), np.concatenate(labels))


@datasets.register("canvas-digits", source="scikit-learn digits (bundled) in 6 drawn styles")
def load_canvas_digits() -> GridBundle:
    """scikit-learn digits in 6 styles: 6 × 10 (style, object) classes of 8x8 grey images,
    every digit image in every style (the digits' train/validation/test split, styled)."""
    digits = load_digits()
    return GridBundle("canvas-digits", style_grid(digits.train, "train", 10),
                      style_grid(digits.validation, "validation", 10),
                      style_grid(digits.test, "test", 10), len(STYLES) * 10,
                      tuple(STYLES), 10)


# How many MNIST images per digit each canvas-mnist split keeps (the first ones of the
# published splits): 6 styles x 10 digits x 100 = 6000 training images.
CANVAS_MNIST_PER_DIGIT = {"train": 100, "validation": 20, "test": 50}


def first_per_class(split: Split, per_class: int) -> Split:
    """The first ``per_class`` examples of each class, in their original order."""
    labels = split.targets.numpy()
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class]
                                   for c in np.unique(labels)]))
    return split.subset(keep)


@datasets.register("canvas-mnist", source="MNIST (see mnist) in 6 drawn styles, a subset")
def load_canvas_mnist(root: str | None = None) -> GridBundle:
    """MNIST in 6 styles: 6 × 10 (style, object) classes of 28x28 grey images, the first
    ``CANVAS_MNIST_PER_DIGIT`` images per digit of each published split, each in every style."""
    mnist = load_mnist(root)
    splits = [style_grid(first_per_class(split, CANVAS_MNIST_PER_DIGIT[split.name]), split.name,
                         10) for split in (mnist.train, mnist.validation, mnist.test)]
    return GridBundle("canvas-mnist", *splits, len(STYLES) * 10, tuple(STYLES), 10)
