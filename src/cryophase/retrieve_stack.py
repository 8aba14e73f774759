"""Phase retrieval on a user's particle stack: STAR or .cs in, ``phases.mrcs`` + ``phases.star`` out.

:func:`retrieve_stack` reads the particles in batches (memory-mapped), turns each batch into electron counts
and per-particle :class:`~cryophase.physics.forward.ImagingPhysics`, runs a registered reconstructor with a
seeded generator, and writes

* ``DIR/phases.mrcs``: the retrieved phases (radians, float32), same order, box and pixel size as the input;
* ``DIR/phases.star``: the input metadata, every column and block kept, with ``rlnImageName`` pointing into
  ``phases.mrcs`` (a cryoSPARC ``.cs`` input becomes a RELION 3.1 STAR file with optics groups);
* ``DIR/retrieve.json``: provenance (version, command line, settings, what was detected about the input);
* ``DIR/phases_sd.mrcs``: the per-pixel standard deviation, for methods that sample (``ldm``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import starfile
import torch

from cryophase.conventions import looks_like_micrometres
from cryophase.errors import CryophaseError
from cryophase.io.mrc import MrcStackWriter
from cryophase.io.outputs import prepare_output_dir, provenance, resolve_device, write_json_atomic
from cryophase.io.particles import ImageConvention, inspect_stack, read_particle_table, to_counts
from cryophase.io.star import OPTICS_COLUMNS, ParticleImages, ParticleTable, StarError, write_star
from cryophase.retrieval.base import available_methods, get_method

PHASES_STACK = "phases.mrcs"
PHASES_STAR = "phases.star"
PROVENANCE_JSON = "retrieve.json"
UNCERTAINTY_STACK = "phases_sd.mrcs"
OUTPUT_FILES = (PHASES_STACK, PHASES_STAR, PROVENANCE_JSON, UNCERTAINTY_STACK)


@dataclass(frozen=True)
class RetrieveConfig:
    """Settings of ``cryophase retrieve`` (the method is named separately); the CLI takes its defaults here."""

    #: Particles per batch: peak memory is about batch_size * box^2 * (a few complex copies).
    batch_size: int = 64
    #: "auto" uses CUDA when present, else the CPU.
    device: str = "auto"
    #: Seed of the torch.Generator handed to the reconstructor (for sampling methods).
    seed: int = 0
    #: Electron dose per particle image, e/A^2; required for RELION-normalised particles, otherwise taken
    #: from each image's mean (counts / pixel area).
    dose_e_per_a2: float | None = None
    #: Override the detection: True = RELION-normalised, False = electron counts, None = detect.
    normalised: bool | None = None
    #: Override the detection: True = contrast-inverted (protein white), None = detect.
    inverted: bool | None = None
    #: Override the pixel size in the metadata, Angstrom.
    pixel_size_angstrom: float | None = None
    #: Read images from this stack instead of the one the metadata names.
    stack: Path | None = None
    #: Replace results already in the output folder.
    overwrite: bool = False
    #: Run even if the defocus looks like micrometres.
    force: bool = False


@dataclass
class RetrieveSummary:
    """What :func:`retrieve_stack` did."""

    n_particles: int
    seconds: float
    phases_stack: Path
    phases_star: Path
    provenance_json: Path
    convention: ImageConvention
    notes: list[str] = field(default_factory=list)

    @property
    def particles_per_second(self) -> float:
        return self.n_particles / max(self.seconds, 1e-9)

    def line(self) -> str:
        return (f"retrieved {self.n_particles} particles in {self.seconds:.1f} s "
                f"({self.particles_per_second:.1f} particles/s) -> {self.phases_star}")


def parse_method_options(items: list[str]) -> dict[str, object]:
    """``["n_steps=50", "sampler=ddim", "ssnr=null"]`` -> ``{"n_steps": 50, "sampler": "ddim", "ssnr": None}``.

    Values are read as JSON (numbers, true/false, null), anything else is kept as a string.
    """
    options: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise CryophaseError(f"--option {item!r}: expected KEY=VALUE, e.g. --option n_steps=50")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        options[key.strip().replace("-", "_")] = value
    return options


def make_reconstructor(method: str, options: dict[str, object]):
    """``get_method(method, **options)`` with one-line errors for unknown methods and options."""
    if method not in available_methods():
        raise CryophaseError(f"unknown method {method!r}; choose from {', '.join(available_methods())}")
    try:
        return get_method(method, **options)
    except TypeError as exc:
        raise CryophaseError(f"method {method!r} does not take option(s) {', '.join(options)} ({exc})") from None


def check_defocus_units(table: ParticleTable, *, force: bool) -> None:
    """Refuse defocus values that look like micrometres (RELION wants Angstrom) unless ``force``."""
    defocus = torch.tensor(table.particles["rlnDefocusU"].to_numpy(dtype=np.float64, copy=True))
    if looks_like_micrometres(defocus) and not force:
        raise CryophaseError(
            f"{table.star_path}: rlnDefocusU is at most {float(defocus.abs().max()):.3g}, which looks like "
            "micrometres; RELION defocus is in Angstrom (e.g. 15000). Fix the file, or pass --force to use "
            "the values as Angstrom")


def output_image_names(n_particles: int, stack_path: Path) -> list[str]:
    """RELION image names ``000001@stack`` for every particle, in order."""
    return [f"{i + 1:06d}@{stack_path}" for i in range(n_particles)]


def _particles_block_key(blocks: dict) -> str:
    if "particles" in blocks:
        return "particles"
    for key, value in blocks.items():
        if isinstance(value, pd.DataFrame) and "rlnImageName" in value and key != "optics":
            return key
    raise StarError("no particles table (a data block with rlnImageName) found")


def star_blocks_from_star(table: ParticleTable, image_names: list[str],
                          pixel_size_angstrom: float | None) -> dict[str, pd.DataFrame]:
    """The input STAR file's blocks, unchanged but for ``rlnImageName`` (and the pixel size if overridden)."""
    blocks = starfile.read(table.star_path, always_dict=True)
    key = _particles_block_key(blocks)
    particles = blocks[key].copy()
    if len(particles) != len(image_names):
        raise StarError(f"{table.star_path}: the particles table changed while retrieving")
    particles["rlnImageName"] = image_names
    blocks[key] = particles
    if pixel_size_angstrom is not None:
        if "optics" in blocks and "rlnOpticsGroup" in particles:
            optics = blocks["optics"].copy()
            optics["rlnImagePixelSize"] = float(pixel_size_angstrom)
            blocks["optics"] = optics
        else:
            particles["rlnImagePixelSize"] = float(pixel_size_angstrom)
    return blocks


