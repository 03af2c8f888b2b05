"""A data set and a benchmark from outside the package: four Gaussian blobs in 2-D."""
import numpy as np

from unlearnbench.data import carve_validation
from unlearnbench.registry import benchmarks, datasets
from unlearnbench.specs import BenchmarkSpec, ForgetSpec, Recipe


@datasets.register("blobs")
def load_blobs():
    """Four Gaussian blobs in 2-D: 400 training points (a tenth kept for validation), 200 test."""
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [3, 0], [0, 3], [3, 3]], dtype=np.float32)
    labels = rng.integers(0, 4, size=600)
    points = centres[labels] + rng.normal(0, 0.8, size=(600, 2)).astype(np.float32)
    return carve_validation("blobs", points[:400], labels[:400], points[400:], labels[400:],
                            num_classes=4)


@benchmarks.register("blobs-random10", dataset="blobs")
def blobs_random10():
    """Synthetic blobs, MLP; forget a random 10% of the training set."""
    recipe = Recipe(epochs=10, batch_size=32, lr=0.05)
    return BenchmarkSpec("blobs-random10", "blobs", "mlp", recipe, ForgetSpec("random", 0.1))
