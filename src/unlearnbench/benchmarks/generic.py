"""Benchmarks on a classification data set of your own (formats: ``data/generic.py``).

``npz-random10[path=animals.npz,name=animals]`` forgets a random 10%,
``npz-class[path=animals.npz,class_id=3]`` a whole class; ``imagefolder-*``, ``hf-*`` and
``table-*`` are the same on a folder of class sub-folders, a Hugging Face ``save_to_disk``
directory and a parquet/CSV file. Each is recorded as ``npz-random10[data=animals@HASH]``:
the data's content, not its path (see ``scenarios.get_spec``).

They start from neutral defaults, not from another data set's: model ``mlp`` (``model=cnn``
or ``model=resnet18`` for images), the library's default recipe (``Recipe()``: 20 epochs,
batch size 64, SGD with learning rate 0.05, momentum 0.9, weight decay 5e-4, fp32; each
field a variant key, ``epochs=5,lr=0.01``) and every method's own default hyperparameters
(no ``method_params``). ``unlearnbench tune`` fits the hyperparameters to the data."""
from ..registry import benchmarks
from ..specs import BenchmarkSpec, ForgetSpec, Recipe

NEUTRAL_RECIPE = Recipe()
FORMATS = {"npz": "Your .npz file (path=FILE)",
           "imagefolder": "Your images in class sub-folders (path=DIR)",
           "hf": "Your Hugging Face save_to_disk directory (path=DIR)",
           "table": "Your parquet or CSV file (path=FILE)"}
DEFAULTS = ("MLP, the default recipe (20 epochs, batch 64, SGD lr 0.05) and methods' own "
            "defaults; tune them with `unlearnbench tune`")


def register(data_format: str, what: str) -> None:
    def random10() -> BenchmarkSpec:
        return BenchmarkSpec(f"{data_format}-random10", data_format, "mlp", NEUTRAL_RECIPE,
                             ForgetSpec("random", 0.1))

    def whole_class() -> BenchmarkSpec:
        return BenchmarkSpec(f"{data_format}-class", data_format, "mlp", NEUTRAL_RECIPE,
                             ForgetSpec("class", None))

    random10.__doc__ = f"{what}; forget a random 10%. {DEFAULTS}."
    whole_class.__doc__ = f"{what}; forget class class_id=N. {DEFAULTS}."
    benchmarks.register(f"{data_format}-random10", dataset=data_format)(random10)
    benchmarks.register(f"{data_format}-class", dataset=data_format)(whole_class)


for name, description in FORMATS.items():
    register(name, description)
