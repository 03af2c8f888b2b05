"""What the commands share: the console they print on, name lists, the command line they
record, and the checks and settings behind --threads, --cache-dir, --device and --db."""
from __future__ import annotations

import os
import re
import shlex
import sys

import click
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


def recorded_command() -> str:
    """The command line recorded with each run, to be run again as it is: the plugin files
    of this invocation (from --plugin or $UNLEARNBENCH_PLUGINS) as absolute --plugin options."""
    ctx = click.get_current_context(silent=True)
    plugins = (ctx.find_root().obj or {}).get("plugins", []) if ctx else []
    args, given = [], iter(sys.argv[1:])
    for arg in given:
        if arg == "--plugin":
            next(given, None)  # its file: given again below, as an absolute path
        elif not arg.startswith("--plugin="):
            args.append(arg)
    return shlex.join(["unlearnbench", *(part for file in plugins for part in ("--plugin", file)),
                       *args])


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
