"""Phase retrieval on a user's particle stack: STAR or .cs in, ``phases.mrcs`` + ``phases.star`` out.

:func:`retrieve_stack` reads the particles in batches (memory-mapped), turns each batch into electron counts
and per-particle :class:`~cryophase.physics.forward.ImagingPhysics`, runs a registered reconstructor with a
seeded generator, and writes

* ``DIR/phases.mrcs``: the retrieved phases (radians, float32), same order, box and pixel size as the input;
* ``DIR/phases.star``: the input metadata, every column and block kept, with ``rlnImageName`` pointing into
  ``phases.mrcs`` (a cryoSPARC ``.cs`` input becomes a RELION 3.1 STAR file with optics groups);
* ``DIR/retrieve.json``: provenance (version, command line, settings, what was detected about the input);
* ``DIR/uncertainty.mrcs``: the per-pixel predictive standard deviation of the phase, for methods that sample
  (``ldm`` with ``--samples`` K > 1).

Large stacks stream: images are read memory-mapped one batch at a time (the mapping is dropped after every
chunk), results are written with ``pwrite`` into a full-size partial file, and a journal records each finished
chunk (:mod:`cryophase.resumable`), so memory does not grow with the number of particles and an interrupted run
continues with ``resume=True``. Under ``torchrun`` every rank takes its share of the chunks and rank 0 finishes
the one output. Each batch's generator is seeded from ``seed`` and the batch's first particle, so the result does
not depend on interruptions or on the number of processes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable, Iterator
from typing import Callable

import numpy as np
import pandas as pd
import torch

from cryophase.conventions import looks_like_micrometres
from cryophase.errors import CryophaseError
from cryophase.io.outputs import _jsonable, prepare_output_dir, provenance, resolve_device, write_json_atomic
from cryophase.io.particles import ImageConvention, inspect_stack, read_particle_table, to_counts
from cryophase.io.star import (OPTICS_COLUMNS, ParticleImages, ParticleTable, StarError, find_particles_table,
                               write_star)
from cryophase.io.star_text import rewrite_loop_column, scan_loop_tables
from cryophase.resumable import (ChunkRecord, ChunkWriter, Journal, Moments, batch_seed, chunk_ranges,
                                 create_partial_stack, finish_stack, journal_paths, load_finished_chunks,
                                 partial_path, remove_partial_run)
from cryophase.retrieval.base import available_methods, get_method
from cryophase.retrieval.model_grid import model_grid_notes
from cryophase.training.ddp import DistributedContext, any_rank, barrier, init_distributed, shutdown

PHASES_STACK = "phases.mrcs"
PHASES_STAR = "phases.star"
PROVENANCE_JSON = "retrieve.json"
UNCERTAINTY_STACK = "uncertainty.mrcs"
#: Its earlier name; `cryophase report` still reads folders written with it.
LEGACY_UNCERTAINTY_STACK = "phases_sd.mrcs"
OUTPUT_FILES = (PHASES_STACK, PHASES_STAR, PROVENANCE_JSON, UNCERTAINTY_STACK)


@dataclass(frozen=True)
class RetrieveConfig:
    """Settings of ``cryophase retrieve`` (the method is named separately); the CLI takes its defaults here."""

    #: Particles per batch: peak memory is about batch_size * box^2 * (a few complex copies).
    batch_size: int = 64
    #: Particles per chunk: the unit of work that is flushed to disk, journalled, resumed and shared between
    #: torchrun ranks (rounded up to whole batches).
    chunk_size: int = 2048
    #: Continue an interrupted run in the output folder (same input and settings) instead of refusing.
    resume: bool = False
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
    #: Particles this call retrieved (the rest were done by other ranks or by the interrupted run resumed).
    n_retrieved_here: int = 0
    #: This process's rank under torchrun (0 alone); only rank 0 writes the STAR and JSON files.
    rank: int = 0

    @property
    def particles_per_second(self) -> float:
        return self.n_retrieved_here / max(self.seconds, 1e-9)

    def line(self) -> str:
        resumed = "" if self.n_retrieved_here == self.n_particles else f" ({self.n_retrieved_here} by this process)"
        return (f"retrieved {self.n_particles} particles{resumed} in {self.seconds:.1f} s "
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


def output_image_names(n_particles: int, stack_path: Path) -> Iterator[str]:
    """RELION image names ``000001@stack`` for every particle, in order (generated, not stored)."""
    return (f"{i + 1:06d}@{stack_path}" for i in range(n_particles))


def write_star_like_input(table: ParticleTable, destination: Path, stack_path: Path,
                          pixel_size_angstrom: float | None) -> None:
    """Copy the input STAR file line by line, every block and column kept, ``rlnImageName`` pointing into
    ``stack_path`` (and the pixel size set to ``pixel_size_angstrom`` if it was overridden)."""
    tables = scan_loop_tables(table.star_path)
    particles = find_particles_table(table.star_path, tables)
    if particles.n_rows != len(table):
        raise StarError(f"{table.star_path}: the particles table changed while retrieving")
    set_columns = {}
    if pixel_size_angstrom is not None:
        has_optics = any(t.block == "optics" for t in tables) and "rlnOpticsGroup" in particles.columns
        set_columns["optics" if has_optics else particles.block] = {"rlnImagePixelSize": f"{pixel_size_angstrom:g}"}
    rewrite_loop_column(table.star_path, destination, particles, "rlnImageName",
                        output_image_names(len(table), stack_path), set_columns=set_columns)


def star_blocks_from_table(table: ParticleTable, image_names: Iterable[str], image_size: int) -> dict[str, pd.DataFrame]:
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
    particles["rlnImageName"] = list(image_names)
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


def _file_identity(path: Path | None) -> dict | None:
    """What identifies an input file for resuming: its absolute path, size and modification time."""
    if path is None:
        return None
    stat = Path(path).stat()
    return {"path": str(Path(path).resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def run_settings(particles_path: Path, method: str, method_options: dict, config: RetrieveConfig,
                 convention: ImageConvention, n_particles: int, image_shape: tuple[int, int]) -> dict:
    """Everything the output depends on; an interrupted run is only resumed when all of it is unchanged.

    The device is left out (a run may be resumed on another machine); ``overwrite`` and ``resume`` are how
    the run is started, not what it computes.
    """
    return _jsonable({
        "input": _file_identity(particles_path), "stack": _file_identity(config.stack),
        "method": method, "method_options": method_options, "seed": config.seed,
        "dose_e_per_a2": config.dose_e_per_a2, "pixel_size_angstrom": config.pixel_size_angstrom,
        "normalised": convention.normalised, "inverted": convention.inverted,
        "batch_size": config.batch_size, "chunk_size": config.chunk_size,
        "n_particles": n_particles, "image_shape": list(image_shape),
    })


def _validate(config: RetrieveConfig) -> None:
    if config.batch_size < 1:
        raise CryophaseError(f"--batch-size must be at least 1, got {config.batch_size}")
    if config.chunk_size < 1:
        raise CryophaseError(f"--chunk-size must be at least 1, got {config.chunk_size}")
    if config.dose_e_per_a2 is not None and not config.dose_e_per_a2 > 0:
        raise CryophaseError(f"--dose must be positive (e/A^2), got {config.dose_e_per_a2}")
    if config.pixel_size_angstrom is not None and not config.pixel_size_angstrom > 0:
        raise CryophaseError(f"--pixel-size must be positive (Angstrom), got {config.pixel_size_angstrom}")
    if config.resume and config.overwrite:
        raise CryophaseError("--resume and --overwrite contradict each other: resume keeps the finished chunks, "
                             "overwrite discards them")


def _prepare_outputs(out_dir: Path, partials: list[Path], settings: dict, config: RetrieveConfig,
                     n: int, shape: tuple[int, int], pixel_size: float) -> None:
    """Rank 0: refuse to clobber results, deal with an interrupted run, create the partial phase stack."""
    prepare_output_dir(out_dir, list(OUTPUT_FILES), overwrite=config.overwrite)
    interrupted = bool(journal_paths(out_dir)) or any(p.exists() for p in partials)
    if interrupted and config.overwrite:
        remove_partial_run(out_dir, partials)
    elif interrupted and not config.resume:
        raise CryophaseError(f"{out_dir}: holds an interrupted run; pass --resume to continue it, or --overwrite "
                             "to start again")
    elif not load_finished_chunks(out_dir, settings):  # refuses other settings with a message naming them
        remove_partial_run(out_dir, partials)  # killed before its first chunk: nothing of it can be trusted
    create_partial_stack(partials[0], n, shape, pixel_size)


def _retrieve_chunk(images: ParticleImages, table: ParticleTable, begin: int, end: int, reconstructor,
                    method: str, convention: ImageConvention, config: RetrieveConfig, device: torch.device,
                    writers: dict[str, ChunkWriter], partials: list[Path], pixel_size: float,
                    progress: Callable[[int], None], constant_rows: list[int]) -> ChunkRecord:
    """Retrieve particles ``begin .. end - 1`` batch by batch, write them, flush, and return the chunk's record.

    Constant images (no contrast at all, e.g. blank padding) get a zero phase; their rows are appended to
    ``constant_rows`` so that the caller can warn.
    """
    phase_moments, sd_moments = Moments(), None
    for first in range(begin, end, config.batch_size):
        rows = np.arange(first, min(first + config.batch_size, end))
        batch = images.read(rows).to(device)
        optics = table.optics_for(rows, dtype=torch.float32).to(device=device)
        counts, physics = to_counts(batch, optics, convention, config.dose_e_per_a2)
        generator = torch.Generator(device=device).manual_seed(batch_seed(config.seed, first))
        result = reconstructor.reconstruct(counts, physics, generator=generator)
        _check_phase(result.phase, counts, method, first, int(rows[-1]))
        phase = result.phase.detach().to(torch.float32).cpu().numpy()
        constant = (batch.amax(dim=(-2, -1)) == batch.amin(dim=(-2, -1))).cpu().numpy()
        phase[constant] = 0.0
        constant_rows.extend(int(r) for r in rows[constant])
        writers["phase"].write(first, phase)
        phase_moments = phase_moments.merge(Moments.of(phase))
        if result.uncertainty is not None:
            if "sd" not in writers:
                create_partial_stack(partials[1], len(images), images.image_shape, pixel_size)
                writers["sd"] = ChunkWriter(partials[1])
            sd = result.uncertainty.detach().to(torch.float32).cpu().numpy()
            writers["sd"].write(first, sd)
            sd_moments = (sd_moments or Moments()).merge(Moments.of(sd))
        progress(len(rows))
    for writer in writers.values():
        writer.sync()
    images.close()  # unmap the input stacks: their pages must not pile up in this process's memory
    return ChunkRecord(begin, end, phase_moments, sd_moments)


def _finish(out_dir: Path, partials: list[Path], n_chunks: int, settings: dict) -> bool:
    """Rank 0: check every chunk is recorded, write header statistics, rename into place, drop the journals.

    Returns whether an uncertainty stack was written.
    """
    finished = load_finished_chunks(out_dir, settings)
    missing = sorted(set(range(n_chunks)) - set(finished))
    if missing:
        raise RuntimeError(f"{out_dir}: chunks {missing[:5]} were not recorded as finished; rerun with --resume")
    records = [finished[i] for i in range(n_chunks)]
    phase = records[0].phase
    for r in records[1:]:
        phase = phase.merge(r.phase)
    finish_stack(partials[0], out_dir / PHASES_STACK, phase)
    has_sd = records[0].sd is not None
    if has_sd:
        sd = records[0].sd
        for r in records[1:]:
            sd = sd.merge(r.sd)
        finish_stack(partials[1], out_dir / UNCERTAINTY_STACK, sd)
    elif (out_dir / UNCERTAINTY_STACK).exists():
        (out_dir / UNCERTAINTY_STACK).unlink()  # stale, from an earlier run with a sampling method
    for path in journal_paths(out_dir):
        path.unlink()
    return has_sd


def _all_ranks_ok(error: BaseException | None, ctx: DistributedContext, what: str) -> None:
    """Collective: re-raise this rank's error, or fail every rank if another rank failed (so none hangs)."""
    if any_rank(error is not None, ctx):
        if error is not None:
            raise error
        raise CryophaseError(f"another torchrun rank failed while {what}; see its message")


