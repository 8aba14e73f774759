"""Turn the user's specimen sources (files, folders, the word "synthetic") into specimens."""

from __future__ import annotations

from pathlib import Path

import torch

from cryophase.errors import CryophaseError
from cryophase.specimens.atoms import STRUCTURE_SUFFIXES, AtomicModel
from cryophase.specimens.base import Specimen
from cryophase.specimens.maps import MAP_SUFFIXES, DensityMap
from cryophase.specimens.phase_stack import PHASE_STACK_SUFFIXES, phase_stack_specimens
from cryophase.specimens.synthetic import SyntheticProteinConfig, random_synthetic_protein

SYNTHETIC = "synthetic"
#: Number of random synthetic proteins drawn for the source "synthetic".
DEFAULT_SYNTHETIC_POOL_SIZE = 32


def load_specimens(
    sources: list[str],
    generator: torch.Generator,
    *,
    synthetic_pool_size: int = DEFAULT_SYNTHETIC_POOL_SIZE,
    synthetic_config: SyntheticProteinConfig | None = None,
) -> list[Specimen]:
    """Load every specimen named by ``sources``.

    Parameters
    ----------
    sources : list of str
        Each is ``"synthetic"`` (a pool of ``synthetic_pool_size`` random synthetic proteins), a PDB/mmCIF file
        (.pdb, .ent, .cif, .mmcif, optionally .gz), an MRC map (.mrc, .map, .ccp4), or a folder (every structure
        and map file directly in it, sorted by name).
    generator : torch.Generator
        Draws the synthetic proteins.
    synthetic_pool_size : int
    synthetic_config : SyntheticProteinConfig, optional
        Defaults to ``SyntheticProteinConfig()``.

    Returns
    -------
    list of Specimen, in the order of ``sources``.
    """
    if not sources:
        raise CryophaseError("no specimen source given (use 'synthetic', a PDB/mmCIF file, an MRC map or a folder)")
    specimens: list[Specimen] = []
    for source in sources:
        if source.strip().lower() == SYNTHETIC:
            if synthetic_pool_size < 1:
                raise CryophaseError(f"synthetic_pool_size must be >= 1, got {synthetic_pool_size}")
            config = synthetic_config if synthetic_config is not None else SyntheticProteinConfig()
            specimens += [random_synthetic_protein(config, generator) for _ in range(synthetic_pool_size)]
            continue
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such specimen file or folder (or use the word '{SYNTHETIC}')")
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and _kind(p) is not None)
            if not files:
                raise CryophaseError(f"{path}: folder holds no structure ({', '.join(STRUCTURE_SUFFIXES)}) or map "
                                     f"({', '.join(MAP_SUFFIXES)}) file")
            specimens += [s for p in files for s in load_specimen_files(p)]
        else:
            specimens += load_specimen_files(path)
    return specimens


def load_specimen_files(path: Path) -> list[Specimen]:
    """The specimens in one file: a structure or map gives one, a ``.mrcs`` phase stack one per image."""
    if _kind(path) == "phase_stack":
        return list(phase_stack_specimens(path))
    return [load_specimen_file(path)]


def load_specimen_file(path: Path) -> Specimen:
    """One structure or map file, by its extension (a ``.mrcs`` phase stack gives one specimen per image: use
    :func:`load_specimen_files`)."""
    kind = _kind(path)
    if kind == "structure":
        return AtomicModel.from_file(path)
    if kind == "map":
        return DensityMap.from_file(path)
    raise CryophaseError(f"{path}: unknown specimen file type; expected a structure "
                         f"({', '.join(STRUCTURE_SUFFIXES)}), a map ({', '.join(MAP_SUFFIXES)}) or a phase stack "
                         f"({', '.join(PHASE_STACK_SUFFIXES)})")


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(PHASE_STACK_SUFFIXES):
        return "phase_stack"
    if name.endswith(STRUCTURE_SUFFIXES):
        return "structure"
    if name.endswith(MAP_SUFFIXES):
        return "map"
    return None
