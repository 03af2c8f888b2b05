"""The generic ``.npz`` route and the built-in Fashion-MNIST loader agree on the same rows:
with the built-in's model and recipe as variant keys, the generic benchmark loads the same
splits in the same order, forgets the same examples and trains the same original model."""
import gzip
import struct

import numpy as np
import torch

from unlearnbench.cache import ModelCache
from unlearnbench.data.fashion_mnist import FILES
from unlearnbench.scenarios import build_scenario

BUILTIN_RECIPE = "model=cnn,epochs=5,batch_size=128"  # fashion-random10's (its lr is the neutral one)


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def tiny_copies(tmp_path):
    """10 training and 2 test images a class, as fashion.npz and as the four idx files."""
    rng = np.random.default_rng(0)
    parts = {}
    for part, per_class in (("train", 10), ("test", 2)):
        y = np.repeat(np.arange(10), per_class)
        rng.shuffle(y)
        # a bright band whose row is the class, on noise: learnable in a few steps
        x = rng.integers(0, 60, size=(len(y), 28, 28), dtype=np.uint8)
        x[np.arange(len(y)), 2 * y + 4] = 255
        parts[part] = (x, y.astype(np.uint8))
    np.savez(tmp_path / "tiny.npz", x=np.concatenate([parts["train"][0], parts["test"][0]]),
             y=np.concatenate([parts["train"][1], parts["test"][1]]),
             split=np.array(["train"] * 100 + ["test"] * 20))
    (tmp_path / "idx").mkdir()
    for part, (images, labels) in FILES.items():
        write_idx(tmp_path / "idx" / f"{images}.gz", parts[part][0])
        write_idx(tmp_path / "idx" / f"{labels}.gz", parts[part][1])


def weights(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_generic_route_gives_the_builtin_forget_set_and_model(tmp_path):
    tiny_copies(tmp_path)
    for seed in (0, 1):
        builtin = build_scenario(f"fashion-random10[root={tmp_path / 'idx'}]", seed,
                                 ModelCache(tmp_path / "cache-builtin"))
        generic = build_scenario(
            f"npz-random10[path={tmp_path / 'tiny.npz'},name=tiny,{BUILTIN_RECIPE}]", seed,
            ModelCache(tmp_path / "cache-generic"))
        for split in ("forget", "retain", "validation", "test"):
            ours, theirs = generic.splits[split], builtin.splits[split]
            # the same images in the same order: pixels within half a grey level (1/510)
            torch.testing.assert_close(ours.inputs, theirs.inputs, rtol=0, atol=1 / 510)
            assert torch.equal(ours.targets, theirs.targets), (seed, split)
        # Same data, order, model, recipe and seed: the same weights (of size ~0.3) up to
        # float32 rounding, which the two routes may do differently (the convolution kernel
        # follows the inputs' memory layout): ~1e-7 after these 5 steps, 1e-5 leaves margin.
        for role in ("original", "reference"):
            ours, theirs = weights(getattr(generic, role)), weights(getattr(builtin, role))
            torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
