"""Simulate batches of particle images: truth phase, expected counts and measured counts.

The pipeline for each particle, on a canvas ``canvas_factor`` times the box (cropped at the end):

1. draw its parameters (specimen, orientation, shift, optics, dose, ice thickness, nuisances);
2. project the specimen onto the box -> particle phase relative to the ice (``specimens.ice.particle_phase``):
   the TRUTH; zero-padded to the canvas (a particle larger than the box is cut at the box edge);
3. the imaged phase adds, none of them in the truth: radiation damage of the protein (Grant & Grigorieff
   2015), neighbouring particles, the contrast loss of real images (``contrast_factor_range``), ice
   contamination, the ice's random phase;
4. exit wave -> lens (CTF with envelopes) -> intensity; inelastic scattering in the ice mixes in a flat
   background (or, with an energy filter, removes those electrons);
5. detector: MTF blur of the expected counts, Poisson shot noise coloured to the detector's NPS.

Randomness comes from one ``torch.Generator`` for the batch (fast: training draws on the fly), or from one
generator per particle (then a particle's image does not depend on which batch it is simulated in, which makes
``simulate_dataset`` independent of its chunk size).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from cryophase.physics.camera import (
    DetectorModel,
    colour_detector_noise,
    detector_expected_counts,
    detector_from_name_or_file,
    radiation_damage_envelope,
)
from cryophase.physics.forward import ImagingPhysics, counts_per_pixel, intensity
from cryophase.physics.optics import Optics
from cryophase.simulation.config import SimulationConfig
from cryophase.specimens.base import Specimen
from cryophase.specimens.ice import coherent_fraction, ice_phase_from_white_noise, ice_phase_power_spectrum
from cryophase.specimens.rotations import quaternion_to_matrix
from cryophase.specimens.neighbours import contamination_phase, edge_offsets_angstrom, neighbour_phase, project_phase


class Draws:
    """Random numbers for a batch from one generator, or from one generator per particle.

    Each method returns a tensor whose first axis is the particle. With per-particle generators the numbers of
    particle ``i`` come from generator ``i`` alone, in the order the methods are called.
    """

    def __init__(self, generator: torch.Generator | Sequence[torch.Generator], n: int, *, device, dtype):
        self.per_particle = not isinstance(generator, torch.Generator)
        if self.per_particle and len(generator) != n:
            raise ValueError(f"got {len(generator)} generators for {n} particles")
        self.generator = generator
        self.n = n
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype

    def _call(self, fn, shape: tuple[int, ...]) -> torch.Tensor:
        if self.per_particle:
            if self.n == 0:
                return torch.empty((0, *shape), device=self.device, dtype=self.dtype)
            parts = [fn(shape, g) for g in self.generator]
            return torch.stack(parts).to(device=self.device, dtype=self.dtype)
        return fn((self.n, *shape), self.generator).to(device=self.device, dtype=self.dtype)

    def uniform(self, *shape: int) -> torch.Tensor:
        """Uniform in [0, 1), (n, *shape)."""
        return self._call(lambda s, g: torch.rand(s, generator=g, device=g.device, dtype=self.dtype), shape)

    def normal(self, *shape: int) -> torch.Tensor:
        """Standard normal, (n, *shape)."""
        return self._call(lambda s, g: torch.randn(s, generator=g, device=g.device, dtype=self.dtype), shape)

    def poisson(self, rates: torch.Tensor) -> torch.Tensor:
        """Poisson draws with the given (n, ...) rates."""
        if self.per_particle:
            parts = [torch.poisson(r.to(g.device), generator=g) for r, g in zip(rates, self.generator)]
            return torch.stack(parts).to(rates) if parts else rates.clone()
        return torch.poisson(rates.to(self.generator.device), generator=self.generator).to(rates)


@dataclass(frozen=True)
class ParticleParameters:
    """Per-particle random choices of a batch, each a tensor with first axis B."""

    specimen_index: torch.Tensor        # (B,) int64
    rotations: torch.Tensor             # (B, 3, 3), specimen -> microscope coordinates
    shifts_angstrom: torch.Tensor       # (B, 2), (y, x) from the box centre
    optics: Optics                      # B images
    dose_e_per_a2: torch.Tensor         # (B,)
    ice_thickness_angstrom: torch.Tensor  # (B,), drawn even in vacuum so both share the random stream
    neighbour_present: torch.Tensor     # (B, slots) bool
    neighbour_variants: torch.Tensor    # (B, slots) int64, the view (specimens.neighbours.dihedral_variant)
    neighbour_offsets_angstrom: torch.Tensor  # (B, slots, 2), (y, x)
    contamination_present: torch.Tensor  # (B,) bool
    contamination_centres_angstrom: torch.Tensor  # (B, 2)
    contamination_radii_angstrom: torch.Tensor    # (B,)
    contrast_factor: torch.Tensor       # (B,), imaged protein phase / truth (config.contrast_factor_range)


@dataclass(frozen=True)
class SimulatedBatch:
    """A batch of simulated particles.

    Attributes
    ----------
    phase : torch.Tensor, (B, H, W): the truth, the particle's phase relative to the ice, radians (no ice
        background, no neighbours, no radiation damage).
    expected_counts : torch.Tensor, (B, H, W): mean detected electrons per pixel (after the MTF).
    counts : torch.Tensor, (B, H, W): the measurement, electrons per pixel, protein dark (equal to
        ``expected_counts`` in noiseless mode).
    physics : ImagingPhysics for the box (optics and dose of each particle).
    parameters : ParticleParameters, the per-particle random choices.
    detector : DetectorModel used.
    """

    phase: torch.Tensor
    expected_counts: torch.Tensor
    counts: torch.Tensor
    physics: ImagingPhysics
    parameters: ParticleParameters
    detector: DetectorModel

    def __len__(self) -> int:
        return self.phase.shape[0]


def random_rotations(quaternion_normals: torch.Tensor) -> torch.Tensor:
    """Uniformly distributed rotations from 4 standard normals each (normalised Gaussian quaternion, Shoemake 1992).

    Parameters
    ----------
    quaternion_normals : torch.Tensor, (B, 4)

    Returns
    -------
    torch.Tensor, (B, 3, 3)
    """
    q = quaternion_normals / quaternion_normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return quaternion_to_matrix(q)


def _scale(u: torch.Tensor, low_high: tuple[float, float]) -> torch.Tensor:
    lo, hi = low_high
    return lo + (hi - lo) * u


def _choose(u: torch.Tensor, choices: tuple[float, ...]) -> torch.Tensor:
    values = torch.as_tensor(choices, dtype=u.dtype, device=u.device)
    index = (u * len(choices)).long().clamp_max(len(choices) - 1)
    return values[index]


def sample_parameters(config: SimulationConfig, n_specimens: int, draws: Draws) -> ParticleParameters:
    """Draw every per-particle choice of a batch, in a fixed order that no switch in ``config`` changes."""
    slots = config.neighbour_slots
    u = draws.uniform(11)
    rotations = random_rotations(draws.normal(4))
    shift_normals = draws.normal(2)
    neighbour_u = draws.uniform(slots, 4)
    contamination_u = draws.uniform(4)

    specimen_index = (u[:, 0] * n_specimens).long().clamp_max(n_specimens - 1)
    defocus = _scale(u[:, 1], config.defocus_range_angstrom)
    astigmatism = u[:, 2] * config.max_astigmatism_angstrom
    optics = Optics.create(
        voltage_kv=_choose(u[:, 3], config.voltage_choices_kv),
        cs_mm=_choose(u[:, 4], config.cs_choices_mm),
        amplitude_contrast=_choose(u[:, 5], config.amplitude_contrast_choices),
        pixel_size_angstrom=config.pixel_size_angstrom,
        defocus_u_angstrom=defocus + astigmatism / 2,
        defocus_v_angstrom=defocus - astigmatism / 2,
        defocus_angle_degrees=180.0 * u[:, 6],
        b_factor_a2=_scale(u[:, 7], config.b_factor_range_a2),
        batch_size=draws.n,
        dtype=draws.dtype,
        device=draws.device,
    )
    box = config.box_size
    pixel = config.pixel_size_angstrom
    offsets = edge_offsets_angstrom(neighbour_u[..., 0].reshape(-1), neighbour_u[..., 1].reshape(-1), box, pixel,
                                    config.neighbour_distance_boxes).reshape(-1, slots, 2)
    return ParticleParameters(
        specimen_index=specimen_index,
        rotations=rotations,
        shifts_angstrom=shift_normals * config.shift_sd_pixels * pixel,
        optics=optics,
        dose_e_per_a2=_scale(u[:, 8], config.dose_range_e_per_a2),
        ice_thickness_angstrom=_scale(u[:, 9], config.ice_thickness_range_angstrom),
        neighbour_present=neighbour_u[..., 2] < config.neighbour_probability,
        neighbour_variants=(neighbour_u[..., 3] * 8).long().clamp_max(7),
        neighbour_offsets_angstrom=offsets,
        contamination_present=u[:, 10] < config.contamination_probability,
        contamination_centres_angstrom=edge_offsets_angstrom(contamination_u[:, 0], contamination_u[:, 1], box, pixel,
                                                             config.contamination_distance_boxes),
        contamination_radii_angstrom=_scale(contamination_u[:, 2], config.contamination_radius_boxes) * box * pixel,
        contrast_factor=_scale(contamination_u[:, 3], config.contrast_factor_range),
    )


def crop_centre(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size x size`` pixels of (B, H, W) images (the FFT centre H // 2 stays the centre)."""
    h, w = images.shape[-2:]
    top, left = h // 2 - size // 2, w // 2 - size // 2
    return images[..., top:top + size, left:left + size]


