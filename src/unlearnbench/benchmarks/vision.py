"""Built-in image-classification benchmarks."""
from ..registry import benchmarks
from ..specs import BenchmarkSpec, ForgetSpec, Recipe

DIGITS_RECIPE = Recipe(epochs=20, batch_size=64, lr=0.05)
MNIST_RECIPE = Recipe(epochs=5, batch_size=128, lr=0.05)
# LAF's published rates are for MNIST's thousands of forget examples; digits' ~150 give ~70
# steps, where they leave the model unchanged: 40 times larger rates (see docs/methods.md).
DIGITS_METHOD_PARAMS = {"laf": {"lr_ue": 2e-3, "lr_ra": 4e-3}}
# The forget sets of MNIST hold thousands of examples (80 GA steps an epoch against digits'
# 2): GA at digits' lr 2e-3 diverges there (NaN by step ~110), so MNIST uses OPTML's 1e-4.
# Fine-tuning methods get one epoch: a fifth of the 5-epoch recipe, as OPTML's FT is a small
# fraction of retraining (10 of 182 epochs); with 5 they would cost as much as retraining.
# The others were chosen on mnist-random10 and mnist-class, seed 0 (see each method's docstring):
# one epoch of ~700 steps needs a gentler NegGrad+ (beta 0.999; 0.995 wrecks mnist-class) and
# OPTML's l1 weight 5e-4.
MNIST_METHOD_PARAMS = {
    "ga": {"lr": 1e-4}, "finetune": {"epochs": 1}, "rl": {"epochs": 1},
    "neggrad_plus": {"epochs": 1, "beta": 0.999}, "l1_sparse": {"epochs": 1, "gamma": 5e-4},
    "prune_l1": {"epochs": 1, "gamma": 5e-4}, "salun": {"epochs": 1}, "cf_k": {"epochs": 1},
    "eu_k": {"epochs": 2},
    # SCRUB's unbounded max-steps diverge on MNIST's 250 forget batches an epoch (NaN by step
    # 29): fewer, larger batches and clipped gradients. The rest: the published settings
    # (Bad Teacher, UNSIR's 30% retain subset) or gentle enough for both forget kinds.
    "scrub": {"epochs": 2, "msteps": 2, "batch_size": 128, "forget_batch_size": 128,
              "max_grad_norm": 5.0},
    "bad_teacher": {"epochs": 1, "retain_fraction": 0.3},
    "boundary_shrink": {"epochs": 1, "lr": 1e-4}, "boundary_expand": {"epochs": 1, "lr": 1e-4},
    "unsir": {"retain_fraction": 0.3}, "amnesiac": {"repair_epochs": 2},
    # Per-example gradients cost 1-3 ms each on MNIST: subsample them (ssd_det keeps 4096,
    # fewer gave class gaps of 15-29); Fisher noise at 3e-7 (1e-6 gives random gap 3.2).
    "ssd_det": {"alpha": 4.0}, "fisher": {"alpha": 3e-7, "max_examples": 1024},
    "iu": {"max_examples": 2048},
}


@benchmarks.register("digits-random10", dataset="digits")
def digits_random10() -> BenchmarkSpec:
    """scikit-learn digits, MLP; forget a random 10% of the training set."""
    return BenchmarkSpec("digits-random10", "digits", "mlp", DIGITS_RECIPE,
                         ForgetSpec("random", 0.1), method_params=DIGITS_METHOD_PARAMS)


@benchmarks.register("digits-class", dataset="digits")
def digits_class() -> BenchmarkSpec:
    """scikit-learn digits, MLP; forget every training example of class 3."""
    return BenchmarkSpec("digits-class", "digits", "mlp", DIGITS_RECIPE,
                         ForgetSpec("class", None, class_id=3), method_params=DIGITS_METHOD_PARAMS)


@benchmarks.register("mnist-random10", dataset="mnist")
def mnist_random10() -> BenchmarkSpec:
    """MNIST (fetch first: unlearnbench data fetch mnist), MLP; forget a random 10%."""
    return BenchmarkSpec("mnist-random10", "mnist", "mlp", MNIST_RECIPE, ForgetSpec("random", 0.1),
                         method_params=MNIST_METHOD_PARAMS)


@benchmarks.register("mnist-class", dataset="mnist")
def mnist_class() -> BenchmarkSpec:
    """MNIST (fetch first: unlearnbench data fetch mnist), MLP; forget every example of class 3."""
    return BenchmarkSpec("mnist-class", "mnist", "mlp", MNIST_RECIPE,
                         ForgetSpec("class", None, class_id=3), method_params=MNIST_METHOD_PARAMS)


