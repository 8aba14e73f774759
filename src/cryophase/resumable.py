"""Resumable, shardable output stacks: a full-size partial MRC file filled chunk by chunk, and a journal.

A large ``retrieve`` writes its results into ``DIR/.phases.mrcs.partial`` (created once, at full size, sparse) with
``pwrite`` at each chunk's offset, so

* nothing is memory-mapped for writing: the process's resident memory does not grow with the stack;
* several processes (``torchrun`` ranks) can fill disjoint chunks of the same file;
* after every chunk the data is ``fsync``-ed and the chunk recorded in this process's journal
  ``DIR/.retrieve-journal.rank<R>.json`` (written atomically), so a killed run continues with ``--resume``
  from the last recorded chunk and never trusts a chunk that was not flushed.

Every journal carries the run's settings; resuming with other settings or another input is refused. Header
statistics (min, max, mean, rms) are accumulated per chunk so finishing never re-reads the stack.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import mrcfile
import numpy as np
from mrcfile.dtypes import HEADER_DTYPE

from cryophase.errors import CryophaseError
from cryophase.io.atomic import temporary_sibling
from cryophase.io.mrc import label_header, pwrite_all
from cryophase.io.outputs import write_json_atomic

JOURNAL_PREFIX = ".retrieve-journal.rank"
MRC_MODE_FLOAT32 = 2


def partial_path(path: Path) -> Path:
    """Where the unfinished version of ``path`` lives: a hidden ``.NAME.partial`` beside it."""
    return path.parent / f".{path.name}.partial"


def chunk_ranges(n_particles: int, chunk_size: int) -> list[tuple[int, int]]:
    """``[(begin, end), ...]`` covering ``0 .. n_particles`` in steps of ``chunk_size``."""
    return [(b, min(b + chunk_size, n_particles)) for b in range(0, n_particles, chunk_size)]


def batch_seed(seed: int, first_particle: int) -> int:
    """Seed of the generator for the batch starting at ``first_particle``: independent of where a run was
    interrupted or which process ran the batch."""
    words = np.random.SeedSequence([int(seed), int(first_particle)]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def create_partial_stack(path: Path, n_images: int, shape: tuple[int, int], pixel_size_angstrom: float) -> None:
    """Create the full-size float32 MRC stack ``path`` (sparse on disk) unless it exists; safe between processes.

    The file is built under a temporary name and hard-linked into place, so concurrent callers never see a
    half-written header, and one that loses the race leaves the winner's file alone.
    """
    if path.exists():
        return
    tmp = temporary_sibling(path)
    try:
        mrc = mrcfile.new_mmap(tmp, shape=(n_images, *shape), mrc_mode=MRC_MODE_FLOAT32, overwrite=True)
        mrc.set_image_stack()
        mrc.voxel_size = float(pixel_size_angstrom)
        label_header(mrc)
        mrc.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)


def _read_header(fd: int) -> np.ndarray:
    raw = os.pread(fd, HEADER_DTYPE.itemsize, 0)
    return np.frombuffer(raw, dtype=HEADER_DTYPE).copy()


class ChunkWriter:
    """Write float32 images into a stack made by :func:`create_partial_stack`, at any image index."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDWR)
        header = _read_header(self._fd)
        self.n_images = int(header["nz"][0])
        self.shape = (int(header["ny"][0]), int(header["nx"][0]))
        self._data_offset = HEADER_DTYPE.itemsize + int(header["nsymbt"][0])
        self._frame_bytes = self.shape[0] * self.shape[1] * 4

    def write(self, start: int, images: np.ndarray) -> None:
        """Write ``images`` (n, H, W) at image index ``start``."""
        data = np.ascontiguousarray(images, dtype=np.float32)
        if data.shape[1:] != self.shape or start < 0 or start + data.shape[0] > self.n_images:
            raise ValueError(f"{self.path}: cannot write images of shape {data.shape} at index {start} into a "
                             f"stack of {self.n_images} x {self.shape}")
        pwrite_all(self._fd, data, self._data_offset + start * self._frame_bytes)

    def sync(self) -> None:
        """Make everything written so far durable (before it is recorded in a journal)."""
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclass
class Moments:
    """min, max, sum and sum of squares of a set of pixels (float64), mergeable across chunks."""

    count: int = 0
    minimum: float = math.inf
    maximum: float = -math.inf
    total: float = 0.0
    total_sq: float = 0.0

    @classmethod
    def of(cls, values: np.ndarray) -> "Moments":
        v = np.asarray(values, dtype=np.float64)
        return cls(int(v.size), float(v.min()), float(v.max()), float(v.sum()), float((v * v).sum()))

    def merge(self, other: "Moments") -> "Moments":
        return Moments(self.count + other.count, min(self.minimum, other.minimum),
                       max(self.maximum, other.maximum), self.total + other.total, self.total_sq + other.total_sq)

    @property
    def mean(self) -> float:
        return self.total / max(self.count, 1)

    @property
    def rms(self) -> float:
        """The MRC header's ``rms``: the standard deviation of the pixels."""
        return math.sqrt(max(self.total_sq / max(self.count, 1) - self.mean**2, 0.0))


