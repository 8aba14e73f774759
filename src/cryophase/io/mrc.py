"""MRC stacks (via mrcfile): memory-mapped reading, atomic writing, pixel size in the header.

Particle stacks are ``(N, H, W)``; a single image is ``(1, H, W)``. Float16 (MRC mode 12) is read and converted
to float32.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import torch

from cryophase.io.atomic import temporary_sibling

class MrcError(ValueError):
    """A file that is not a readable MRC particle stack."""


def _open(path: Path, *, mmap: bool):
    """Open an MRC file read-only, permissively (many real stacks lack the MAP ID), then check it is sane."""
    path = Path(path)
    if not path.exists():
        raise MrcError(f"{path}: no such file")
    if path.is_dir():
        raise MrcError(f"{path}: is a folder, not an MRC file")
    if not os.access(path, os.R_OK):
        raise MrcError(f"{path}: not readable (permission denied)")
    if path.stat().st_size < 1024:
        raise MrcError(f"{path}: not an MRC file (smaller than the 1024-byte MRC header)")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mrc = (mrcfile.mmap if mmap else mrcfile.open)(path, mode="r", permissive=True)
    except Exception as exc:  # mrcfile raises ValueError / OSError with variable messages
        raise MrcError(f"{path}: not a valid MRC file ({exc})") from None
    problems = [str(w.message) for w in caught if "machine stamp" not in str(w.message)
                and "Map ID" not in str(w.message)]
    if mrc.data is None:
        mrc.close()
        detail = problems[0] if problems else "no readable data"
        raise MrcError(f"{path}: not a valid or complete MRC file ({detail})")
    h = mrc.header
    if min(int(h.nx), int(h.ny), int(h.nz)) <= 0:
        mrc.close()
        raise MrcError(f"{path}: not a valid MRC file (dimensions {int(h.nx)}x{int(h.ny)}x{int(h.nz)})")
    return mrc


def read_header_pixel_size_angstrom(path: str | Path) -> float | None:
    """Pixel size from the MRC header (voxel_size.x), or ``None`` when the header says 0."""
    with _open(Path(path), mmap=True) as mrc:
        value = float(mrc.voxel_size.x)
    return value if value > 0 else None


def looks_like_volume(path: Path, shape: tuple[int, ...], space_group: int) -> bool:
    """Heuristic: a cubic array that is not named ``.mrcs`` or whose header says volume (space group > 0).

    Header flags alone are unreliable (RELION and cryoSPARC stacks often carry space group 1), so a stack is
    only called a volume when it is also cubic.
    """
    cubic = len(shape) == 3 and shape[0] > 1 and shape[0] == shape[1] == shape[2]
    return cubic and (space_group != 0 or Path(path).suffix.lower() in (".mrc", ".map", ".rec"))


class MrcStack:
    """A memory-mapped particle stack; slicing returns float32 torch tensors ``(n, H, W)``.

    Peak memory is the slice asked for, not the file.
    """

    def __init__(self, path: str | Path, *, allow_volume: bool = False):
        self.path = Path(path)
        self._mrc = _open(self.path, mmap=True)
        data = self._mrc.data
        if data is None:
            raise MrcError(f"{self.path}: the MRC file holds no data")
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3:
            raise MrcError(f"{self.path}: expected a stack of 2D images, got an array of shape {data.shape}")
        if not allow_volume and looks_like_volume(self.path, data.shape, int(self._mrc.header.ispg)):
            raise MrcError(
                f"{self.path}: this looks like a 3D volume ({data.shape[0]}x{data.shape[1]}x{data.shape[2]}), "
                "not a particle stack; give a .mrcs stack of 2D particle images"
            )
        self._data = data

    def __len__(self) -> int:
        return int(self._data.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self._data.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def pixel_size_angstrom(self) -> float | None:
        value = float(self._mrc.voxel_size.x)
        return value if value > 0 else None

    def read(self, indices) -> torch.Tensor:
        """Images at ``indices`` (a slice, int array or list) as float32 ``(n, H, W)``."""
        if isinstance(indices, slice):
            block = np.asarray(self._data[indices])
        else:
            idx = np.asarray(indices, dtype=np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
                bad = int(idx.max()) if idx.max() >= len(self) else int(idx.min())
                raise MrcError(f"{self.path}: image index {bad + 1} is beyond the stack's end ({len(self)} images)")
            block = np.asarray(self._data[idx])
        return torch.from_numpy(block.astype(np.float32, copy=True))

    def close(self) -> None:
        self._mrc.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_stack(path: str | Path) -> tuple[torch.Tensor, float | None]:
    """Read a whole stack into memory as float32 ``(N, H, W)`` with its header pixel size (or None)."""
    with MrcStack(path) as stack:
        return stack.read(slice(None)), stack.pixel_size_angstrom


def label_header(mrc) -> None:
    """Replace mrcfile's ``Created by mrcfile.py <date time>`` label with ``cryophase <version>``.

    The label carries no time, so the same data give the same bytes (reproducible outputs).
    """
    from cryophase import __version__

    mrc.header.label[0] = f"cryophase {__version__}".encode()
    mrc.header.nlabl = 1


def _atomic_target(path: Path) -> Path:
    return temporary_sibling(path)


def write_stack(path: str | Path, images: torch.Tensor | np.ndarray, pixel_size_angstrom: float,
                *, dtype=np.float32) -> None:
    """Write ``(N, H, W)`` images as an MRC stack, atomically (temporary file, then rename).

    The header carries the pixel size and marks the file as an image stack (space group 0).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise ValueError(f"write_stack expects (N, H, W) images, got shape {data.shape}")
    tmp = _atomic_target(path)
    try:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(data.astype(dtype, copy=False)))
            mrc.set_image_stack()
            mrc.voxel_size = float(pixel_size_angstrom)
            label_header(mrc)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def pwrite_all(fd: int, data: np.ndarray, offset: int) -> None:
    """Write all bytes of a C-contiguous array at ``offset`` of file descriptor ``fd`` (no memory map)."""
    view = memoryview(np.ascontiguousarray(data)).cast("B")
    while view.nbytes:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class MrcStackWriter:
    """Write a stack of known size in chunks, without holding it in memory.

    The file is created at full size (sparse) in a temporary path, filled chunk by chunk with ``pwrite`` (no
    memory map, so the resident memory of a writer does not grow with the stack), and renamed into place by
    :meth:`finalize`, which writes the header statistics accumulated chunk by chunk. Used by ``simulate``.
    """

    def __init__(self, path: str | Path, n_images: int, shape: tuple[int, int], pixel_size_angstrom: float,
                 *, dtype=np.float32, tmp_path: str | Path | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_path = Path(tmp_path) if tmp_path is not None else _atomic_target(self.path)
        self.n_images = n_images
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        mrc = mrcfile.new_mmap(self.tmp_path, shape=(n_images, *shape), mrc_mode=_mode(dtype), overwrite=True)
        mrc.set_image_stack()
        mrc.voxel_size = float(pixel_size_angstrom)
        label_header(mrc)
        self._data_offset = int(mrc.header.nbytes) + int(mrc.header.nsymbt)
        mrc.close()
        self._frame_bytes = shape[0] * shape[1] * self.dtype.itemsize
        self._fd = os.open(self.tmp_path, os.O_RDWR)
        self._count, self._min, self._max, self._sum, self._sum_sq = 0, np.inf, -np.inf, 0.0, 0.0

    def write(self, start: int, images: torch.Tensor) -> None:
        """Write ``images`` (n, H, W) at image index ``start``."""
        arr = np.ascontiguousarray(images.detach().cpu().numpy().astype(self.dtype, copy=False))
        if arr.shape[1:] != self.shape or start < 0 or start + arr.shape[0] > self.n_images:
            raise ValueError(f"{self.path}: cannot write images of shape {arr.shape} at index {start} into a "
                             f"stack of {self.n_images} x {self.shape}")
        pwrite_all(self._fd, arr, self._data_offset + start * self._frame_bytes)
        values = arr.astype(np.float64)
        self._count += values.size
        self._min, self._max = min(self._min, float(values.min())), max(self._max, float(values.max()))
        self._sum += float(values.sum())
        self._sum_sq += float((values * values).sum())

    def finalize(self) -> None:
        """Write the header statistics and rename the stack into place."""
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        mean = self._sum / max(self._count, 1)
        with mrcfile.mmap(self.tmp_path, mode="r+", permissive=True) as mrc:
            mrc.header.dmin, mrc.header.dmax = self._min, self._max
            mrc.header.dmean = mean
            mrc.header.rms = float(np.sqrt(max(self._sum_sq / max(self._count, 1) - mean**2, 0.0)))
        os.replace(self.tmp_path, self.path)

    def abort(self) -> None:
        try:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        finally:
            if self.tmp_path.exists():
                self.tmp_path.unlink()


def _mode(dtype) -> int:
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return 2
    if dtype == np.float16:
        return 12
    raise ValueError(f"unsupported MRC dtype {dtype}")
