"""Built-in regression benchmarks (``tasks/regression.py``; Tarun et al., ICML 2023, "Deep
Regression Unlearning", forget a contiguous target range: a cohort)."""
from ..registry import benchmarks
from ..specs import BenchmarkSpec, ForgetSpec, Recipe

# Adam as in the paper (its originals: Adam lr 0.01, 100 epochs); on 300 standardised
# diabetes patients lr 3e-3 for 100 epochs (1,000 steps) fits the training pool well below
# the test error, so there is something for unlearning to remove.
DIABETES_RECIPE = Recipe(epochs=100, batch_size=32, lr=3e-3, optimizer="adam", weight_decay=0.0)
# SSD dampens the weights more important to the forget set than α times to the retain set;
# a regressor fits its (memorised) forget examples as closely as the rest, so at the
# classifiers' α (10, or 5 for SSD-Det) no weight qualifies and the model is returned
# unchanged (seed 0, every diabetes request). α = 1 selects them (random10: forget MSE 0.04
# -> 0.63 / 0.40, retrained 0.92).
DIABETES_METHOD_PARAMS = {"ssd": {"alpha": 1.0}, "ssd_det": {"alpha": 1.0}}
DIGITS_SLANT_RECIPE = Recipe(epochs=30, batch_size=64, lr=3e-3, optimizer="adam",
                             weight_decay=0.0)
# On the slant CNN, as on diabetes, SSD selects no weight at the classifiers' α. GA's MSE has
# no upper bound: at its default rate the ascent runs away (forget MSE ~1e16, seeds 0-2), so
# its gradient norm is clipped at 1 as on the generative grid.
DIGITS_SLANT_METHOD_PARAMS = {**DIABETES_METHOD_PARAMS, "ga": {"max_grad_norm": 1.0}}


@benchmarks.register("diabetes-random10", dataset="diabetes")
def diabetes_random10() -> BenchmarkSpec:
    """scikit-learn diabetes, regression MLP (MSE); forget a random 10% of the patients."""
    return BenchmarkSpec("diabetes-random10", "diabetes", "mlp_regressor", DIABETES_RECIPE,
                         ForgetSpec("random", 0.1), task="regression",
                         method_params=DIABETES_METHOD_PARAMS)


@benchmarks.register("diabetes-range", dataset="diabetes")
def diabetes_range() -> BenchmarkSpec:
    """scikit-learn diabetes, regression MLP; forget every patient whose progression is >= 200.

    The regression analogue of forgetting a class (the paper's cohort: a target range); about
    29% of the training pool."""
    return BenchmarkSpec("diabetes-range", "diabetes", "mlp_regressor", DIABETES_RECIPE,
                         ForgetSpec("dataset", None), {"forget": "target", "low": 200.0},
                         task="regression", method_params=DIABETES_METHOD_PARAMS)


@benchmarks.register("diabetes-group", dataset="diabetes")
def diabetes_group() -> BenchmarkSpec:
    """scikit-learn diabetes, regression MLP; forget every patient aged 60 or over (~23%).

    A group defined by a feature, not by the target: the model must lose what it learned of
    these patients while their targets spread over the whole range."""
    return BenchmarkSpec("diabetes-group", "diabetes", "mlp_regressor", DIABETES_RECIPE,
                         ForgetSpec("dataset", None), {"forget": "age", "low": 60.0},
                         task="regression", method_params=DIABETES_METHOD_PARAMS)


@benchmarks.register("digits-slant-range", dataset="digits-slant")
def digits_slant_range() -> BenchmarkSpec:
    """scikit-learn digits, regression CNN predicting the digit's slant; forget the ~15% of
    training images that lean most (shear >= 0.15).

    The slant (the shear of the ink's second moments, ``data.regression.slant``) is a ratio of
    pixel moments that no weighted pixel sum gives, uncorrelated with the amount of ink, and
    it varies within every digit class, so the model has to read the shape."""
    return BenchmarkSpec("digits-slant-range", "digits-slant", "cnn_regressor",
                         DIGITS_SLANT_RECIPE, ForgetSpec("dataset", None),
                         {"forget": "slant", "low": 0.15}, task="regression",
                         method_params=DIGITS_SLANT_METHOD_PARAMS)
