"""RELION STAR files: 3.0 (one table, optics per particle) and 3.1 / 4 / 5 (optics and particles tables).

Reading merges the optics group of each particle into one table so that every particle carries its own
voltage, Cs, amplitude contrast and pixel size. Image names ``index@stack.mrcs`` are resolved relative to the
STAR file's folder, then to the project root (RELION paths are relative to the project folder).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import starfile
import torch

from cryophase.io.atomic import temporary_sibling
from cryophase.io.mrc import MrcError, MrcStack
from cryophase.io.star_text import LoopTable, read_loop_columns, scan_loop_tables
from cryophase.physics.optics import Optics


class StarError(ValueError):
    """A STAR file that cannot be used as a particle table."""


OPTICS_COLUMNS = ("rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast")
CTF_COLUMNS = ("rlnDefocusU",)
PIXEL_SIZE_COLUMNS = ("rlnImagePixelSize", "rlnPixelSize", "rlnMagnification", "rlnDetectorPixelSize")
# What imaging needs of each particle: read_particles_star(columns=IMAGING_COLUMNS) keeps only these.
IMAGING_COLUMNS = ("rlnImageName", "rlnOpticsGroup", *OPTICS_COLUMNS, "rlnDefocusU", "rlnDefocusV",
                   "rlnDefocusAngle", "rlnPhaseShift", *PIXEL_SIZE_COLUMNS)


@dataclass
class ImageNames:
    """``rlnImageName`` (``number@stack``) of every particle as numbers and stack codes, not strings.

    Attributes
    ----------
    numbers : (N,) int64, the 1-based image number in its stack (1 for a name without ``@``).
    codes : (N,) int32, index into ``stacks``.
    stacks : the distinct stack names, as written in the file.
    """

    numbers: np.ndarray
    codes: np.ndarray
    stacks: list[str]


class _ImageNameEncoder:
    """Turns chunks of ``rlnImageName`` strings into numbers and stack codes, sharing one code table."""

    def __init__(self, where: Path):
        self.where, self.code_of = where, {}
        self.numbers: list[np.ndarray] = []
        self.codes: list[np.ndarray] = []

    def add(self, names: pd.Series) -> None:
        names = names.astype(str)
        has_at = names.str.contains("@", regex=False).to_numpy()
        parts = names.str.split("@", n=1, expand=True)
        if parts.shape[1] == 1:
            parts[1] = None
        numbers = pd.to_numeric(parts[0].where(has_at, "1"), errors="coerce").to_numpy()
        stacks = parts[1].where(has_at, names)
        bad = ~np.isfinite(numbers) | (numbers != np.round(numbers))
        if bad.any():
            name = names.iloc[int(np.flatnonzero(bad)[0])]
            raise StarError(f"{self.where}: bad rlnImageName {name!r} (expected index@stack)")
        if (numbers < 1).any():
            name = names.iloc[int(np.flatnonzero(numbers < 1)[0])]
            raise StarError(f"{self.where}: bad rlnImageName {name!r}: indices start at 1")
        inverse, uniques = pd.factorize(stacks)
        lookup = np.array([self.code_of.setdefault(u, len(self.code_of)) for u in uniques], dtype=np.int32)
        codes = lookup[inverse]
        self.numbers.append(numbers.astype(np.int64))
        self.codes.append(codes)

    def convert(self, chunk: pd.DataFrame) -> pd.DataFrame:
        """For :func:`read_loop_columns`: encode the chunk's names and drop the strings."""
        if "rlnImageName" in chunk:
            self.add(chunk["rlnImageName"])
            chunk = chunk.drop(columns="rlnImageName")
        return chunk

    def result(self) -> ImageNames:
        empty = [np.empty(0, dtype=np.int64)]
        return ImageNames(np.concatenate(self.numbers or empty), np.concatenate(self.codes or empty).astype(np.int32),
                          list(self.code_of))


def find_particles_table(path: Path, tables: list[LoopTable]) -> LoopTable:
    """The particles loop table: ``data_particles``, else the first non-optics table with ``rlnImageName``."""
    for t in tables:
        if t.block == "particles":
            return t
    for t in tables:
        if t.block != "optics" and "rlnImageName" in t.columns:
            return t
    raise StarError(f"{path}: no particles table (a data block with rlnImageName) found")


