"""Plugins: the worked example of docs/plugins.md run from the command line exactly as the
doc writes it, its recorded command run again, the same plugins in pool workers and from
UNLEARNBENCH_PLUGINS, an installed entry point, and the refusal of a built-in's name.

Plugins register into the process's registries, so every plugin is loaded in a subprocess
(an in-process load would leak the example's components into the other tests' registries)."""
from __future__ import annotations

import os
import re
import shlex
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from test_cli import CLI, TIMEOUT, cli_env, ok
from unlearnbench.errors import UserError
from unlearnbench.registry import Registry

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "plugins.md"


def doc_files() -> dict[str, str]:
    """The doc's example files: each ```python block under a **path** line."""
    blocks = re.findall(r"\*\*(examples/plugins/\w+\.py)\*\*\n\n```python\n(.*?)```",
                        DOC.read_text(), re.S)
    return dict(blocks)


def doc_command() -> list[str]:
    """The doc's command (a ```console block, lines continued with a backslash)."""
    (block,) = re.findall(r"```console\n(.*?)```", DOC.read_text(), re.S)
    return shlex.split(block.replace("\\\n", " "))


def run_cli(args: list[str], cwd: Path, cache: Path, **env) -> subprocess.CompletedProcess:
    assert args[0] == "unlearnbench"
    return subprocess.run([*CLI, *args[1:]], capture_output=True, text=True, cwd=cwd,
                          env={**cli_env(cache), **env}, timeout=TIMEOUT)


def commands_in(db: Path) -> set[str]:
    with sqlite3.connect(db) as con:
        return {command for (command,) in con.execute("SELECT command FROM runs")}


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """A directory holding the doc's example files, and a model cache for the module."""
    work = tmp_path_factory.mktemp("plugin-example")
    for path, source in doc_files().items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(source)
    return work, tmp_path_factory.mktemp("plugin-cache")


def test_the_doc_shows_the_example_files_as_they_are():
    files = doc_files()
    assert sorted(files) == ["examples/plugins/ascent_repair.py", "examples/plugins/blobs.py"]
    for path, source in files.items():
        assert (REPO / path).read_text() == source, f"{path} differs from docs/plugins.md"
    assert "docs/plugins.md" in (REPO / "README.md").read_text()


@pytest.mark.slow
def test_the_documented_example_runs_and_its_recorded_command_finds_the_jobs_done(example):
    work, cache = example
    command = doc_command()
    assert command[:2] == ["unlearnbench", "--plugin"]
    first = ok(run_cli(command, work, cache))
    assert "6 finished, 0 failed, 0 already in" in first.stdout
    (recorded,) = commands_in(work / "unlearnbench.db")
    plugins = [str((work / "examples/plugins" / name).resolve())
               for name in ("blobs.py", "ascent_repair.py")]
    assert shlex.split(recorded)[:5] == ["unlearnbench", "--plugin", plugins[0], "--plugin",
                                         plugins[1]]
    again = ok(run_cli(shlex.split(recorded), work, cache))
    assert "0 finished, 0 failed, 6 already in" in again.stdout
    shown = ok(run_cli(["unlearnbench", "show"], work, cache)).stdout
    assert "blobs-random10" in shown and " ascent_repair " in shown


@pytest.mark.slow
def test_pool_workers_load_the_plugins_named_in_the_environment(example):
    work, cache = example
    # relative paths, from the environment only: workers and the recorded command get them too
    listed = os.pathsep.join(["examples/plugins/blobs.py", "examples/plugins/ascent_repair.py"])
    result = ok(run_cli(["unlearnbench", "run", "-b", "blobs-random10", "-m", "ascent_repair",
                         "--seeds", "2", "--workers", "2", "--db", "pool.db"], work, cache,
                        UNLEARNBENCH_PLUGINS=listed))
    assert "2 finished, 0 failed" in result.stdout
    (recorded,) = commands_in(work / "pool.db")
    assert recorded.startswith(f"unlearnbench --plugin {work.resolve()}/examples/plugins/blobs.py "
                               f"--plugin {work.resolve()}/examples/plugins/ascent_repair.py run ")


@pytest.mark.slow
def test_an_installed_entry_point_registers_its_components(tmp_path):
    """A package on sys.path with a .dist-info declaring the entry point: no pip install."""
    site = tmp_path / "site"
    (site / "ub_noop_plugin").mkdir(parents=True)
    (site / "ub_noop_plugin" / "__init__.py").write_text(textwrap.dedent('''
        from unlearnbench.registry import methods

        @methods.register("noop_from_entry_point", tasks=("classification",), needs=())
        def noop(ctx, params):
            """Returns a copy of the original (an installed plugin's method)."""
            return ctx.copy_original()
        '''))
    info = site / "ub_noop_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ub-noop-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[unlearnbench.plugins]\nnoop = ub_noop_plugin\n")
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    listed = ok(run_cli(["unlearnbench", "list", "methods"], tmp_path, tmp_path / "cache", **env))
    assert "noop_from_entry_point  Returns a copy of the original" in listed.stdout
    # from Python too: the registries load installed plugins on their first look-up
    python = subprocess.run(
        [sys.executable, "-c", "from unlearnbench.registry import methods; "
         "print(methods.get('noop_from_entry_point').description)"],
        capture_output=True, text=True, env={**cli_env(tmp_path), **env}, timeout=TIMEOUT)
    assert python.stdout.strip() == "Returns a copy of the original (an installed plugin's method)."


@pytest.mark.slow
def test_a_plugin_may_not_take_a_built_in_name_nor_be_missing(tmp_path):
    (tmp_path / "shadow.py").write_text(textwrap.dedent('''
        from unlearnbench.registry import datasets

        @datasets.register("digits")
        def my_digits():
            """Not scikit-learn's."""
        '''))
    shadow = run_cli(["unlearnbench", "--plugin", "shadow.py", "list"], tmp_path, tmp_path)
    assert shadow.returncode == 2
    assert shadow.stderr.strip() == (
        f"error: {tmp_path.resolve() / 'shadow.py'} registers the dataset 'digits', a built-in "
        f"name ({REPO / 'src/unlearnbench/data/digits.py'}); register it under another name")
    missing = run_cli(["unlearnbench", "--plugin", "nowhere.py", "list"], tmp_path, tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip() == ("error: plugin 'nowhere.py': no such file; give the path "
                                      "of a Python file (--plugin FILE.py or "
                                      "$UNLEARNBENCH_PLUGINS)")


def test_the_built_ins_are_loaded_before_an_outside_registration_is_checked(tmp_path,
                                                                             monkeypatch):
    """Registered first, an outside component still cannot take a built-in's name: the
    registry imports its package before accepting it."""
    package = tmp_path / "ub_fake_builtins"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "parts.py").write_text(textwrap.dedent('''
        import sys
        from ub_fake_builtins import REGISTRY

        def blob():
            """The built-in blob."""

        blob.__module__ = "unlearnbench.fake"  # as if it were one of the package's
        REGISTRY.register("blob")(blob)
        '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    import ub_fake_builtins

    ub_fake_builtins.REGISTRY = registry = Registry("widgets", "ub_fake_builtins")

    def blob():
        """Another blob."""

    try:
        with pytest.raises(UserError, match=r"registers the widget 'blob', a built-in name"):
            registry.register("blob")(blob)
        assert registry.get("blob").description == "The built-in blob."
    finally:
        for name in ("ub_fake_builtins", "ub_fake_builtins.parts"):
            sys.modules.pop(name, None)