def finish_stack(partial: Path, final: Path, moments: Moments) -> None:
    """Write the header statistics into ``partial`` and rename it to ``final``."""
    fd = os.open(partial, os.O_RDWR)
    try:
        header = _read_header(fd)
        header["dmin"], header["dmax"] = moments.minimum, moments.maximum
        header["dmean"], header["rms"] = moments.mean, moments.rms
        os.pwrite(fd, header.tobytes(), 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, final)


@dataclass
class ChunkRecord:
    """A finished chunk: its particle range and the statistics of what was written for it."""

    begin: int
    end: int
    phase: Moments
    sd: Moments | None

    @classmethod
    def from_json(cls, data: dict) -> "ChunkRecord":
        return cls(int(data["begin"]), int(data["end"]), Moments(**data["phase"]),
                   Moments(**data["sd"]) if data.get("sd") is not None else None)


def journal_paths(out_dir: Path) -> list[Path]:
    return sorted(Path(out_dir).glob(f"{JOURNAL_PREFIX}*.json"))


def _differences(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in keys if old.get(k) != new.get(k)]


def load_finished_chunks(out_dir: Path, settings: dict) -> dict[int, ChunkRecord]:
    """Every chunk recorded by any process's journal in ``out_dir``, keyed by chunk index.

    Raises
    ------
    CryophaseError
        If a journal was written with other ``settings`` (input, method, sizes, ...), naming what differs.
    """
    finished: dict[int, ChunkRecord] = {}
    for path in journal_paths(out_dir):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CryophaseError(f"{path}: unreadable resume journal ({exc}); start again with --overwrite") from None
        if data.get("settings") != settings:
            changed = "; ".join(_differences(data.get("settings") or {}, settings))
            raise CryophaseError(f"{out_dir}: the interrupted run there used other settings or input ({changed}); "
                                 "resume with the same ones, or start again with --overwrite")
        for key, record in data["chunks"].items():
            finished[int(key)] = ChunkRecord.from_json(record)
    return finished


class Journal:
    """This process's record of finished chunks, rewritten atomically after each one."""

    def __init__(self, out_dir: Path, rank: int, settings: dict):
        self.path = Path(out_dir) / f"{JOURNAL_PREFIX}{rank}.json"
        self.settings = settings
        self.chunks: dict[int, ChunkRecord] = {}
        if self.path.exists():  # keep what an earlier run of this rank recorded
            self.chunks = {int(k): ChunkRecord.from_json(v)
                           for k, v in json.loads(self.path.read_text())["chunks"].items()}

    def add(self, index: int, record: ChunkRecord) -> None:
        self.chunks[index] = record
        write_json_atomic(self.path, {"settings": self.settings,
                                      "chunks": {str(k): asdict(v) for k, v in sorted(self.chunks.items())}})


def remove_partial_run(out_dir: Path, partials: list[Path]) -> None:
    """Delete an interrupted run's journals and partial stacks."""
    for path in [*journal_paths(out_dir), *partials]:
        path.unlink(missing_ok=True)
