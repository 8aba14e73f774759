"""``cryophase report``: an HTML report of a ``retrieve`` output folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cryophase.cli._common import user_errors
from cryophase.cli.main import app
from cryophase.errors import CryophaseError
from cryophase.evaluation.retrieve_report import ReportConfig, make_retrieve_report

_D = ReportConfig()


@app.command()
@user_errors
def report(
    retrieve_dir: Path = typer.Argument(..., help="A `cryophase retrieve` output folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="HTML file to write (default: DIR/report.html)."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="MRC stack of true phases, same order."),
    n_show: int = typer.Option(_D.n_show, "--n", help="Particles shown."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing report."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
):
    """Write a self-contained HTML report (particles, phase, uncertainty, power spectra; metrics with --truth)."""
    out = out or Path(retrieve_dir) / "report.html"
    if out.exists() and not overwrite:
        raise CryophaseError(f"{out}: already exists; use --overwrite to replace it")
    path = make_retrieve_report(retrieve_dir, out, truth=truth, config=ReportConfig(n_show=n_show))
    typer.echo(f"wrote {path}")