@benchmarks.register("fashion-random10", dataset="fashion-mnist")
def fashion_random10() -> BenchmarkSpec:
    """Fashion-MNIST (Debian's dataset-fashion-mnist files), small CNN; forget a random 10%."""
    return BenchmarkSpec("fashion-random10", "fashion-mnist", "cnn", MNIST_RECIPE,
                         ForgetSpec("random", 0.1), method_params=MNIST_METHOD_PARAMS)


@benchmarks.register("cifar10-random10", dataset="cifar10")
def cifar10_random10() -> BenchmarkSpec:
    """CIFAR-10 (python-pickle batches), ResNet-18; forget a random 10% (the SalUn setting)."""
    return BenchmarkSpec("cifar10-random10", "cifar10", "resnet18",
                         Recipe(epochs=30, batch_size=128, lr=0.1), ForgetSpec("random", 0.1),
                         method_params=MNIST_METHOD_PARAMS)


@benchmarks.register("digits-subclass", dataset="digits")
def digits_subclass() -> BenchmarkSpec:
    """scikit-learn digits, MLP; forget the largest of 3 writing-style clusters of digit 7."""
    return BenchmarkSpec("digits-subclass", "digits", "mlp", DIGITS_RECIPE,
                         ForgetSpec("subclass", None, class_id=7, groups=3, group=0))


@benchmarks.register("digits-labelswap", dataset="digits")
def digits_labelswap() -> BenchmarkSpec:
    """scikit-learn digits, MLP; 40% of 3s and 8s swap labels, half of those known and forgotten."""
    return BenchmarkSpec("digits-labelswap", "digits", "mlp", DIGITS_RECIPE,
                         ForgetSpec("corrective", None, manipulation="label_swap", classes=(3, 8),
                                    manipulated_fraction=0.4, known_fraction=0.5))


@benchmarks.register("digits-backdoor", dataset="digits")
def digits_backdoor() -> BenchmarkSpec:
    """scikit-learn digits, MLP; 10% of the images get a trigger patch labelled 0; half known."""
    return BenchmarkSpec("digits-backdoor", "digits", "mlp", DIGITS_RECIPE,
                         ForgetSpec("corrective", None, manipulation="backdoor", classes=(0,),
                                    manipulated_fraction=0.1, known_fraction=0.5))


@benchmarks.register("digits-sequential", dataset="digits")
def digits_sequential() -> BenchmarkSpec:
    """scikit-learn digits, MLP; a random 15% forgotten in 3 successive requests of 5%."""
    return BenchmarkSpec("digits-sequential", "digits", "mlp", DIGITS_RECIPE,
                         ForgetSpec("random", 0.15, requests=3))


@benchmarks.register("digits-hardest10", dataset="digits")
def digits_hardest10() -> BenchmarkSpec:
    """scikit-learn digits, MLP; forget the 10% hardest for GA (worst case, from a 30% pool).

    Every method meets GA's worst case here; a method's own worst case is the variant
    ``digits-random10[forget_kind=hardest,against=METHOD]``."""
    return BenchmarkSpec("digits-hardest10", "digits", "mlp", DIGITS_RECIPE,
                         ForgetSpec("hardest", 0.1, against="ga"))


# The CNN costs ~45 s an epoch on MNIST on one core, so its recipe is 2 epochs (99% test
# accuracy already).
MNIST_CNN_RECIPE = Recipe(epochs=2, batch_size=128, lr=0.05)


@benchmarks.register("mnist-cnn-random10", dataset="mnist")
def mnist_cnn_random10() -> BenchmarkSpec:
    """MNIST (fetch first: unlearnbench data fetch mnist), small CNN; forget a random 10%."""
    return BenchmarkSpec("mnist-cnn-random10", "mnist", "cnn", MNIST_CNN_RECIPE,
                         ForgetSpec("random", 0.1), method_params=MNIST_METHOD_PARAMS)


@benchmarks.register("mnist-cnn-class", dataset="mnist")
def mnist_cnn_class() -> BenchmarkSpec:
    """MNIST (fetch first: unlearnbench data fetch mnist), small CNN; forget every example of class 3."""
    return BenchmarkSpec("mnist-cnn-class", "mnist", "cnn", MNIST_CNN_RECIPE,
                         ForgetSpec("class", None, class_id=3), method_params=MNIST_METHOD_PARAMS)