def retrieve_stack(particles_path: str | Path, out_dir: str | Path, method: str, *,
                   config: RetrieveConfig = RetrieveConfig(),
                   method_options: dict | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   report: Callable[[str], None] | None = None) -> RetrieveSummary:
    """Retrieve the phase of every particle of a STAR or ``.cs`` file and write the results to ``out_dir``.

    Under ``torchrun`` (``WORLD_SIZE > 1``) every rank calls this with the same arguments; the chunks are
    shared between the ranks (each on ``cuda:LOCAL_RANK`` when CUDA is used) and one output is written.

    Parameters
    ----------
    particles_path : RELION ``.star`` or cryoSPARC ``.cs`` file.
    out_dir : output folder (created); refused if it already holds results unless ``config.overwrite``, or an
        interrupted run unless ``config.resume`` (continue it) or ``config.overwrite`` (start again).
    method : a name from :func:`cryophase.retrieval.available_methods`.
    config : RetrieveConfig
    method_options : keyword options for the reconstructor (its config fields, e.g. ``{"weights": path}``).
    progress : called as ``progress(done, total)`` after every batch, with this rank's particles.
    report : called (on rank 0) with one line for each thing detected about the input.

    Returns
    -------
    RetrieveSummary
    """
    _validate(config)
    ctx = init_distributed(resolve_device(config.device))
    started_group = ctx.distributed
    try:
        return _retrieve(Path(particles_path), Path(out_dir), method, config, method_options or {}, ctx,
                         progress, report)
    finally:
        if started_group:
            shutdown(ctx)


