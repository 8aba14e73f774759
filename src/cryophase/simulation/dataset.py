"""Write a simulated data set: particle stack, truth phases, RELION 3.1 STAR file and provenance.

Outputs in ``out_dir``:

* ``particles.mrcs``: the measurement, float32 electrons per pixel, protein dark (the expected counts in
  noiseless mode);
* ``phases.mrcs``: the truth, the particle's phase relative to the ice, radians;
* ``particles.star``: RELION 3.1 optics table (one group per voltage / Cs / amplitude contrast) and particles
  table with the CTF, the pose (rlnAngleRot/Tilt/Psi, rlnOriginX/YAngst) and cryophase's own columns
  (``rlnCryophaseDose`` in e/A^2, ``rlnCryophaseIceThickness`` in A, ...);
* ``simulation.json``: cryophase version, command line, every setting and the seed.

Particles are simulated in blocks of :data:`BLOCK_SIZE`, block ``k`` from a generator seeded from ``(seed, k)``,
so the files are the same bytes whatever the chunk size, and a million particles never sit in memory at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cryophase.io.mrc import MrcStackWriter
from cryophase.io.star import write_star
from cryophase.simulation.batch import SimulatedBatch, simulate_batch
from cryophase.simulation.config import SimulationConfig
from cryophase.specimens.base import Specimen

OUTPUT_FILES = ("particles.mrcs", "phases.mrcs", "particles.star", "simulation.json")
#: Extra STAR columns written by cryophase (RELION keeps unknown labels as they are).
DOSE_COLUMN = "rlnCryophaseDose"
ICE_THICKNESS_COLUMN = "rlnCryophaseIceThickness"


#: Particles drawn from one generator and simulated as one batch. Block ``k`` holds particles
#: ``[k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE)`` and its generator is seeded from ``(seed, k)``, so results do not
#: depend on the chunk size (floating-point results of a batch can depend on the batch's size in the last bit).
BLOCK_SIZE = 32


def block_generator(seed: int, block: int, device: torch.device | str | None = None) -> torch.Generator:
    """The generator of block ``block`` of a data set with seed ``seed``."""
    return seeded_generator([int(seed), int(block)], device)


def seeded_generator(entropy: list[int], device: torch.device | str | None = None) -> torch.Generator:
    """A torch.Generator seeded by hashing ``entropy`` (numpy's SeedSequence), independent of other streams."""
    state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]
    g = torch.Generator(device=device if device is not None else "cpu")
    g.manual_seed(int(state) & ((1 << 63) - 1))
    return g


def particle_generators(seed: int, start: int, stop: int, device: torch.device | str | None = None
                        ) -> list[torch.Generator]:
    """One generator per particle index in ``[start, stop)``, seeded from ``(seed, index)``.

    For :func:`cryophase.simulation.simulate_batch` when each particle must not depend on its batch.
    """
    return [seeded_generator([int(seed), 1 << 32, int(i)], device) for i in range(start, stop)]


def rotation_to_relion_euler_degrees(rotations: torch.Tensor) -> np.ndarray:
    """RELION Euler angles (rot, tilt, psi), degrees, of rotation matrices.

    The inverse of RELION's ``Euler_angles2matrix`` (ZYZ):
    ``A = [[cg cb ca - sg sa, cg cb sa + sg ca, -cg sb], [-sg cb ca - cg sa, -sg cb sa + cg ca, sg sb],
    [sb ca, sb sa, cb]]`` with a = rot, b = tilt, g = psi; ``A`` maps reference to image coordinates, as the
    specimen rotations here do.

    Parameters
    ----------
    rotations : torch.Tensor, (B, 3, 3)

    Returns
    -------
    np.ndarray, (B, 3)
    """
    a = rotations.detach().cpu().to(torch.float64).numpy()
    tilt = np.arccos(np.clip(a[:, 2, 2], -1, 1))
    rot = np.arctan2(a[:, 2, 1], a[:, 2, 0])
    psi = np.arctan2(a[:, 1, 2], -a[:, 0, 2])
    # Gimbal lock (tilt 0 or 180): put the whole in-plane angle into psi.
    locked = np.abs(np.sin(tilt)) < 1e-6
    rot = np.where(locked, 0.0, rot)
    # tilt 0: A = Rz(psi + rot); tilt 180: A00 = -cos(psi - rot), A10 = sin(psi - rot).
    psi_locked = np.where(a[:, 2, 2] > 0, np.arctan2(-a[:, 1, 0], a[:, 0, 0]), np.arctan2(a[:, 1, 0], -a[:, 0, 0]))
    psi = np.where(locked, psi_locked, psi)
    return np.degrees(np.stack([rot, tilt, psi], axis=1))


