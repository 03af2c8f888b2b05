"""A user's own model for a deletion request: loading it with one-line errors, a freshly
initialised copy of its architecture, and saving the unlearned model in the form it came in.

Three forms (``--model``):

- a PyTorch classifier given as ``FILE.py:CLASS,WEIGHTS.safetensors`` (``CLASS()`` built with no
  arguments), or as a directory holding ``model.py``, ``model.safetensors`` and ``model.json``
  (``{"class": "Net", "kwargs": {...}}``: the constructor's keyword arguments). The unlearned
  model is saved as such a directory;
- a TorchScript file (``torch.jit.save``), saved back as ``model.pt``;
- a Hugging Face causal LM directory (``config.json``, safetensors weights, tokenizer files),
  loaded offline and saved back with ``save_pretrained``.

The module file is imported (run as Python) and a TorchScript file runs its TorchScript code:
give only models you trust, as with any code of your own. Weights are read with safetensors,
never unpickled."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError

MODULE_FILE, MODULE_WEIGHTS, MODULE_CONFIG = "model.py", "model.safetensors", "model.json"
TORCHSCRIPT_FILE = "model.pt"
FORMS = ("FILE.py:CLASS,WEIGHTS.safetensors, a directory with model.py, model.safetensors and "
         "model.json, a TorchScript file, or a Hugging Face model directory (config.json)")


@dataclass
class UserModel:
    kind: str            # "module", "torchscript" or "hf"
    model: nn.Module
    name: str            # the file or directory name: the store's benchmark is user:<name>
    files: list[Path]    # the files that define the model (hashed in the audit)
    module_class: type | None = None
    module_file: Path | None = None
    kwargs: dict = field(default_factory=dict)
    tokenizer: object = None

    @property
    def task(self) -> str:
        return "language" if self.kind == "hf" else "classification"

    def fresh(self, seed: int) -> nn.Module:
        """The architecture with new random weights (what retraining, Bad Teacher's teacher or
        EU-k start from)."""
        torch.manual_seed(seed)
        if self.kind == "module":
            return self.module_class(**self.kwargs)
        if self.kind == "hf":
            from transformers import AutoModelForCausalLM

            return AutoModelForCausalLM.from_config(self.model.config).eval()
        raise UserError("a TorchScript model cannot be re-initialised, so this needs the model as "
                        "FILE.py:CLASS,WEIGHTS.safetensors (retraining and methods that start "
                        "from fresh weights)")


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0].strip() if text else ''}".strip()


def load_user_model(reference: str, device: str = "cpu") -> UserModel:
    """Load ``reference`` in one of the three forms (see the module docstring)."""
    path = Path(reference).expanduser()
    if not path.exists() and ".py:" in reference:
        return _load_module_reference(reference, device)
    if path.is_dir():
        if (path / "config.json").is_file():
            return _load_hf(path, device)
        if (path / MODULE_CONFIG).is_file():
            return _load_module_directory(path, device)
        raise UserError(f"{path} holds neither config.json (a Hugging Face model) nor "
                        f"{MODULE_CONFIG} (a PyTorch module); give {FORMS}")
    if not path.exists():
        raise UserError(f"model {reference!r} does not exist; give {FORMS}")
    if path.suffix == ".safetensors":
        raise UserError(f"{path} holds weights only; name the module too: "
                        f"FILE.py:CLASS,{reference}")
    if path.suffix == ".py":
        raise UserError(f"name the class and the weights: {reference}:CLASS,WEIGHTS.safetensors")
    return _load_torchscript(path, device)


def _load_module_reference(reference: str, device: str) -> UserModel:
    head, comma, weights = reference.rpartition(",")
    file, colon, class_name = head.rpartition(":")
    if not comma or not colon or not file or not class_name or not weights:
        raise UserError(f"model {reference!r}: write FILE.py:CLASS,WEIGHTS.safetensors")
    return _load_module(Path(file).expanduser(), class_name, {}, Path(weights).expanduser(),
                        Path(file).name, device)


def _load_module_directory(directory: Path, device: str) -> UserModel:
    config_path = directory / MODULE_CONFIG
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{config_path} is not readable JSON ({one_line(exc)})") from None
    if not isinstance(config, dict) or not isinstance(config.get("class"), str) \
            or not isinstance(config.get("kwargs", {}), dict):
        raise UserError(f'{config_path} must hold {{"class": "NAME", "kwargs": {{...}}}}')
    return _load_module(directory / MODULE_FILE, config["class"], config.get("kwargs", {}),
                        directory / MODULE_WEIGHTS, directory.name, device)


def _load_module(file: Path, class_name: str, kwargs: dict, weights: Path, name: str,
                 device: str) -> UserModel:
    for needed in (file, weights):
        if not needed.is_file():
            raise UserError(f"model file {str(needed)!r} does not exist")
    module = _import(file)
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        found = sorted(n for n, v in vars(module).items() if isinstance(v, type)
                       and issubclass(v, nn.Module) and v.__module__ == module.__name__)
        raise UserError(f"{file} has no nn.Module class {class_name!r}; it defines: "
                        f"{', '.join(found) or 'none'}")
    try:
        model = cls(**kwargs)
    except Exception as exc:  # the user's constructor: anything may go wrong
        raise UserError(f"could not build {class_name}(**{kwargs}) from {file} ({one_line(exc)}); "
                        f"give its arguments as \"kwargs\" in a directory's {MODULE_CONFIG}"
                        ) from None
    load_weights(model, weights)
    return UserModel("module", model.to(device).eval(), name, [file, weights], cls, file,
                     dict(kwargs))


def _import(file: Path):
    """Import the user's module file under a name of its own."""
    name = "unlearnbench_user_" + hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise UserError(f"{file} cannot be imported as a Python module; give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise UserError(f"could not import {file} ({one_line(exc)})") from None
    return module


def load_weights(model: nn.Module, weights: Path) -> None:
    """Load a safetensors file into ``model``; keys and shapes must match exactly (tensors the
    model shares, such as tied embeddings, may be stored once)."""
    from safetensors.torch import load_file, load_model

    try:
        stored = load_file(weights)
    except Exception as exc:
        raise UserError(f"{weights} is not a readable safetensors file ({one_line(exc)})") from None
    own = model.state_dict()
    where = f"the weights in {weights} do not fit class {type(model).__name__}"
    wrong = [f"{key} is {tuple(value.shape)} in the file but {tuple(own[key].shape)} in the model"
             for key, value in stored.items() if key in own and own[key].shape != value.shape]
    if wrong:
        raise UserError(f"{where}: {wrong[0]}" + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1
                                                  else ""))
    missing, unexpected = load_model(model, weights, strict=False)
    problems = [f"{label} {', '.join(sorted(keys)[:3])}" + (" ..." if len(keys) > 3 else "")
                for label, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
    if problems:
        raise UserError(f"{where}: {'; '.join(problems)}")


def _load_torchscript(path: Path, device: str) -> UserModel:
    try:
        model = torch.jit.load(str(path), map_location=device)
    except Exception as exc:
        raise UserError(f"{path} is not a TorchScript file ({one_line(exc)}); give {FORMS}"
                        ) from None
    # Copying a TorchScript module clones its weights through autograd, which leaves the copy's
    # weights non-leaf (untrainable) unless the original's do not require gradients. The
    # original is never trained, so they need not.
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return UserModel("torchscript", model.eval(), path.name, [path])


def _load_hf(directory: Path, device: str) -> UserModel:
    from ..models.pretrained import load_hf_model

    model, tokenizer = load_hf_model(directory, device)
    files = sorted(p for p in directory.iterdir() if p.is_file())
    return UserModel("hf", model, directory.name, files, tokenizer=tokenizer)


def save_user_model(user: UserModel, model: nn.Module, directory: Path) -> list[Path]:
    """Write the unlearned ``model`` into ``directory`` in the form ``user`` came in (a module
    directory, ``model.pt`` or a Hugging Face directory); returns the files written. The
    directory loads again as ``--model DIRECTORY`` (TorchScript: ``DIRECTORY/model.pt``)."""
    directory.mkdir(parents=True, exist_ok=True)
    if user.kind == "hf":
        from ..models.pretrained import save_hf_model

        if not hasattr(model, "save_pretrained"):
            raise UserError(f"the method returned a {type(model).__name__}, which cannot be saved "
                            "as one Hugging Face model directory; choose another method")
        before = set(directory.iterdir())
        save_hf_model(model, user.tokenizer, directory)
        return sorted(set(directory.iterdir()) - before)
    if set(model.state_dict()) != set(user.model.state_dict()):
        raise UserError(f"the method returned a {type(model).__name__}, not a model of the given "
                        f"architecture, so it cannot be saved in the model's form; choose a "
                        "method that returns the model itself")
    if user.kind == "torchscript":
        torch.jit.save(model, str(directory / TORCHSCRIPT_FILE))
        return [directory / TORCHSCRIPT_FILE]
    from safetensors.torch import save_model

    shutil.copyfile(user.module_file, directory / MODULE_FILE)
    save_model(model, str(directory / MODULE_WEIGHTS))
    (directory / MODULE_CONFIG).write_text(
        json.dumps({"class": user.module_class.__name__, "kwargs": user.kwargs}, indent=1) + "\n")
    return [directory / MODULE_FILE, directory / MODULE_WEIGHTS, directory / MODULE_CONFIG]

