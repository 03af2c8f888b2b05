"""CIFAR-10, "python version" batches (``data_batch_1`` .. ``data_batch_5``, ``test_batch``,
optional ``batches.meta``).

Each batch is a Python pickle of a dict with ``data``: uint8 (N, 3072), each row a 32x32
colour image stored channel by channel (1024 red, then 1024 green, then 1024 blue bytes, each
row-major) and ``labels``: N ints in 0..9. The published pickles are Python 2 ones, so keys
come back as ``str`` or ``bytes`` depending on how they are read: both are accepted.
``batches.meta`` holds ``label_names``."""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

import numpy as np

from ..cache import default_cache_dir
from ..errors import UserError
from ..registry import datasets
from . import DataBundle, carve_validation
from .safe_pickle import safe_load

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"  # the published checksum of cifar-10-python.tar.gz
ENV_VAR = "UNLEARNBENCH_CIFAR10_DIR"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
TOP = "cifar-10-batches-py"


def default_root() -> Path:
    return Path(os.environ.get(ENV_VAR) or default_cache_dir() / "data" / TOP)


def _get(batch: dict, key: str):
    for k in (key, key.encode()):
        if k in batch:
            return batch[k]
    raise KeyError(key)


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(images N×3×32×32 float32 in [0,1], labels int64) from one pickled batch."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            batch = safe_load(handle, encoding="latin1")
        data, labels = np.asarray(_get(batch, "data")), np.asarray(_get(batch, "labels"))
    except UserError:
        raise
    except Exception as exc:  # not a pickle, refused global, missing key...
        raise UserError(f"{path} is not a CIFAR-10 python batch ({type(exc).__name__}: {exc})") \
            from exc
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise UserError(f"{path}: data is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    if labels.shape != (len(data),):
        raise UserError(f"{path}: {labels.shape} labels for {len(data)} images")
    if len(labels) and not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{path}: labels are {labels.dtype}, expected whole numbers 0..9; "
                        "replace the file with the one from the CIFAR-10 archive")
    images = data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    return images, labels.astype(np.int64)


def read_label_names(root: Path) -> list[str] | None:
    path = root / "batches.meta"
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as handle:
            names = _get(safe_load(handle, encoding="latin1"), "label_names")
        if not isinstance(names, (list, tuple)) or not all(
                isinstance(n, (bytes, str)) for n in names):
            raise ValueError(f"label_names is not a list of names: {names!r:.60}")
    except UserError:
        raise
    except Exception as exc:  # not a pickle, missing key...
        raise UserError(f"{path} is not a CIFAR-10 batches.meta ({type(exc).__name__}: {exc}); "
                        "replace it with the one from the archive, or remove it (the classes "
                        "are then 0..9)") from exc
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


@datasets.register("cifar10", source="CIFAR-10 python batches (cs.toronto.edu)",
                   fetch=lambda cache_dir: download_cifar10(cache_dir / "data" / TOP))
def load_cifar10(root: str | None = None) -> DataBundle:
    """CIFAR-10: 32x32 colour images, 10 classes, published 50k/10k train/test.

    Reads the python batches from ``root``, else ``$UNLEARNBENCH_CIFAR10_DIR``, else
    ``<cache>/data/cifar-10-batches-py``; a stratified 10% validation split is carved."""
    directory = Path(root) if root else default_root()
    if directory.exists() and not directory.is_dir():
        raise UserError(f"CIFAR-10 root {directory} is a file; give the directory that holds "
                        f"the {TOP} batches")
    missing = [n for n in TRAIN_BATCHES + (TEST_BATCH,) if not (directory / n).is_file()]
    if missing:
        raise UserError(f"CIFAR-10 batches missing from {directory} ({', '.join(missing)}): put "
                        f"the {TOP} files there, pass root=DIR (or set {ENV_VAR}), or call "
                        "unlearnbench.data.cifar10.download_cifar10()")
    parts = [read_batch(directory / n) for n in TRAIN_BATCHES]
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    test_x, test_y = read_batch(directory / TEST_BATCH)
    names = read_label_names(directory)
    num_classes = len(names) if names else 10
    for labels in (train_y, test_y):
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise UserError(f"CIFAR-10 labels in {directory} lie outside 0..{num_classes - 1}")
    return carve_validation("cifar10", train_x, train_y, test_x, test_y, num_classes=num_classes)


def extract_cifar_archive(archive: str | Path, root: str | Path) -> Path:
    """Extract the files under ``cifar-10-batches-py/`` of ``archive`` (tar.gz) into ``root``.

    Only regular files are written; a member with an absolute path or a ``..`` component
    raises ``UserError`` before anything is written. Returns ``root``."""
    root = Path(root)
    with tarfile.open(archive, "r:*") as tf:
        members = tf.getmembers()
        for m in members:
            parts = PurePosixPath(m.name).parts
            if m.name.startswith(("/", "\\")) or PurePosixPath(m.name).is_absolute() or ".." in parts:
                raise UserError(f"refusing to extract {archive}: unsafe member path {m.name!r}")
        files = [m for m in members if m.isfile() and PurePosixPath(m.name).parts[:1] == (TOP,)
                 and len(PurePosixPath(m.name).parts) == 2]
        if not any(PurePosixPath(m.name).name == TEST_BATCH for m in files):
            raise UserError(f"{archive} holds no {TOP}/{TEST_BATCH}: not the CIFAR-10 python archive")
        root.mkdir(parents=True, exist_ok=True)
        for m in files:
            target = root / PurePosixPath(m.name).name
            tmp = target.with_name(target.name + ".part")
            with tf.extractfile(m) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
            os.replace(tmp, target)
    return root


def download_cifar10(root: str | Path | None = None, url: str = URL) -> Path:
    """Download the CIFAR-10 python archive (about 163 MB), check its MD5 and extract the
    batches into ``root`` (default: where ``load_cifar10`` looks). Returns ``root``."""
    root = Path(root) if root else default_root()
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".cifar10-download-") as tmpdir:
        archive = Path(tmpdir) / "cifar-10-python.tar.gz"
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UserError(f"could not download {url} ({reason}); with no network, put the "
                            f"{TOP} batches in {root} by hand") from exc
        digest = hashlib.md5(archive.read_bytes()).hexdigest()
        if url == URL and digest != MD5:
            raise UserError(f"{url} arrived with MD5 {digest}, expected {MD5}: retry the download")
        return extract_cifar_archive(archive, root)