@dataclass
class ParticleTable:
    """Particles from a STAR file, each row carrying its optics.

    Attributes
    ----------
    particles : DataFrame with one row per particle, optics columns merged in (and ``rlnImagePixelSize``
        always present).
    optics : the optics table as read (``None`` for RELION 3.0 files).
    star_path : where it was read from.
    project_root : folder against which relative image paths are also tried.
    other_blocks : any other data blocks in the file, kept so nothing is lost on writing.
    stack_override : read every image from this stack (by the index in rlnImageName) instead of the stack
        named in the file, for STAR files whose stacks were moved or renamed.
    image_names : ``rlnImageName`` as numbers and codes, when the table was read with only some columns (the
        ``particles`` frame then has no ``rlnImageName`` column).
    """

    particles: pd.DataFrame
    optics: pd.DataFrame | None
    star_path: Path
    project_root: Path | None = None
    other_blocks: dict = field(default_factory=dict)
    stack_override: Path | None = None
    image_names: ImageNames | None = None

    def __len__(self) -> int:
        return len(self.particles)

    @property
    def version(self) -> str:
        return "3.0" if self.optics is None else "3.1"

    def optics_for(self, indices=None, *, dtype=torch.float32) -> Optics:
        """Per-particle :class:`Optics` for the rows ``indices`` (all rows if None)."""
        df = self.particles if indices is None else self.particles.iloc[np.asarray(indices)]
        def col(name, default):
            return df[name].to_numpy(dtype=np.float64, copy=True) if name in df else np.full(len(df), default, dtype=np.float64)
        du = col("rlnDefocusU", np.nan)
        dv = df["rlnDefocusV"].to_numpy(dtype=np.float64, copy=True) if "rlnDefocusV" in df else du
        return Optics.create(
            voltage_kv=col("rlnVoltage", np.nan),
            cs_mm=col("rlnSphericalAberration", np.nan),
            amplitude_contrast=col("rlnAmplitudeContrast", np.nan),
            pixel_size_angstrom=col("rlnImagePixelSize", np.nan),
            defocus_u_angstrom=du,
            defocus_v_angstrom=dv,
            defocus_angle_degrees=col("rlnDefocusAngle", 0.0),
            phase_shift_degrees=col("rlnPhaseShift", 0.0),
            b_factor_a2=np.zeros(len(df)),
            batch_size=len(df),
            dtype=dtype,
        )

    def image_locations(self) -> tuple[list[Path], np.ndarray, np.ndarray]:
        """Resolve ``rlnImageName``.

        Returns
        -------
        stacks : the distinct stack files (resolved paths).
        codes : (N,) int32, each particle's index into ``stacks``.
        indices : (N,) int64, each particle's 0-based image index in its stack.
        """
        names = self.image_names
        if names is None:
            if "rlnImageName" not in self.particles:
                raise StarError(f"{self.star_path}: the particles table has no rlnImageName column")
            encoder = _ImageNameEncoder(self.star_path)
            encoder.add(self.particles["rlnImageName"])
            names = encoder.result()
        if self.stack_override is not None:
            return [self._resolve(str(self.stack_override))], np.zeros(len(names.codes), np.int32), names.numbers - 1
        return [self._resolve(stack) for stack in names.stacks], names.codes, names.numbers - 1

    def _resolve(self, stack: str) -> Path:
        candidates = [Path(stack)] if Path(stack).is_absolute() else []
        candidates += [self.star_path.parent / stack]
        if self.project_root is not None:
            candidates.append(self.project_root / stack)
        candidates.append(Path.cwd() / stack)
        # RELION often writes paths relative to the project root, e.g. Extract/job012/...: try parents too.
        candidates += [parent / stack for parent in self.star_path.resolve().parents[:4]]
        for c in candidates:
            if c.exists():
                return c
        places = ", ".join(dict.fromkeys(str(c.parent.resolve()) for c in candidates))
        raise StarError(f"{self.star_path}: particle stack {stack!r} not found (looked in {places}); if the images "
                        "are in another file, name it (`cryophase retrieve --stack PATH`)")


def _pixel_size_column(df: pd.DataFrame, where: str) -> pd.Series | None:
    if "rlnImagePixelSize" in df:
        return df["rlnImagePixelSize"].astype(float)
    if "rlnPixelSize" in df:
        return df["rlnPixelSize"].astype(float)
    if "rlnMagnification" in df and "rlnDetectorPixelSize" in df:
        # RELION 3.0: pixel size = detector pixel (um) / magnification.
        return df["rlnDetectorPixelSize"].astype(float) * 1e4 / df["rlnMagnification"].astype(float)
    return None


def _read_some_columns(path: Path, columns: tuple[str, ...]) -> tuple[dict[str, pd.DataFrame], ImageNames]:
    """The optics table and the particles table's ``columns`` (names encoded), in bounded memory."""
    tables = scan_loop_tables(path)
    particles_table = find_particles_table(path, tables)
    if "rlnImageName" not in particles_table.columns:
        raise StarError(f"{path}: the particles table has no rlnImageName column")
    encoder = _ImageNameEncoder(path)
    blocks = {particles_table.block or "particles": read_loop_columns(path, particles_table, columns,
                                                                      convert=encoder.convert)}
    for t in tables:
        if t.block == "optics" and t is not particles_table:
            blocks["optics"] = read_loop_columns(path, t)
    return blocks, encoder.result()


