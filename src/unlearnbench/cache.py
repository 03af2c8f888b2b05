"""Content-addressed cache of trained models.

A model is stored as ``<key>.safetensors`` plus ``<key>.json`` (metadata and the SHA-256 of
the weights file). The key is a hash of everything that determines the weights (data
fingerprint, training ids, architecture, recipe, seed). A missing, truncated or corrupt file
fails the checksum and the model is rebuilt, never silently used."""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

DEFAULT_CACHE = ".unlearnbench-cache"


def default_cache_dir() -> Path:
    return Path(os.environ.get("UNLEARNBENCH_CACHE", DEFAULT_CACHE))


def content_key(parts: dict[str, Any]) -> str:
    """Stable hash of a JSON-able description (dataclasses are expanded)."""
    def plain(value):
        if is_dataclass(value):
            return asdict(value)
        if hasattr(value, "tolist"):
            return value.tolist()
        raise TypeError(f"cannot hash {type(value).__name__}")
    text = json.dumps(parts, sort_keys=True, default=plain)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ModelCache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def paths(self, key: str) -> tuple[Path, Path]:
        base = self.root / "models" / key
        return base.with_suffix(".safetensors"), base.with_suffix(".json")

    def load(self, key: str, model: nn.Module) -> dict | None:
        """Load weights into ``model`` and return the metadata, or None when absent or bad."""
        weights, meta_path = self.paths(key)
        if not weights.exists() or not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if not isinstance(meta, dict):  # valid JSON but not our metadata (garbled)
                raise ValueError("metadata is not a JSON object")
            if meta.get("sha256") != file_sha256(weights):
                raise ValueError("checksum mismatch")
            model.load_state_dict(load_file(str(weights)))
        except (ValueError, KeyError, RuntimeError, OSError, SafetensorError) as exc:
            warnings.warn(f"cached model {weights.name} is corrupt ({exc}); rebuilding it")
            return None
        return meta

    def save(self, key: str, model: nn.Module, meta: dict) -> None:
        weights, meta_path = self.paths(key)
        weights.parent.mkdir(parents=True, exist_ok=True)
        # Write to temporary names and rename, so a killed process never leaves a half file
        # under the real name.
        tmp_weights = weights.with_name(f"{weights.name}.tmp{os.getpid()}")
        # Cloned: tied weights (a language model's embedding and output layer) share storage,
        # which safetensors refuses; each name gets its own copy.
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        save_file(state, str(tmp_weights))
        meta = dict(meta, sha256=file_sha256(tmp_weights))
        tmp_meta = meta_path.with_name(f"{meta_path.name}.tmp{os.getpid()}")
        tmp_meta.write_text(json.dumps(meta, indent=1, sort_keys=True))
        os.replace(tmp_weights, weights)
        os.replace(tmp_meta, meta_path)

    def get_or_train(self, key: str, make_model: Callable[[], nn.Module],
                     train: Callable[[nn.Module], dict]) -> tuple[nn.Module, dict]:
        """The cached model for ``key``, or a freshly trained one (then cached). ``train``
        trains the model in place and returns metadata to store (timings...)."""
        model = make_model()
        meta = self.load(key, model)
        if meta is not None:
            return model, dict(meta, cached=True)
        meta = train(model)
        self.save(key, model, meta)
        return model, dict(meta, cached=False)