def _retrieve(particles_path: Path, out_dir: Path, method: str, config: RetrieveConfig, method_options: dict,
              ctx: DistributedContext, progress, report) -> RetrieveSummary:
    device = ctx.device
    reconstructor = make_reconstructor(method, method_options)
    table = read_particle_table(particles_path, pixel_size_angstrom=config.pixel_size_angstrom, stack=config.stack,
                                imaging_only=True)
    check_defocus_units(table, force=config.force)
    notes: list[str] = []
    start = time.perf_counter()
    partials = [partial_path(out_dir / PHASES_STACK), partial_path(out_dir / UNCERTAINTY_STACK)]
    with ParticleImages(table) as images:
        convention = inspect_stack(images, table, normalised=config.normalised, inverted=config.inverted)
        images.close()  # drop the sampled pages (reopened lazily, chunk by chunk)
        if report is not None and ctx.is_main:
            for line in convention.report:
                report(line)
        if convention.normalised and config.dose_e_per_a2 is None:
            raise CryophaseError(f"{particles_path}: the particles are RELION-normalised, so their electron dose "
                                 "is unknown: pass --dose (e/A^2 per particle image, e.g. 40)")
        n, (h, w) = len(images), images.image_shape
        pixel_size = _header_pixel_size(table, notes)
        if getattr(reconstructor, "grid", None) is not None:  # a learned model works on its own grid
            notes.extend(model_grid_notes((h, w), pixel_size, reconstructor.grid))
        if getattr(reconstructor, "samples", None) == 1:  # a sampler asked for one sample
            notes.append(f"{method} writes ONE posterior sample per particle: with the shipped weights one sample "
                         "scores well below the mean of many on held-out simulations (docs/model-card.md); pass "
                         "--samples 16 or more for the posterior mean and its uncertainty.mrcs")
        settings = run_settings(particles_path, method, method_options, config, convention, n, (h, w))
        chunk_size = -(-config.chunk_size // config.batch_size) * config.batch_size
        chunks = chunk_ranges(n, chunk_size)
        error = None
        if ctx.is_main:
            try:
                _prepare_outputs(out_dir, partials, settings, config, n, (h, w), pixel_size)
            except Exception as exc:  # every rank must learn of it, or the others wait forever
                error = exc
        _all_ranks_ok(error, ctx, "preparing the output folder")
        finished = load_finished_chunks(out_dir, settings)
        if finished and ctx.is_main:
            notes.append(f"resumed: {sum(r.end - r.begin for r in finished.values())} of {n} particles were "
                         "already done")
        pending = [i for i in range(len(chunks)) if i not in finished]
        mine = pending[ctx.rank::ctx.world_size]
        barrier(ctx)  # every rank has read the journals before any rank adds to them: the shares are disjoint
        total_here = sum(chunks[i][1] - chunks[i][0] for i in mine)
        done_here = 0

        def advance(count: int) -> None:
            nonlocal done_here
            done_here += count
            if progress is not None:
                progress(done_here, total_here)

        journal = Journal(out_dir, ctx.rank, settings)
        writers = {"phase": ChunkWriter(partials[0])}
        constant_rows: list[int] = []
        try:
            for index in mine:
                begin, end = chunks[index]
                journal.add(index, _retrieve_chunk(images, table, begin, end, reconstructor, method, convention,
                                                   config, device, writers, partials, pixel_size, advance,
                                                   constant_rows))
        except Exception as exc:
            error = exc
        finally:
            for writer in writers.values():
                writer.close()
        _all_ranks_ok(error, ctx, "retrieving")
        if constant_rows:
            shown = ", ".join(str(r + 1) for r in constant_rows[:5]) + (", ..." if len(constant_rows) > 5 else "")
            notes.append(f"{len(constant_rows)} particle(s) are constant images with no contrast (particle "
                         f"{shown}); their phase is set to zero")
    seconds = time.perf_counter() - start
    stack_path, star_path, json_path = out_dir / PHASES_STACK, out_dir / PHASES_STAR, out_dir / PROVENANCE_JSON
    summary = RetrieveSummary(n, seconds, stack_path, star_path, json_path, convention, notes, done_here, ctx.rank)
    if ctx.is_main:
        try:
            has_sd = _finish(out_dir, partials, len(chunks), settings)
            _write_metadata(table, particles_path, method, method_options, config, convention, notes, summary,
                            has_sd, (h, w), device, ctx.world_size)
        except Exception as exc:
            error = exc
    _all_ranks_ok(error, ctx, "finishing the outputs")
    return summary


def _write_metadata(table: ParticleTable, particles_path: Path, method: str, method_options: dict,
                    config: RetrieveConfig, convention: ImageConvention, notes: list[str], summary: RetrieveSummary,
                    has_sd: bool, image_shape: tuple[int, int], device: torch.device, world_size: int) -> None:
    """Rank 0: ``phases.star`` (input metadata pointing into ``phases.mrcs``) and ``retrieve.json``."""
    n = summary.n_particles
    h, w = image_shape
    if table.star_path.suffix.lower() == ".star":
        write_star_like_input(table, summary.phases_star, summary.phases_stack, config.pixel_size_angstrom)
    else:
        write_star(summary.phases_star, star_blocks_from_table(table, output_image_names(n, summary.phases_stack), h))
    out_dir = summary.phases_stack.parent
    write_json_atomic(summary.provenance_json, {
        **provenance(config),
        "method": method,
        "method_options": method_options,
        "input": str(particles_path),
        "n_particles": n,
        "image_shape": [h, w],
        "device": str(device),
        "world_size": world_size,
        "input_convention": {
            "normalised": convention.normalised, "normalised_source": convention.normalised_source,
            "inverted": convention.inverted, "inverted_source": convention.inverted_source,
            "report": list(convention.report),
        },
        "notes": notes,
        "seconds": summary.seconds,
        "outputs": {"phases": str(summary.phases_stack), "star": str(summary.phases_star),
                    "uncertainty": str(out_dir / UNCERTAINTY_STACK) if has_sd else None},
    })
