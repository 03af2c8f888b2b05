"""Plugins: data sets, models, methods, metrics and benchmarks from the user's own modules,
added through the public registries (``unlearnbench.registry.datasets``, ``.models``,
``.methods``, ``.metrics``, ``.benchmarks``) without editing the package (docs/plugins.md).

Two ways in:

- an installed package declares entry points in the group ``unlearnbench.plugins``, each
  naming a module; the registries import them on their first look-up (`load_installed`), in
  every process, pool workers and Ray tasks included;
- a Python file given on the command line (``unlearnbench --plugin FILE.py COMMAND ...``,
  repeatable) or listed in ``UNLEARNBENCH_PLUGINS`` (paths separated by ``os.pathsep``):
  `load_files` imports it. Pool workers and Ray tasks are given `loaded_files()` and import
  the same files, so on a Ray cluster the files must be at the same path on every node.

Importing a plugin registers its components. A plugin cannot take a built-in component's
name (`Registry.register` refuses it in one line).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from .errors import UserError

GROUP = "unlearnbench.plugins"
ENV = "UNLEARNBENCH_PLUGINS"

_files: list[str] = []  # the plugin files imported in this process, absolute, in order
_installed_loaded = False


def env_files() -> list[str]:
    """The plugin files listed in ``UNLEARNBENCH_PLUGINS``."""
    return [path for path in os.environ.get(ENV, "").split(os.pathsep) if path.strip()]


def loaded_files() -> list[str]:
    """The plugin files this process has imported (absolute paths), for worker processes."""
    return list(_files)


def load_files(paths: Iterable[str]) -> list[str]:
    """Import each plugin file once per process; returns their absolute paths, in order."""
    loaded = []
    for path in paths:
        file = Path(path).expanduser().resolve()
        if str(file) not in _files:
            _import_file(path, file)
            _files.append(str(file))
        loaded.append(str(file))
    return list(dict.fromkeys(loaded))


def _import_file(given: str, file: Path) -> None:
    if not file.is_file():
        raise UserError(f"plugin {given!r}: no such file; give the path of a Python file "
                        f"(--plugin FILE.py or ${ENV})")
    if file.suffix != ".py":
        raise UserError(f"plugin {given!r} is not a Python file (.py); give the module's "
                        "source file")
    # A name of its own per path, the same in every process (objects a worker pickles refer
    # to it), and never one of an existing module (a plugin called random.py would shadow
    # the standard library's).
    stem = re.sub(r"\W", "_", file.stem)
    name = f"unlearnbench_plugin_{stem}_{hashlib.sha256(str(file).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it is executed
    try:
        spec.loader.exec_module(module)
    except UserError:
        del sys.modules[name]
        raise
    except Exception as exc:
        del sys.modules[name]
        raise UserError(f"plugin {given!r} failed to import ({type(exc).__name__}: "
                        f"{_first_line(exc)}); fix it or leave it out (--debug shows the "
                        "traceback)") from exc


def load_installed() -> None:
    """Import the modules named by the installed entry points of ``unlearnbench.plugins``,
    once per process (the registries call this on their first look-up)."""
    global _installed_loaded
    if _installed_loaded:
        return
    _installed_loaded = True  # first: a plugin's own registrations look registries up
    for entry in importlib.metadata.entry_points(group=GROUP):
        try:
            entry.load()
        except UserError:
            raise
        except Exception as exc:
            package = entry.dist.name if entry.dist else "its package"
            raise UserError(f"the installed plugin {entry.name!r} ({entry.value}, from "
                            f"{package}) failed to import ({type(exc).__name__}: "
                            f"{_first_line(exc)}); fix or uninstall {package}") from exc


def origin(obj) -> str:
    """Where a registered object comes from: its module's file, else the module's name."""
    module = getattr(obj, "__module__", None) or "?"
    return getattr(sys.modules.get(module), "__file__", None) or module


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
