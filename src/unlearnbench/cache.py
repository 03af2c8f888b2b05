"""Content-addressed cache of trained models.

A model is stored as ``<key>.safetensors`` plus ``<key>.json`` (metadata and the SHA-256 of
the weights file). The key is a hash of everything that determines the weights (data
fingerprint, training ids, architecture, recipe, seed). A missing, truncated or corrupt file
fails the checksum and the model is rebuilt, never silently used. Files are written under
temporary names (``<name>.tmp<pid>.<host>``) and renamed; a writer that died in between
leaves its temporary files behind, and the next write removes them."""
from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import warnings
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import UserError

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


# A temporary file's name: the final name, then the writer's pid and host (absent in names
# written before hosts were recorded).
TEMPORARY = re.compile(r"\.tmp(\d+)(?:\.(.+))?$")


def temporary_name(path: Path) -> Path:
    """Where this process writes ``path`` before renaming it. The host is in the name because
    a cache directory may be shared by several machines (a cluster), where a pid alone says
    nothing about whether the writer is alive."""
    return path.with_name(f"{path.name}.tmp{os.getpid()}.{socket.gethostname()}")


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host is running; a zombie (dead, its exit status not
    yet collected by its parent) is not."""
    if os.name != "posix":  # os.kill would terminate the process there, not probe it
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]  # after "(command name)"
    except (OSError, IndexError):  # no /proc (macOS): it exists
        return True
    return state not in ("Z", "X")


def remove_stale_temporaries(directory: Path) -> None:
    """Remove the temporary files in ``directory`` that writers on this host left when they
    died. A live writer's file, or another host's (its writer cannot be probed from here), is
    left alone."""
    host = socket.gethostname()
    for path in directory.glob("*.tmp*"):
        match = TEMPORARY.search(path.name)
        if match and match.group(2) in (None, host) and not process_alive(int(match.group(1))):
            path.unlink(missing_ok=True)


class ModelCache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        # A file where the cache or a parent of it should be would fail the first save, after
        # the training: said now.
        existing = next((p for p in (self.root, *self.root.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise UserError(f"the model cache {str(self.root)!r} is not a directory "
                            f"({str(existing)!r} is a file); give --cache-dir (or "
                            "$UNLEARNBENCH_CACHE) a directory")

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
        remove_stale_temporaries(weights.parent)
        # Write to temporary names and rename, so a killed process never leaves a half file
        # under the real name.
        tmp_weights = temporary_name(weights)
        # Cloned: tied weights (a language model's embedding and output layer) share storage,
        # which safetensors refuses; each name gets its own copy.
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        save_file(state, str(tmp_weights))
        meta = dict(meta, sha256=file_sha256(tmp_weights))
        tmp_meta = temporary_name(meta_path)
        tmp_meta.write_text(json.dumps(meta, indent=1, sort_keys=True))
        os.replace(tmp_weights, weights)
        os.replace(tmp_meta, meta_path)

    def get_or_train(self, key: str, make_model: Callable[[], nn.Module],
                     train: Callable[[nn.Module], dict]) -> tuple[nn.Module, dict]:
        """The cached model for ``key``, or a freshly trained one (then cached). ``train``
        trains the model in place and returns metadata to store (timings...)."""
        in_the_way = [path for path in self.paths(key) if path.is_dir()]
        if in_the_way:
            raise UserError(f"the model cache entry {str(in_the_way[0])!r} is a directory, not a "
                            "file; remove it or give --cache-dir another directory")
        model = make_model()
        if all(path.exists() for path in self.paths(key)):
            meta = self.load(key, model)
            if meta is not None:
                return model, dict(meta, cached=True)
            # The failed load may have copied part of the file into the model (load_state_dict
            # copies every tensor that fits before it reports a mismatch): train a fresh one,
            # the damaged one dropped first (a large model twice may not fit in memory).
            del model
            model = make_model()
        meta = train(model)
        try:
            self.save(key, model, meta)
        except OSError as exc:
            raise UserError(f"cannot write the trained model into the model cache "
                            f"{str(self.root)!r} ({exc.strerror or exc}); give --cache-dir (or "
                            "$UNLEARNBENCH_CACHE) a directory you can write") from None
        return model, dict(meta, cached=False)