def star_blocks_from_table(table: ParticleTable, image_names: list[str], image_size: int) -> dict[str, pd.DataFrame]:
    """RELION 3.1 blocks (optics + particles) for a table without an optics table (e.g. from a ``.cs`` file).

    Particles sharing voltage, Cs, amplitude contrast and pixel size form one optics group.
    """
    particles = table.particles.copy()
    keys = [*OPTICS_COLUMNS, "rlnImagePixelSize"]
    groups = particles[keys].drop_duplicates().reset_index(drop=True)
    groups.insert(0, "rlnOpticsGroup", np.arange(1, len(groups) + 1))
    groups.insert(1, "rlnOpticsGroupName", [f"opticsGroup{i}" for i in groups["rlnOpticsGroup"]])
    groups["rlnImageSize"] = int(image_size)
    groups["rlnImageDimensionality"] = 2
    particles = particles.merge(groups[["rlnOpticsGroup", *keys]], on=keys, how="left", validate="many_to_one")
    particles = particles.drop(columns=keys)
    particles["rlnImageName"] = image_names
    return {"optics": groups, "particles": particles}


def _header_pixel_size(table: ParticleTable, notes: list[str]) -> float:
    sizes = np.unique(table.particles["rlnImagePixelSize"].to_numpy(dtype=np.float64))
    if len(sizes) > 1:
        notes.append(f"the particles have {len(sizes)} pixel sizes ({sizes.min():.4g}-{sizes.max():.4g} A); "
                     f"the MRC header of {PHASES_STACK} carries the first particle's, the STAR file each one's")
    return float(table.particles["rlnImagePixelSize"].iloc[0])


def _check_phase(phase: torch.Tensor, counts: torch.Tensor, method: str, first: int, last: int) -> None:
    if phase.shape != counts.shape or not torch.isfinite(phase).all():
        raise RuntimeError(f"method {method!r} returned a phase of shape {tuple(phase.shape)} with "
                           f"{int((~torch.isfinite(phase)).sum())} non-finite values for particles "
                           f"{first + 1}-{last + 1}")


