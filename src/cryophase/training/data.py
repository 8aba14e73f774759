"""Where training batches come from: the simulator on the fly, a ``cryophase simulate`` folder, or tensors.

Every source honours :class:`TrainingData`: ``sample(n, generator) -> TrainingBatch`` with the truth phase, the
measured counts and the imaging physics of ``n`` particles on one grid (``image_size`` at ``pixel_size_angstrom``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import torch

from cryophase.errors import CryophaseError
from cryophase.physics.forward import ImagingPhysics
from cryophase.retrieval.base import get_method
from cryophase.retrieval.model_grid import with_measured_dose


@dataclass
class TrainingBatch:
    """``phase`` truth (n, H, W) radians, ``counts`` (n, H, W) electrons, ``physics`` for n images.

    ``condition`` is the conditioning method's estimate (n, H, W) when it was computed ahead of time
    (:func:`precompute_condition`), with ``condition_method`` naming the method. ``extras`` holds other per-particle
    tensors a task computed ahead of time (the latent denoiser's cached VAE codes, :meth:`LDMTask.cache_codes`).
    """

    phase: torch.Tensor
    counts: torch.Tensor
    physics: ImagingPhysics
    condition: torch.Tensor | None = None
    condition_method: str | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def to(self, device) -> "TrainingBatch":
        return TrainingBatch(self.phase.to(device), self.counts.to(device), self.physics.to(device),
                             None if self.condition is None else self.condition.to(device), self.condition_method,
                             {k: v.to(device) for k, v in self.extras.items()})


class TrainingData(Protocol):
    image_size: int
    pixel_size_angstrom: float

    def sample(self, n: int, generator: torch.Generator) -> TrainingBatch: ...


class TensorData:
    """Draw random rows (with replacement) of in-memory tensors: ``phase``, ``counts`` (N, H, W), ``physics``,
    and optionally ``condition`` (N, H, W) and ``extras`` (name -> (N, ...))."""

    def __init__(self, phase: torch.Tensor, counts: torch.Tensor, physics: ImagingPhysics,
                 condition: torch.Tensor | None = None, condition_method: str | None = None,
                 extras: dict[str, torch.Tensor] | None = None):
        if phase.shape != counts.shape or phase.shape[0] != len(physics) or phase.shape[-1] != phase.shape[-2]:
            raise ValueError(f"TensorData: phase {tuple(phase.shape)}, counts {tuple(counts.shape)} and "
                             f"{len(physics)} physics entries must agree and be square")
        extras = dict(extras or {})
        for name, values in extras.items():
            if values.shape[0] != phase.shape[0]:
                raise ValueError(f"TensorData: extra {name!r} has {values.shape[0]} rows, not {phase.shape[0]}")
        pixel = torch.unique(physics.optics.pixel_size_angstrom)
        if pixel.numel() != 1:
            raise ValueError("TensorData: all particles must share one pixel size")
        self.phase, self.counts, self.physics = phase, counts, physics
        self.condition, self.condition_method, self.extras = condition, condition_method, extras
        #: the ``cryophase simulate`` folder the data came from, where conditions are cached (None: in memory)
        self.source_folder: Path | None = None
        self.image_size = phase.shape[-1]
        self.pixel_size_angstrom = float(pixel)

    def __len__(self) -> int:
        return self.phase.shape[0]

    def sample(self, n: int, generator: torch.Generator) -> TrainingBatch:
        idx = torch.randint(0, len(self), (n,), generator=generator, device=generator.device).to(self.phase.device)
        condition = None if self.condition is None else self.condition[idx]
        return TrainingBatch(self.phase[idx], self.counts[idx], self.physics[idx], condition, self.condition_method,
                             {k: v[idx] for k, v in self.extras.items()})

    def with_extras(self, **extras: torch.Tensor) -> "TensorData":
        """The same data with more per-particle tensors."""
        return self._copy(extras={**self.extras, **extras})

    def with_condition(self, condition: torch.Tensor, method: str) -> "TensorData":
        """The same data with ``method``'s conditions; extras computed from another method's conditions are dropped."""
        return self._copy(condition=condition, condition_method=method,
                          extras=self.extras if self.condition_method == method else {})

    def _copy(self, **changes) -> "TensorData":
        fields = {"phase": self.phase, "counts": self.counts, "physics": self.physics, "condition": self.condition,
                  "condition_method": self.condition_method, "extras": self.extras, **changes}
        out = TensorData(**fields)
        out.source_folder = self.source_folder
        return out


def load_simulated_folder(folder: str | Path) -> TensorData:
    """Read a ``cryophase simulate`` output folder (particles.star, particles.mrcs, phases.mrcs) into memory."""
    from cryophase.io.mrc import read_stack
    from cryophase.io.star import ParticleImages, read_particles_star
    from cryophase.simulation.dataset import DOSE_COLUMN

    folder = Path(folder)
    for name in ("particles.star", "particles.mrcs", "phases.mrcs"):
        if not (folder / name).is_file():
            raise CryophaseError(f"{folder}: not a `cryophase simulate` output folder (no {name})")
    table = read_particles_star(folder / "particles.star")
    if DOSE_COLUMN not in table.particles:
        raise CryophaseError(f"{folder / 'particles.star'}: no {DOSE_COLUMN} column (dose per particle)")
    with ParticleImages(table) as images:
        counts = images.read(slice(None))
    phase, _ = read_stack(folder / "phases.mrcs")
    if phase.shape != counts.shape:
        raise CryophaseError(f"{folder}: phases.mrcs {tuple(phase.shape)} and the particles "
                             f"{tuple(counts.shape)} differ in shape")
    dose = torch.tensor(table.particles[DOSE_COLUMN].to_numpy(dtype="float32"))
    data = TensorData(phase, counts, ImagingPhysics(table.optics_for(), dose))
    data.source_folder = folder
    return data


class SimulatedData:
    """Particles simulated on the fly by :func:`cryophase.simulation.simulate_batch`."""

    def __init__(self, specimens: Sequence, config):
        self.specimens = list(specimens)
        self.config = config
        self.image_size = config.box_size
        self.pixel_size_angstrom = float(config.pixel_size_angstrom)

    def sample(self, n: int, generator: torch.Generator) -> TrainingBatch:
        from cryophase.simulation import simulate_batch

        sim = simulate_batch(self.specimens, self.config, n, generator, device=generator.device)
        return TrainingBatch(sim.phase, sim.counts, sim.physics)


class Conditioner:
    """Runs the conditioning iterative method (the preset's ``condition_method``) on a batch's counts.

    The dose it is given is the one measured from each image's counts (:func:`with_measured_dose`), as at
    inference, so the networks train on the conditions they will see whatever the metadata says.
    """

    #: Which dose the method is given; part of the condition cache's key.
    dose = "measured from the counts"

    def __init__(self, method: str):
        self.method_name = method
        self.method = get_method(method)

    @torch.no_grad()
    def __call__(self, batch: TrainingBatch, generator: torch.Generator) -> torch.Tensor:
        """Iterative phase estimate ``(n, H, W)`` radians (the precomputed one when the batch carries it)."""
        if batch.condition is not None and batch.condition_method == self.method_name:
            return batch.condition
        physics = with_measured_dose(batch.counts, batch.physics)
        return self.method.reconstruct(batch.counts, physics, generator=generator).phase.to(batch.phase)


def fit_phase_scale_rad(data: TrainingData, n: int, seed: int, device: torch.device | str = "cpu") -> float:
    """Standard deviation of the truth phases of ``n`` particles drawn with a generator seeded ``seed``."""
    generator = torch.Generator(device).manual_seed(seed)
    return float(data.sample(n, generator).phase.std().clamp_min(1e-6))


def _condition_cache(data: TensorData, conditioner: Conditioner, seed: int) -> tuple[Path, dict] | None:
    folder = getattr(data, "source_folder", None)
    if folder is None:
        return None
    key = {"method": conditioner.method_name, "options": repr(conditioner.method), "dose": conditioner.dose,
           "seed": seed, "n_particles": len(data)}
    return Path(folder) / f"condition_{conditioner.method_name}.mrcs", key


def precompute_condition(data: TensorData, conditioner: Conditioner, seed: int, chunk_size: int = 64,
                         progress: bool = True) -> TensorData:
    """Run the conditioning method once over every particle of ``data`` (it is slow for iterative methods).

    For data read from a ``cryophase simulate`` folder the result is cached in that folder as
    ``condition_<method>.mrcs`` with a JSON key (method, its options, seed, particle count), so the VAE, the
    denoiser and the regression peer trained on the same folder compute it once.
    """
    import json

    from tqdm import tqdm

    from cryophase.io.mrc import read_stack, write_stack
    from cryophase.io.outputs import atomic_path

    cache = _condition_cache(data, conditioner, seed)
    if cache is not None:
        path, key = cache
        key_path = path.with_suffix(".json")
        if path.is_file() and key_path.is_file() and json.loads(key_path.read_text()) == key:
            condition, _ = read_stack(path)
            if condition.shape == data.phase.shape:
                return data.with_condition(condition, conditioner.method_name)

    generator = torch.Generator().manual_seed(seed)
    parts = []
    for start in tqdm(range(0, len(data), chunk_size), disable=not progress,
                      desc=f"conditioning ({conditioner.method_name})"):
        rows = slice(start, start + chunk_size)
        batch = TrainingBatch(data.phase[rows], data.counts[rows], data.physics[rows])
        parts.append(conditioner(batch, generator))
    condition = torch.cat(parts)
    if cache is not None:
        path, key = cache
        try:
            write_stack(path, condition.float(), float(data.physics.optics.pixel_size_angstrom[0]))
            with atomic_path(path.with_suffix(".json")) as tmp:
                tmp.write_text(json.dumps(key))
        except OSError:
            pass  # a read-only data folder: recompute next time
    return data.with_condition(condition, conditioner.method_name)