def read_particles_star(path: str | Path, *, project_root: str | Path | None = None,
                        pixel_size_angstrom: float | None = None,
                        stack: str | Path | None = None,
                        columns: tuple[str, ...] | None = None) -> ParticleTable:
    """Read a RELION particles STAR file (3.0, 3.1, 4 or 5).

    Parameters
    ----------
    path : the STAR file.
    project_root : folder that RELION paths are relative to (defaults to trying the STAR file's parents).
    pixel_size_angstrom : overrides any pixel size in the file (and supplies one when the file has none).
    stack : read images from this MRC stack instead of the stacks named in rlnImageName.
    columns : read only these columns of the particles table (e.g. :data:`IMAGING_COLUMNS`), line by line,
        with ``rlnImageName`` kept as numbers and codes (``image_names``): memory then grows by a few float
        columns per particle instead of every string in the file. Other data blocks are not kept.

    Raises
    ------
    StarError
        With a one-line message naming the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise StarError(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise StarError(f"{path}: not readable (permission denied)")
    image_names = None
    try:
        if columns is None:
            blocks = starfile.read(path, always_dict=True)
        else:
            blocks, image_names = _read_some_columns(path, tuple(columns))
    except StarError:
        raise
    except Exception as exc:
        raise StarError(f"{path}: not a readable STAR file ({type(exc).__name__}: {exc})") from None
    if not blocks:
        raise StarError(f"{path}: no data blocks found")
    blocks = {k: (v if isinstance(v, pd.DataFrame) else pd.DataFrame([v]) if isinstance(v, dict) else v)
              for k, v in blocks.items()}
    optics = blocks.get("optics")
    if "particles" in blocks:
        particles_key = "particles"
    else:
        candidates = [k for k, v in blocks.items()
                      if isinstance(v, pd.DataFrame) and k != "optics"
                      and ("rlnImageName" in v or image_names is not None)]
        if not candidates:
            raise StarError(f"{path}: no particles table (a data block with rlnImageName) found")
        particles_key = candidates[0]
    particles = blocks[particles_key].copy()
    if not isinstance(particles, pd.DataFrame) or len(particles) == 0:
        raise StarError(f"{path}: the particles table is empty")
    if "rlnImageName" not in particles and image_names is None:
        raise StarError(f"{path}: the particles table has no rlnImageName column")
    other = {k: v for k, v in blocks.items() if k not in (particles_key, "optics")}

    if optics is not None and "rlnOpticsGroup" in particles:
        optics = optics.copy()
        ps = _pixel_size_column(optics, "optics")
        if ps is not None:
            optics["rlnImagePixelSize"] = ps
        keep = [c for c in optics.columns if (c not in particles.columns or c == "rlnOpticsGroup")
                and (columns is None or c in columns)]
        merged = particles.merge(optics[keep], on="rlnOpticsGroup", how="left", validate="many_to_one")
        missing_groups = merged[list(OPTICS_COLUMNS)[0]].isna() if OPTICS_COLUMNS[0] in merged else None
        if missing_groups is not None and missing_groups.any():
            bad = sorted(set(particles.loc[missing_groups.to_numpy(), "rlnOpticsGroup"].tolist()))
            raise StarError(f"{path}: particles refer to optics groups {bad} that the optics table lacks")
        particles = merged
    else:
        optics = None
        ps = _pixel_size_column(particles, "particles")
        if ps is not None:
            particles["rlnImagePixelSize"] = ps

    if pixel_size_angstrom is not None:
        particles["rlnImagePixelSize"] = float(pixel_size_angstrom)
    missing = [c for c in (*OPTICS_COLUMNS, *CTF_COLUMNS) if c not in particles]
    if missing:
        raise StarError(f"{path}: missing required column(s) {', '.join(missing)} (needed for the CTF)")
    if "rlnImagePixelSize" not in particles:
        raise StarError(f"{path}: no pixel size (rlnImagePixelSize, or rlnMagnification and "
                        "rlnDetectorPixelSize); pass --pixel-size")
    for c in (*OPTICS_COLUMNS, *CTF_COLUMNS, "rlnImagePixelSize"):
        values = pd.to_numeric(particles[c], errors="coerce")
        if values.isna().any():
            raise StarError(f"{path}: column {c} has missing or non-numeric values")
    for c, unit in (("rlnVoltage", "kV"), ("rlnImagePixelSize", "Angstrom")):
        values = pd.to_numeric(particles[c])
        if not (values > 0).all():
            where = "--pixel-size" if c == "rlnImagePixelSize" and pixel_size_angstrom is not None else c
            raise StarError(f"{path}: {where} must be positive ({unit}), found {float(values.min()):g}")
    contrast = pd.to_numeric(particles["rlnAmplitudeContrast"])
    if not ((contrast >= 0) & (contrast < 1)).all():
        raise StarError(f"{path}: rlnAmplitudeContrast must be in [0, 1), found {float(contrast.min()):g} to "
                        f"{float(contrast.max()):g}")
    return ParticleTable(particles=particles, optics=optics, star_path=path,
                         project_root=Path(project_root) if project_root else None, other_blocks=other,
                         stack_override=Path(stack) if stack is not None else None, image_names=image_names)


def write_star(path: str | Path, blocks: dict[str, pd.DataFrame]) -> None:
    """Write data blocks to a STAR file atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        starfile.write(blocks, tmp, overwrite=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def optics_table(optics: Optics, image_size: int, *, group_name: str = "opticsGroup1") -> pd.DataFrame:
    """A one-group RELION 3.1 optics table for images that share voltage, Cs, A and pixel size."""
    return pd.DataFrame({
        "rlnOpticsGroup": [1],
        "rlnOpticsGroupName": [group_name],
        "rlnAmplitudeContrast": [float(optics.amplitude_contrast[0])],
        "rlnSphericalAberration": [float(optics.cs_mm[0])],
        "rlnVoltage": [float(optics.voltage_kv[0])],
        "rlnImagePixelSize": [float(optics.pixel_size_angstrom[0])],
        "rlnImageSize": [int(image_size)],
        "rlnImageDimensionality": [2],
    })


class ParticleImages:
    """Read the images of a :class:`ParticleTable` in batches, memory-mapped, in table order."""

    def __init__(self, table: ParticleTable):
        self.table = table
        self.stack_paths, self.codes, self.indices = table.image_locations()
        self._stacks: dict[Path, MrcStack] = {}
        # Validate counts up front: an index beyond a stack's end is an error before any work is done.
        last_index = np.full(len(self.stack_paths), -1, dtype=np.int64)
        np.maximum.at(last_index, self.codes, self.indices)
        shapes = set()
        for p, max_index in zip(self.stack_paths, last_index):
            if max_index < 0:
                continue
            stack = self._stack(p)
            if max_index >= len(stack):
                raise StarError(f"{table.star_path}: image index {max_index + 1} is beyond the end of {p} "
                                f"({len(stack)} images)")
            shapes.add(stack.shape[1:])
        if len(shapes) != 1:
            raise StarError(f"{table.star_path}: stacks have different box sizes {sorted(shapes)}")
        self.image_shape: tuple[int, int] = shapes.pop()
        self.header_pixel_size = next(iter(self._stacks.values())).pixel_size_angstrom
        self.dtype = next(iter(self._stacks.values())).dtype

    def _stack(self, path: Path) -> MrcStack:
        if path not in self._stacks:
            # The metadata names this file as a particle stack (index@stack), so a cubic array is still a stack
            # (cryoSPARC writes stacks as .mrc and headers are unreliable); indices are checked against it.
            self._stacks[path] = MrcStack(path, allow_volume=True)
        return self._stacks[path]

    def __len__(self) -> int:
        return len(self.indices)

    def path_of(self, row: int) -> Path:
        """The stack file of particle ``row`` (0-based)."""
        return self.stack_paths[self.codes[row]]

    def read(self, rows) -> torch.Tensor:
        """Images for table rows ``rows`` (array of ints or slice), float32 ``(n, H, W)``."""
        rows = np.arange(len(self))[rows] if isinstance(rows, slice) else np.asarray(rows, dtype=np.int64)
        out = torch.empty((len(rows), *self.image_shape), dtype=torch.float32)
        codes = self.codes[rows]
        for code in np.unique(codes):
            js_arr = np.flatnonzero(codes == code)
            idx = self.indices[rows[js_arr]]
            order = np.argsort(idx, kind="stable")
            block = self._stack(self.stack_paths[code]).read(idx[order])
            out[torch.from_numpy(js_arr[order])] = block
        bad = ~torch.isfinite(out).flatten(1).all(dim=1)
        if bad.any():
            row = int(rows[int(bad.nonzero()[0, 0])])
            raise StarError(f"{self.table.star_path}: particle {row + 1} (image {int(self.indices[row]) + 1} of "
                            f"{self.path_of(row)}) has NaN or infinite pixels; remove it or repair the stack")
        return out

    def close(self) -> None:
        for s in self._stacks.values():
            s.close()
        self._stacks.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
