"""Temporary siblings for atomic writes (write, then rename), with the permissions ``open`` would give."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open`` gives a new file: 0666 less the umask."""
    return 0o666 & ~_umask()


def temporary_sibling(path: str | Path, suffix: str = ".tmp") -> Path:
    """Create an empty hidden file ``.NAME.XXXX<suffix>`` beside ``path`` to be written and renamed onto it.

    ``tempfile.mkstemp`` makes files only their owner can read (0600); the output renamed from it gets the mode
    a file written with ``open`` would have (0666 less the umask), so that colleagues can read results.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        os.fchmod(fd, default_file_mode())
    finally:
        os.close(fd)
    return Path(tmp)


def temporary_sibling_folder(path: str | Path) -> Path:
    """Like :func:`temporary_sibling` for a folder (mode 0777 less the umask instead of mkdtemp's 0700)."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp
