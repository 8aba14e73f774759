"""Output folders that never clobber results, atomic JSON, and the provenance every output records.

Library code (simulate, retrieve, train) uses these; the CLI re-exports them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Iterator

import torch

from cryophase import __version__
from cryophase.errors import CryophaseError
from cryophase.io.atomic import temporary_sibling


def prepare_output_dir(out: Path, expected_files: list[str], *, overwrite: bool) -> None:
    """Create ``out``; refuse if it already holds any of ``expected_files`` unless ``overwrite``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CryophaseError(f"{out}: exists and is not a folder")
    existing = [f for f in expected_files if (out / f).exists()]
    if existing and not overwrite:
        raise CryophaseError(f"{out}: already holds results ({', '.join(existing)}); use --overwrite to replace them")
    out.mkdir(parents=True, exist_ok=True)


def _jsonable(value):
    if is_dataclass(value):
        return {k: _jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def provenance(settings) -> dict:
    """What every output records: version, command line, settings, time."""
    return {
        "cryophase_version": __version__,
        "command_line": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "settings": _jsonable(settings),
        "torch_version": torch.__version__,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_json_atomic(path: Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(data), indent=2) + "\n")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` (same suffix) to write; it replaces ``path`` only if the block succeeds.

    For writers that take a file name (``savefig``, ``starfile.write``): a crash leaves no partial ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path, suffix=f".tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when present; 'cuda' without a GPU is a user error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CryophaseError("--device cuda was given but no CUDA GPU is available")
    return torch.device(device)
