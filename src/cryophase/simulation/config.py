"""Every setting of the particle simulator, with defaults that span what real single-particle data covers."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SimulationConfig:
    """Settings of :func:`cryophase.simulation.simulate_batch`; all of them are recorded with the output.

    Ranges ``(low, high)`` are sampled uniformly per particle; ``choices`` uniformly among the values.
    """

    # Extracted box, pixels, and pixel size, A (any box / pixel size; 64 at 3.5 A/px resolves 7 A).
    box_size: int = 64
    pixel_size_angstrom: float = 3.5
    # Simulate on a canvas this many times the box, then crop, so delocalised CTF signal enters and leaves the
    # box as in an extracted particle instead of wrapping around.
    canvas_factor: float = 1.5

    # Acceleration voltage, kV: the two voltages in use for single particles.
    voltage_choices_kv: tuple[float, ...] = (200.0, 300.0)
    # Spherical aberration, mm: Cs-corrected (0.01), Talos/Glacios (1.4), Titan Krios Cs 2.0 and 2.7 lenses.
    cs_choices_mm: tuple[float, ...] = (0.01, 1.4, 2.0, 2.7)
    # Amplitude contrast fraction: RELION's and cryoSPARC's usual values.
    amplitude_contrast_choices: tuple[float, ...] = (0.07, 0.1)
    # Mean defocus, A, positive = underfocus (0.5 to 3 um).
    defocus_range_angstrom: tuple[float, float] = (5000.0, 30000.0)
    # DefocusU - DefocusV, A, uniform in [0, max]; the astigmatism angle is uniform in [0, 180) degrees.
    max_astigmatism_angstrom: float = 500.0
    # Total exposure, e/A^2 (low-dose tomography tilts to long single-particle exposures).
    dose_range_e_per_a2: tuple[float, float] = (10.0, 80.0)
    # CTF B-factor envelope exp(-B k^2 / 4), A^2 (drift, charging, partial coherence), uniform in the range;
    # 50-200 brought the power spectra of benchmarks/realism.py closer to real particles than 0-100.
    b_factor_range_a2: tuple[float, float] = (50.0, 200.0)

    # Particles embedded in vitreous ice (phase relative to the ice, inelastic loss); False = vacuum.
    ice: bool = True
    # Add the ice's own random phase (molecular noise and slow thickness variation); needs ``ice``.
    ice_background: bool = True
    # Ice thickness, A (thin to thick single-particle ice).
    ice_thickness_range_angstrom: tuple[float, float] = (200.0, 600.0)
    # Relative standard deviation and correlation length (A) of the slow thickness variation.
    ice_thickness_variation: float = 0.02
    ice_thickness_correlation_angstrom: float = 500.0
    # Surface roughness of the film: standard deviation (A) and correlation length (A) of the thickness;
    # 10 A over 30 A matches the particle-over-background power of real particles (benchmarks/realism.py).
    ice_roughness_angstrom: float = 10.0
    ice_roughness_correlation_angstrom: float = 30.0
    # Zero-loss energy filter: inelastically scattered electrons are removed instead of adding a background.
    energy_filter: bool = False

    # Detector: k2, k3, falcon4, ideal, or the path of a RELION MTF STAR file.
    detector: str = "k3"
    # The detector's pixel at the specimen, A (0.8-1.1 A in single-particle work). Images with larger pixels
    # are taken as binned from it by Fourier cropping, so they see only the low-frequency part of the MTF/DQE.
    detector_pixel_size_angstrom: float = 1.0
    # Radiation damage envelope of Grant & Grigorieff 2015 on the specimen's signal.
    radiation_damage: bool = True
    # Scale of the imaged protein phase relative to the truth, uniform in the range: real images show 2-3x less
    # contrast than the ideal model predicts (the "Stobbs factor" of cryo-EM; beam-induced motion and charging,
    # Henderson & McMullan 2013 Microscopy 62:43); 0.3-0.6 matches real particles in benchmarks/realism.py.
    # (1, 1) disables it.
    contrast_factor_range: tuple[float, float] = (0.3, 0.6)

    # Standard deviation of the particle's in-plane shift from the box centre, pixels (picking error).
    shift_sd_pixels: float = 2.0
    # Probability of each of ``neighbour_slots`` neighbouring particles, centred 0.5-0.8 boxes away (crowded
    # micrographs; 0.5 matched real particles better than 0.25 in benchmarks/realism.py).
    neighbour_probability: float = 0.5
    neighbour_slots: int = 2
    neighbour_distance_boxes: tuple[float, float] = (0.5, 0.8)
    # Probability of an ice-contamination blob whose centre lies 0.55-0.85 boxes away, radius 0.15-0.4 box.
    contamination_probability: float = 0.05
    contamination_distance_boxes: tuple[float, float] = (0.55, 0.85)
    contamination_radius_boxes: tuple[float, float] = (0.15, 0.4)

    # B-factor applied when projecting specimens, A^2 (thermal motion and finite sampling).
    specimen_b_factor_a2: float = 0.0
    # Write the expected counts instead of a noisy measurement.
    noiseless: bool = False

    def __post_init__(self):
        if self.box_size < 8:
            raise ValueError(f"box_size must be at least 8 pixels, got {self.box_size}")
        if self.pixel_size_angstrom <= 0:
            raise ValueError(f"pixel_size_angstrom must be positive, got {self.pixel_size_angstrom}")
        if self.detector_pixel_size_angstrom <= 0:
            raise ValueError(f"detector_pixel_size_angstrom must be positive, got {self.detector_pixel_size_angstrom}")
        if self.canvas_factor < 1:
            raise ValueError(f"canvas_factor must be >= 1, got {self.canvas_factor}")
        for name in ("defocus_range_angstrom", "dose_range_e_per_a2", "ice_thickness_range_angstrom",
                     "b_factor_range_a2", "contrast_factor_range", "neighbour_distance_boxes",
                     "contamination_distance_boxes",
                     "contamination_radius_boxes"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name}: low {lo} is above high {hi}")
        if not (0 < self.contrast_factor_range[0] and self.contrast_factor_range[1] <= 1):
            raise ValueError(f"contrast_factor_range must lie in (0, 1], got {self.contrast_factor_range}")
        if self.dose_range_e_per_a2[0] <= 0:
            raise ValueError(f"dose_range_e_per_a2 must be positive, got {self.dose_range_e_per_a2}")
        for name in ("neighbour_probability", "contamination_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("voltage_choices_kv", "cs_choices_mm", "amplitude_contrast_choices"):
            if len(getattr(self, name)) == 0:
                raise ValueError(f"{name} must hold at least one value")

    @property
    def detector_binning(self) -> float:
        """Image pixel over detector pixel, at least 1."""
        return max(1.0, self.pixel_size_angstrom / self.detector_pixel_size_angstrom)

    @property
    def canvas_size(self) -> int:
        """Side of the simulation canvas, pixels: ``canvas_factor * box`` rounded up to an even number."""
        size = math.ceil(self.box_size * self.canvas_factor)
        return size + (size % 2)

    def as_dict(self) -> dict:
        return asdict(self)
