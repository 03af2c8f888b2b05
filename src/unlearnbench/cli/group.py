"""The ``unlearnbench`` click group, which the command modules register with, ``main``, the
entry point, and ``console_main``, the script's (``main``, then a quick exit).

Errors in the user's input print one line (what is wrong, what to do) and exit with 2;
``--debug`` shows the traceback instead. ``--plugin FILE.py`` (and ``UNLEARNBENCH_PLUGINS``)
imports the user's components before any command looks them up."""
from __future__ import annotations

import atexit
import os
import sys
import threading
import warnings

import click
from rich.console import Console

from ..errors import UserError
from ..plugins import ENV, env_files, load_files

err_console = Console(stderr=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.option("--plugin", "plugin_files", multiple=True, metavar="FILE.py",
              help="A Python file registering data sets, models, methods, metrics or "
                   "benchmarks, imported before the command runs (repeatable; also "
                   f"${ENV}, paths separated by {os.pathsep!r}). See docs/plugins.md.")
@click.pass_context
def cli(ctx, debug, plugin_files):
    """unlearnbench: machine unlearning methods and evaluations behind one API."""
    # this invocation's plugins, recorded with its runs (common.recorded_command)
    ctx.obj = {"debug": debug, "plugins": load_files([*plugin_files, *env_files()])}


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    if not debug:  # a warning is one line for users, like an error
        warnings.formatwarning = one_line_warning
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.UsageError as exc:  # a bad flag or value: one line like every other error
        command = exc.ctx.command_path if exc.ctx is not None else "unlearnbench"
        message = " ".join(exc.format_message().split())
        err_console.print(f"error: {message} (see `{command} --help`)", highlight=False,
                          markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UserError as exc:
        if debug:
            raise
        err_console.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    except Exception as exc:  # anything unexpected: still one line, unless --debug
        if debug:
            raise
        err_console.print(f"error: {type(exc).__name__}: {exc} (rerun with --debug for the "
                          "traceback)", highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)


def console_main() -> None:
    """The ``unlearnbench`` script and ``python -m unlearnbench.cli``: ``main``, then exit
    without the interpreter's teardown. By then everything is written (records committed,
    files closed, cache files renamed into place), and the exit handlers still run; what is
    skipped is freeing every module one by one, 1-2 s once torch is loaded, on every command.
    (``main`` itself returns normally, for callers in the same process.)"""
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    if not isinstance(code, int):
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    for thread in threading.enumerate():  # what a normal exit waits for
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # logging, multiprocessing, Ray, temporary directories
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
