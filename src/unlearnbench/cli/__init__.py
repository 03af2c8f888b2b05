"""The command line: run, tune, population, show, report, list, data fetch/export, unlearn.

``group`` holds the click group and the entry point ``main``; each command module registers
its commands with that group when imported, which is why they are all imported here."""
from . import data, results, run, unlearn  # noqa: F401 (imported for the commands they register)
from .group import cli, main

__all__ = ["cli", "main"]
