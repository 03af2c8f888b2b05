"""What the commands share: the console they print on, name lists, and the checks and
settings behind --threads, --cache-dir, --device and --db."""
from __future__ import annotations

import os
import re
import sys

from rich.console import Console

from ..errors import UserError

# Tables are wide; when the output is a file or a pipe, do not squeeze them to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)


def split_names(values: tuple[str, ...] | list[str] | str | None) -> list[str]:
    """Accept repeated options, comma lists or YAML lists (commas inside a variant's brackets,
    ``entities-forget05[n_entities=20,epochs=1]``, do not separate names)."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [name.strip() for value in values for name in re.split(r",(?![^\[]*\])", str(value))
            if name.strip()]


def store_exists(db: str) -> bool:
    """Whether ``--db`` names an existing SQLite file; always True for a server database's URL
    (opening the store then says whether the server can be reached)."""
    from ..store import sqlite_file

    file = sqlite_file(db)
    return file is None or file.exists()


def set_threads(threads: int) -> None:
    """``--threads``: torch's intra-op threads in this process."""
    import torch

    if threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}")
    try:
        torch.set_num_threads(threads)
    except (ValueError, RuntimeError):  # beyond what torch takes (a C int)
        raise UserError(f"--threads {threads} is too many; this machine has {os.cpu_count()} "
                        "cores") from None


def use_cache_dir(cache_dir: str | None) -> None:
    """``--cache-dir``: data sets fetched into the cache (MNIST...) are found through the
    same variable, so it is set for the whole process."""
    if cache_dir:
        os.environ["UNLEARNBENCH_CACHE"] = str(cache_dir)


def check_device(device: str) -> None:
    import torch
    try:
        placed = torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:
        raise UserError(f"device {device!r} is not usable here ({str(exc).splitlines()[0]}); "
                        "use --device cpu") from None
    if placed.is_meta:  # tensors without data: nothing could be trained or scored
        raise UserError(f"device {device!r} holds no data (it is for shapes only); use --device "
                        "cpu or a GPU")
