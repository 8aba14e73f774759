"""Shared CLI plumbing: one-line errors, output folders that never clobber results, provenance."""

from __future__ import annotations

import functools
import typer

from cryophase.errors import USER_ERRORS


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"cryophase: error: {message}", err=True)
    raise typer.Exit(code)


def user_errors(fn):
    """Decorator for commands: user errors become one line on stderr and exit code 2.

    The command must accept a ``debug: bool`` keyword; with ``--debug`` the traceback is shown instead.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        debug = kwargs.get("debug", False)
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except USER_ERRORS as exc:
            if debug:
                raise
            fail(str(exc))
        except (ValueError, KeyError, RuntimeError) as exc:
            if debug:
                raise
            fail(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)")

    return wrapper


from cryophase.io.outputs import (  # noqa: E402,F401  (re-exported for commands)
    _jsonable,
    prepare_output_dir,
    provenance,
    resolve_device,
    write_json_atomic,
)
