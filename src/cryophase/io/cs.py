"""cryoSPARC ``.cs`` particle files, read into the same :class:`~cryophase.io.star.ParticleTable` as STAR files.

A ``.cs`` file is a NumPy structured array (``np.load(path, allow_pickle=False)``) with one row per particle.
The fields used here map onto RELION's columns:

==========================  ==============================  =========================================
cryoSPARC field             RELION column                   conversion
==========================  ==============================  =========================================
``blob/path``               ``rlnImageName`` (stack part)   bytes -> str; a leading ``>`` is dropped
``blob/idx`` (0-based)      ``rlnImageName`` (index part)   ``idx + 1``
``blob/psize_A``            ``rlnImagePixelSize``           Angstrom
``ctf/df1_A``, ``df2_A``    ``rlnDefocusU``, ``rlnDefocusV``  Angstrom
``ctf/df_angle_rad``        ``rlnDefocusAngle``             radians -> degrees
``ctf/accel_kv``            ``rlnVoltage``                  kV
``ctf/cs_mm``               ``rlnSphericalAberration``      mm
``ctf/amp_contrast``        ``rlnAmplitudeContrast``        fraction
``ctf/phase_shift_rad``     ``rlnPhaseShift``               radians -> degrees
``ctf/bfactor``             ``rlnCtfBfactor``               A^2
``ctf/scale``               ``rlnCtfScalefactor``
``uid``                     ``cryosparcUid``                kept to trace particles back
==========================  ==============================  =========================================

Paths in ``blob/path`` are relative to the cryoSPARC project folder; they are resolved like RELION paths
(next to the ``.cs`` file, then its parent folders, or a ``project_root``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from cryophase.io.star import OPTICS_COLUMNS, ParticleTable, StarError

#: cryoSPARC field -> (RELION column, factor applied to the value).
CS_TO_RELION: dict[str, tuple[str, float]] = {
    "blob/psize_A": ("rlnImagePixelSize", 1.0),
    "ctf/df1_A": ("rlnDefocusU", 1.0),
    "ctf/df2_A": ("rlnDefocusV", 1.0),
    "ctf/df_angle_rad": ("rlnDefocusAngle", float(np.degrees(1.0))),
    "ctf/accel_kv": ("rlnVoltage", 1.0),
    "ctf/cs_mm": ("rlnSphericalAberration", 1.0),
    "ctf/amp_contrast": ("rlnAmplitudeContrast", 1.0),
    "ctf/phase_shift_rad": ("rlnPhaseShift", float(np.degrees(1.0))),
    "ctf/bfactor": ("rlnCtfBfactor", 1.0),
    "ctf/scale": ("rlnCtfScalefactor", 1.0),
}
REQUIRED_FIELDS = ("blob/path", "blob/idx", "ctf/df1_A", "ctf/accel_kv", "ctf/cs_mm", "ctf/amp_contrast")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_cs_array(path: str | Path) -> np.ndarray:
    """Load a ``.cs`` file as a structured array, with one-line errors naming the file."""
    path = Path(path)
    if not path.exists():
        raise StarError(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise StarError(f"{path}: not readable (permission denied)")
    try:
        with open(path, "rb") as fh:
            array = np.load(fh, allow_pickle=False)
    except Exception as exc:
        raise StarError(f"{path}: not a readable cryoSPARC .cs file ({type(exc).__name__}: {exc})") from None
    if not isinstance(array, np.ndarray) or array.dtype.names is None:
        raise StarError(f"{path}: not a cryoSPARC .cs file (expected a NumPy structured array)")
    return array


def cs_to_dataframe(array: np.ndarray, *, where: str | Path = "<cs>") -> pd.DataFrame:
    """Convert a cryoSPARC particle array into a RELION-style particle table (one row per particle).

    Parameters
    ----------
    array : structured array with at least the fields in ``REQUIRED_FIELDS``.
    where : name used in error messages.

    Returns
    -------
    DataFrame with ``rlnImageName`` (``index@stack``, 1-based), CTF and optics columns in RELION units
    (defocus angle and phase shift in degrees), and ``cryosparcUid`` when present.
    """
    names = set(array.dtype.names or ())
    missing = [f for f in REQUIRED_FIELDS if f not in names]
    if missing:
        raise StarError(f"{where}: missing cryoSPARC field(s) {', '.join(missing)} (needed for images and the CTF)")
    if len(array) == 0:
        raise StarError(f"{where}: holds no particles")
    stacks = [_text(p).lstrip(">") for p in array["blob/path"]]
    indices = np.asarray(array["blob/idx"], dtype=np.int64) + 1
    columns: dict[str, object] = {"rlnImageName": [f"{i:06d}@{s}" for i, s in zip(indices, stacks)]}
    for field, (column, factor) in CS_TO_RELION.items():
        if field in names:
            columns[column] = np.asarray(array[field], dtype=np.float64) * factor
    if "rlnDefocusV" not in columns:
        columns["rlnDefocusV"] = columns["rlnDefocusU"]
    if "uid" in names:
        columns["cryosparcUid"] = [str(u) for u in array["uid"]]
    return pd.DataFrame(columns)


def read_particles_cs(path: str | Path, *, project_root: str | Path | None = None,
                      pixel_size_angstrom: float | None = None,
                      stack: str | Path | None = None) -> ParticleTable:
    """Read a cryoSPARC ``.cs`` particle file into a :class:`ParticleTable` (RELION 3.0-style, no optics table).

    Parameters
    ----------
    path : the ``.cs`` file.
    project_root : the cryoSPARC project folder that ``blob/path`` is relative to (defaults to trying the
        file's folder and its parents).
    pixel_size_angstrom : overrides ``blob/psize_A`` (and supplies it when absent).
    stack : read every image from this MRC stack (by ``blob/idx``) instead of ``blob/path``.
    """
    path = Path(path)
    particles = cs_to_dataframe(read_cs_array(path), where=path)
    if pixel_size_angstrom is not None:
        particles["rlnImagePixelSize"] = float(pixel_size_angstrom)
    if "rlnImagePixelSize" not in particles:
        raise StarError(f"{path}: no pixel size (blob/psize_A); pass --pixel-size")
    for column in (*OPTICS_COLUMNS, "rlnDefocusU", "rlnImagePixelSize"):
        if not np.isfinite(particles[column].to_numpy(dtype=np.float64)).all():
            raise StarError(f"{path}: {column} has missing or non-finite values")
    return ParticleTable(particles=particles, optics=None, star_path=path,
                         project_root=Path(project_root) if project_root else None,
                         stack_override=Path(stack) if stack is not None else None)
