"""The ``unlearnbench`` click group, which the command modules register with, and ``main``,
the entry point.

Errors in the user's input print one line (what is wrong, what to do) and exit with 2;
``--debug`` shows the traceback instead."""
from __future__ import annotations

import sys

import click
from rich.console import Console

from ..errors import UserError

err_console = Console(stderr=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx, debug):
    """unlearnbench: machine unlearning methods and evaluations behind one API."""
    ctx.obj = {"debug": debug}


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
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
