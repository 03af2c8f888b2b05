"""The command line: run, tune, population, show, report, list, data fetch/export, unlearn.

``group`` holds the click group and the entry points ``main`` and ``console_main`` (the
script's); each command module registers its commands with that group when imported, which
is why they are all imported here."""
from . import data, results, run, unlearn  # noqa: F401 (imported for the commands they register)
from .group import cli, console_main, main

__all__ = ["cli", "console_main", "main"]