def retrieve_stack(particles_path: str | Path, out_dir: str | Path, method: str, *,
                   config: RetrieveConfig = RetrieveConfig(),
                   method_options: dict | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   report: Callable[[str], None] | None = None) -> RetrieveSummary:
    """Retrieve the phase of every particle of a STAR or ``.cs`` file and write the results to ``out_dir``.

    Parameters
    ----------
    particles_path : RELION ``.star`` or cryoSPARC ``.cs`` file.
    out_dir : output folder (created); refused if it already holds results unless ``config.overwrite``.
    method : a name from :func:`cryophase.retrieval.available_methods`.
    config : RetrieveConfig
    method_options : keyword options for the reconstructor (its config fields, e.g. ``{"weights": path}``).
    progress : called as ``progress(done, total)`` after every batch.
    report : called with one line for each thing detected about the input.

    Returns
    -------
    RetrieveSummary
    """
    particles_path, out_dir = Path(particles_path), Path(out_dir)
    if config.batch_size < 1:
        raise CryophaseError(f"--batch-size must be at least 1, got {config.batch_size}")
    if config.dose_e_per_a2 is not None and not config.dose_e_per_a2 > 0:
        raise CryophaseError(f"--dose must be positive (e/A^2), got {config.dose_e_per_a2}")
    device = resolve_device(config.device)
    reconstructor = make_reconstructor(method, method_options or {})
    table = read_particle_table(particles_path, pixel_size_angstrom=config.pixel_size_angstrom, stack=config.stack)
    check_defocus_units(table, force=config.force)
    notes: list[str] = []
    start = time.perf_counter()
    with ParticleImages(table) as images:
        convention = inspect_stack(images, table, normalised=config.normalised, inverted=config.inverted)
        for line in convention.report:
            if report is not None:
                report(line)
        if convention.normalised and config.dose_e_per_a2 is None:
            raise CryophaseError(f"{particles_path}: the particles are RELION-normalised, so their electron dose "
                                 "is unknown: pass --dose (e/A^2 per particle image, e.g. 40)")
        prepare_output_dir(out_dir, list(OUTPUT_FILES), overwrite=config.overwrite)
        n, (h, w) = len(images), images.image_shape
        stack_path = out_dir / PHASES_STACK
        pixel_size = _header_pixel_size(table, notes)
        writer = MrcStackWriter(stack_path, n, (h, w), pixel_size)
        sd_writer: MrcStackWriter | None = None
        generator = torch.Generator(device=device).manual_seed(config.seed)
        try:
            for begin in range(0, n, config.batch_size):
                rows = np.arange(begin, min(begin + config.batch_size, n))
                batch = images.read(rows).to(device)
                optics = table.optics_for(rows, dtype=torch.float32).to(device=device)
                counts, physics = to_counts(batch, optics, convention, config.dose_e_per_a2)
                result = reconstructor.reconstruct(counts, physics, generator=generator)
                _check_phase(result.phase, counts, method, begin, int(rows[-1]))
                writer.write(begin, result.phase.to(torch.float32))
                if result.uncertainty is not None:
                    if sd_writer is None:
                        sd_writer = MrcStackWriter(out_dir / UNCERTAINTY_STACK, n, (h, w), pixel_size)
                    sd_writer.write(begin, result.uncertainty.to(torch.float32))
                if progress is not None:
                    progress(int(rows[-1]) + 1, n)
            writer.finalize()
            if sd_writer is not None:
                sd_writer.finalize()
        except BaseException:
            writer.abort()
            if sd_writer is not None:
                sd_writer.abort()
            raise
    seconds = time.perf_counter() - start
    if sd_writer is None and (out_dir / UNCERTAINTY_STACK).exists():
        (out_dir / UNCERTAINTY_STACK).unlink()  # stale, from an earlier run with a sampling method
    names = output_image_names(n, stack_path)
    if table.star_path.suffix.lower() == ".star":
        blocks = star_blocks_from_star(table, names, config.pixel_size_angstrom)
    else:
        blocks = star_blocks_from_table(table, names, h)
    star_path = out_dir / PHASES_STAR
    write_star(star_path, blocks)
    json_path = out_dir / PROVENANCE_JSON
    write_json_atomic(json_path, {
        **provenance(config),
        "method": method,
        "method_options": method_options or {},
        "input": str(particles_path),
        "n_particles": n,
        "image_shape": [h, w],
        "device": str(device),
        "input_convention": {
            "normalised": convention.normalised, "normalised_source": convention.normalised_source,
            "inverted": convention.inverted, "inverted_source": convention.inverted_source,
            "report": list(convention.report),
        },
        "notes": notes,
        "seconds": seconds,
        "outputs": {"phases": str(stack_path), "star": str(star_path),
                    "uncertainty": str(out_dir / UNCERTAINTY_STACK) if sd_writer is not None else None},
    })
    return RetrieveSummary(n, seconds, stack_path, star_path, json_path, convention, notes)