def pad_centre(images: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad (B, h, w) images to (B, size, size), keeping the FFT centre (h // 2 -> size // 2)."""
    h, w = images.shape[-2:]
    top, left = size // 2 - h // 2, size // 2 - w // 2
    return torch.nn.functional.pad(images, (left, size - w - left, top, size - h - top))


def _imaged_phase(particle: torch.Tensor, params: ParticleParameters, config: SimulationConfig) -> torch.Tensor:
    """Protein phase (particle plus neighbours) as imaged, with radiation damage, on the canvas."""
    canvas = particle.shape[-2:]
    protein = particle
    if params.neighbour_present.any():
        offsets = torch.round(params.neighbour_offsets_angstrom / config.pixel_size_angstrom).long()
        protein = protein + neighbour_phase(particle, params.neighbour_present, params.neighbour_variants, offsets)
    if config.radiation_damage:
        env = radiation_damage_envelope(canvas, params.optics.pixel_size_angstrom, params.dose_e_per_a2,
                                        params.optics.voltage_kv)
        protein = torch.fft.irfft2(torch.fft.rfft2(protein) * env, s=canvas)
    return protein * params.contrast_factor[:, None, None]


def simulate_batch(
    specimens: Sequence[Specimen],
    config: SimulationConfig,
    n: int,
    generator: torch.Generator | Sequence[torch.Generator],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> SimulatedBatch:
    """Simulate ``n`` particles: truth phase, expected counts and counts.

    Parameters
    ----------
    specimens : one or more specimens; each particle picks one uniformly
    config : SimulationConfig
    n : number of particles
    generator : one torch.Generator for the batch, or a sequence of ``n`` (one per particle); generators must
        live on ``device``
    device, dtype : where and in which precision to compute (float32 or float64)

    Returns
    -------
    SimulatedBatch with (n, box, box) tensors
    """
    if len(specimens) == 0:
        raise ValueError("simulate_batch needs at least one specimen")
    device = torch.device(device) if device is not None else torch.device("cpu")
    detector = detector_from_name_or_file(config.detector)
    draws = Draws(generator, n, device=device, dtype=dtype)
    params = sample_parameters(config, len(specimens), draws)
    canvas = (config.canvas_size, config.canvas_size)
    box = config.box_size
    pixel = config.pixel_size_angstrom
    voltage = params.optics.voltage_kv

    truth, _ = project_phase(specimens, params.specimen_index, params.rotations, params.shifts_angstrom, voltage,
                             (box, box), pixel, in_ice=config.ice, b_factor_a2=config.specimen_b_factor_a2)
    phase = _imaged_phase(pad_centre(truth, canvas[0]), params, config)
    if params.contamination_present.any():
        rows = torch.nonzero(params.contamination_present).flatten()
        blobs = contamination_phase(params.contamination_present[rows], params.contamination_centres_angstrom[rows],
                                    params.contamination_radii_angstrom[rows], voltage[rows], canvas, pixel)
        phase = phase.index_add(0, rows, blobs)
    if config.ice and config.ice_background:
        spectrum = ice_phase_power_spectrum(
            canvas, pixel, params.ice_thickness_angstrom, voltage,
            thickness_variation=config.ice_thickness_variation,
            thickness_correlation_angstrom=config.ice_thickness_correlation_angstrom,
            roughness_angstrom=config.ice_roughness_angstrom,
            roughness_correlation_angstrom=config.ice_roughness_correlation_angstrom)
        phase = phase + ice_phase_from_white_noise(draws.normal(*canvas), spectrum, pixel)

    image = intensity(phase, params.optics)
    if config.ice:
        coherent = coherent_fraction(params.ice_thickness_angstrom, voltage)[:, None, None]
        image = coherent * image if config.energy_filter else coherent * image + (1 - coherent)
    electrons = counts_per_pixel(params.optics, params.dose_e_per_a2).to(image)[:, None, None] * image

    binning = config.detector_binning
    expected = crop_centre(detector_expected_counts(electrons, detector, binning=binning), box).contiguous()
    if config.noiseless:
        counts = expected.clone()
    else:
        incident = crop_centre(electrons, box).contiguous()
        shot = draws.poisson(incident.clamp_min(0)) - incident
        counts = expected + colour_detector_noise(shot, detector, binning=binning)
    physics = ImagingPhysics(params.optics, params.dose_e_per_a2)
    return SimulatedBatch(phase=truth, expected_counts=expected, counts=counts, physics=physics,
                          parameters=params, detector=detector)