def batch_metadata(batch: SimulatedBatch, start: int, stack_name: str = "particles.mrcs") -> pd.DataFrame:
    """Per-particle STAR rows of a simulated batch (optics columns included; grouped later)."""
    p = batch.parameters
    o = p.optics

    def col(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().to(torch.float64).numpy()

    euler = rotation_to_relion_euler_degrees(p.rotations)
    shifts = col(p.shifts_angstrom)
    n = len(batch)
    return pd.DataFrame({
        "rlnImageName": [f"{start + i + 1:06d}@{stack_name}" for i in range(n)],
        "rlnVoltage": col(o.voltage_kv),
        "rlnSphericalAberration": col(o.cs_mm),
        "rlnAmplitudeContrast": col(o.amplitude_contrast),
        "rlnDefocusU": col(o.defocus_u_angstrom),
        "rlnDefocusV": col(o.defocus_v_angstrom),
        "rlnDefocusAngle": col(o.defocus_angle_degrees),
        "rlnPhaseShift": col(o.phase_shift_degrees),
        "rlnCtfBfactor": col(o.b_factor_a2),
        "rlnAngleRot": euler[:, 0],
        "rlnAngleTilt": euler[:, 1],
        "rlnAnglePsi": euler[:, 2],
        # RELION recentres with coordinate - origin, so the particle sits at -origin from the box centre.
        "rlnOriginXAngst": -shifts[:, 1],
        "rlnOriginYAngst": -shifts[:, 0],
        DOSE_COLUMN: col(batch.physics.dose_e_per_a2),
        ICE_THICKNESS_COLUMN: col(p.ice_thickness_angstrom),
        "rlnCryophaseSpecimen": p.specimen_index.cpu().numpy().astype(np.int64) + 1,
        "rlnCryophaseNeighbours": p.neighbour_present.sum(dim=1).cpu().numpy().astype(np.int64),
        "rlnCryophaseContamination": p.contamination_present.cpu().numpy().astype(np.int64),
        "rlnCryophaseContrastFactor": col(p.contrast_factor),
    })


def star_tables(rows: pd.DataFrame, config: SimulationConfig) -> dict[str, pd.DataFrame]:
    """Split per-particle rows into a RELION 3.1 optics table (one group per voltage/Cs/A) and particles."""
    keys = ["rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast"]
    groups = rows[keys].drop_duplicates().sort_values(keys).reset_index(drop=True)
    groups["rlnOpticsGroup"] = np.arange(1, len(groups) + 1)
    particles = rows.merge(groups, on=keys, how="left")
    optics = groups.assign(
        rlnOpticsGroupName=[f"opticsGroup{i}" for i in groups["rlnOpticsGroup"]],
        rlnImagePixelSize=float(config.pixel_size_angstrom),
        rlnImageSize=int(config.box_size),
        rlnImageDimensionality=2,
    )[["rlnOpticsGroup", "rlnOpticsGroupName", *keys, "rlnImagePixelSize", "rlnImageSize",
       "rlnImageDimensionality"]]
    particles = particles.drop(columns=keys)
    first = ["rlnImageName", "rlnOpticsGroup"]
    particles = particles[first + [c for c in particles.columns if c not in first]]
    return {"optics": optics, "particles": particles}


def simulate_dataset(
    out_dir: str | Path,
    n: int,
    specimens: Sequence[Specimen],
    config: SimulationConfig,
    seed: int,
    chunk_size: int = 256,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    provenance: dict | None = None,
    progress: bool = True,
) -> Path:
    """Simulate ``n`` particles into ``out_dir`` (see the module docstring for the files).

    Parameters
    ----------
    out_dir : folder (created); existing outputs are replaced (the CLI checks ``--overwrite`` first)
    n : number of particles
    specimens : specimens to draw particles from
    config : SimulationConfig
    seed : the data set's seed; block ``k`` of :data:`BLOCK_SIZE` particles uses a generator seeded from
        ``(seed, k)``
    chunk_size : particles held in memory and written at a time, rounded up to a multiple of
        :data:`BLOCK_SIZE` (memory, not results)
    device, dtype : where and in which precision to compute
    provenance : what to record besides the simulation settings (``io.outputs.provenance``);
        ``simulation_config`` (every field of ``config``) and ``seed`` are added
    progress : show a progress bar when ``n`` exceeds one chunk

    Returns
    -------
    Path of ``particles.star``
    """
    from cryophase.io.outputs import write_json_atomic

    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shape = (config.box_size, config.box_size)
    blocks_per_chunk = max(1, math.ceil(chunk_size / BLOCK_SIZE))
    n_blocks = math.ceil(n / BLOCK_SIZE)
    particles = MrcStackWriter(out / "particles.mrcs", n, shape, config.pixel_size_angstrom)
    phases = MrcStackWriter(out / "phases.mrcs", n, shape, config.pixel_size_angstrom)
    rows: list[pd.DataFrame] = []
    try:
        chunks = range(0, n_blocks, blocks_per_chunk)
        for first in _progress(chunks, len(chunks), progress and len(chunks) > 1):
            counts, truth = [], []
            for block in range(first, min(first + blocks_per_chunk, n_blocks)):
                start = block * BLOCK_SIZE
                size = min(BLOCK_SIZE, n - start)
                batch = simulate_batch(specimens, config, size, block_generator(seed, block, device),
                                       device=device, dtype=dtype)
                counts.append(batch.counts.to(torch.float32))
                truth.append(batch.phase.to(torch.float32))
                rows.append(batch_metadata(batch, start))
            particles.write(first * BLOCK_SIZE, torch.cat(counts))
            phases.write(first * BLOCK_SIZE, torch.cat(truth))
        particles.finalize()
        phases.finalize()
    except BaseException:
        particles.abort()
        phases.abort()
        raise
    star_path = out / "particles.star"
    write_star(star_path, star_tables(pd.concat(rows, ignore_index=True), config))
    record = dict(provenance or {})
    record.update({
        "simulation_config": config.as_dict(),
        "seed": int(seed),
        "n_particles": int(n),
        "specimens": [getattr(s, "name", type(s).__name__) for s in specimens],
        "particles_units": "electrons per pixel (expected counts)" if config.noiseless else "electrons per pixel",
        "phases_units": "radians, particle relative to the ice it displaces",
        "files": list(OUTPUT_FILES),
    })
    write_json_atomic(out / "simulation.json", record)
    return star_path


def _progress(iterable, total: int, enabled: bool):
    if not enabled:
        return iterable
    from rich.progress import track

    return track(iterable, total=total, description="simulating")
