"""Entry point of the ``cryophase`` command.

Each command lives in its own module in this package and is registered here. Errors that users can fix
(``CryophaseError`` and its kin) are printed as one line naming the file and the problem, with exit code 2 and
no traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import typer

from cryophase import __version__

app = typer.Typer(
    name="cryophase",
    help="Single-shot phase retrieval for cryo-EM particles with a latent conditional diffusion model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool):
    if value:
        typer.echo(f"cryophase {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    """cryophase: simulate, retrieve, evaluate and train."""


# Command modules register themselves on `app` when imported.
from cryophase.cli import commands  # noqa: E402,F401
