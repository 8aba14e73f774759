"""The detector: modulation transfer (MTF), detective quantum efficiency (DQE) and radiation damage.

The detected image of a counting camera, with its gain normalised to one count per incident electron, is

    counts = MTF (*) E + n,     NPS_n(k) = mean(E) * MTF(k)^2 / DQE(k)

with ``E`` the expected electrons per pixel arriving at the camera, ``(*)`` a convolution (a product in Fourier
space) and NPS the noise power spectrum (the definition DQE = MTF^2 * mean / NPS; McMullan et al. 2009
Ultramicroscopy 109:1126, eq. 2). :func:`sample_detector_counts` draws ``n`` from the Poisson shot noise of ``E``
coloured by ``MTF / sqrt(DQE)``, so the noise stays signal-dependent (Poisson) and has that spectrum.

Parametric curves (spatial frequency ``w`` as a fraction of Nyquist along each axis):

* MTF(w) = sinc(pi w_x / 2) sinc(pi w_y / 2) exp(-c |w|^2): the pixel-aperture MTF of an ideal counting
  detector (McMullan et al. 2014 Ultramicroscopy 147:156, section 2; Ruskin et al. 2013 JSB 184:385), with a
  Gaussian term for the charge spread and centroiding error, ``c`` set by the published MTF at Nyquist.
* DQE(w) = DQE(0) (DQE(N) / DQE(0)) ^ (|w|^2): a smooth, positive, decreasing interpolation between the
  published DQE at zero frequency and at Nyquist.

A measured MTF can be read from a RELION MTF STAR file (``rlnResolutionInversePixel``, ``rlnMtfValue``) with
:func:`read_relion_mtf`.

Radiation damage: the critical exposure of Grant & Grigorieff 2015 (eLife 4:e06980, eq. 3),
``N_e(k) = 0.245 k^-1.665 + 2.81`` e/A^2, attenuates the specimen's signal in frame ``n`` by
``exp(-n / (2 N_e))``; summed over an exposure of ``D`` e/A^2 without dose weighting the amplitude envelope is
``2 N_e / D (1 - exp(-D / (2 N_e)))`` (:func:`radiation_damage_envelope`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

#: Grant & Grigorieff 2015 (eLife 4:e06980), eq. 3 fitted to the rotavirus VP6 data at 300 kV:
#: critical exposure N_e(k) = a k^b + c, k in 1/A, N_e in e/A^2.
CRITICAL_EXPOSURE_A = 0.245
CRITICAL_EXPOSURE_B = -1.665
CRITICAL_EXPOSURE_C = 2.81
#: At 200 kV the critical exposure is 0.8 times that at 300 kV (Grant & Grigorieff 2015, "Materials and methods").
CRITICAL_EXPOSURE_200KV_FACTOR = 0.8


@dataclass(frozen=True)
class DetectorModel:
    """A detector's MTF and DQE, parametric or with a measured MTF table.

    Attributes
    ----------
    name : str
    mtf_nyquist : MTF at the Nyquist frequency along an axis (the sinc pixel aperture alone gives 2/pi = 0.637).
    dqe_zero : DQE at zero frequency.
    dqe_nyquist : DQE at Nyquist.
    mtf_table_inverse_pixel, mtf_table_values : optional measured MTF (radial, 1/pixel from 0 to 0.5), as read
        from a RELION MTF STAR file; replaces the parametric MTF when given.
    """

    name: str
    mtf_nyquist: float
    dqe_zero: float
    dqe_nyquist: float
    mtf_table_inverse_pixel: tuple[float, ...] | None = None
    mtf_table_values: tuple[float, ...] | None = None

    def __post_init__(self):
        if not 0 < self.mtf_nyquist <= 2 / math.pi + 1e-9:
            raise ValueError(f"detector {self.name}: mtf_nyquist must be in (0, 2/pi], got {self.mtf_nyquist}")
        if not 0 < self.dqe_nyquist <= self.dqe_zero <= 1:
            raise ValueError(f"detector {self.name}: need 0 < dqe_nyquist <= dqe_zero <= 1")


#: Published detector performance at 300 kV in counting mode (values read from the cited curves; approximate).
DETECTORS: dict[str, DetectorModel] = {
    # Gatan K2 Summit, counting: MTF(N) ~0.5, DQE(0) ~0.77, DQE(N) ~0.2 at low dose rate
    # (McMullan et al. 2014 Ultramicroscopy 147:156, figs. 3-4; Ruskin et al. 2013 JSB 184:385).
    "k2": DetectorModel("k2", mtf_nyquist=0.50, dqe_zero=0.77, dqe_nyquist=0.20),
    # Gatan K3, counting: DQE(0) ~0.85, DQE(N) ~0.35 (Gatan K3 data sheet; Sun et al. 2021 JSB 213:107745).
    "k3": DetectorModel("k3", mtf_nyquist=0.55, dqe_zero=0.85, dqe_nyquist=0.35),
    # Thermo Fisher Falcon 4, counting: MTF(N) ~0.6, DQE(0) ~0.9, DQE(N) ~0.45 (Guo et al. 2020 IUCrJ 7:860;
    # Kuijper et al. 2015 JSB 189:202 for the Falcon family).
    "falcon4": DetectorModel("falcon4", mtf_nyquist=0.60, dqe_zero=0.90, dqe_nyquist=0.45),
    # A perfect counter: the pixel aperture alone and DQE = 1 (shot noise only, white).
    "ideal": DetectorModel("ideal", mtf_nyquist=2 / math.pi, dqe_zero=1.0, dqe_nyquist=1.0),
}


def read_relion_mtf(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a RELION MTF STAR file (``rlnResolutionInversePixel``, ``rlnMtfValue``).

    Returns
    -------
    frequency_inverse_pixel, mtf : np.ndarray, (n,) each, sorted by frequency.

    Raises
    ------
    ValueError naming the file when it lacks the columns or holds no rows.
    """
    import starfile

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such MTF file")
    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable STAR file ({exc})") from None
    for table in blocks.values():
        if hasattr(table, "columns") and {"rlnResolutionInversePixel", "rlnMtfValue"} <= set(table.columns):
            freq = table["rlnResolutionInversePixel"].to_numpy(dtype=np.float64)
            mtf = table["rlnMtfValue"].to_numpy(dtype=np.float64)
            if len(freq) < 2:
                raise ValueError(f"{path}: the MTF table has fewer than 2 rows")
            order = np.argsort(freq)
            return freq[order], mtf[order]
    raise ValueError(f"{path}: no table with rlnResolutionInversePixel and rlnMtfValue (not a RELION MTF file)")


def detector_from_name_or_file(name_or_path: str) -> DetectorModel:
    """A :class:`DetectorModel` from a known name (``k2``, ``k3``, ``falcon4``, ``ideal``) or a RELION MTF file.

    A RELION MTF file gives the MTF; its DQE is taken from the K3 entry (RELION files carry no DQE).
    """
    key = name_or_path.lower()
    if key in DETECTORS:
        return DETECTORS[key]
    path = Path(name_or_path)
    if path.suffix.lower() == ".star" or path.exists():
        freq, mtf = read_relion_mtf(path)
        base = DETECTORS["k3"]
        return DetectorModel(name=str(path), mtf_nyquist=base.mtf_nyquist, dqe_zero=base.dqe_zero,
                             dqe_nyquist=base.dqe_nyquist, mtf_table_inverse_pixel=tuple(freq.tolist()),
                             mtf_table_values=tuple(mtf.tolist()))
    raise ValueError(f"unknown detector {name_or_path!r}: use one of {', '.join(DETECTORS)} or a RELION MTF STAR file")


def _nyquist_fractions(image_shape: tuple[int, int], device, dtype, binning: float
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Frequencies as fractions of the detector's Nyquist on the unshifted FFT grid, (H, 1) and (1, W).

    ``binning`` is the image pixel over the detector pixel (>= 1): an image Fourier-cropped by ``binning``
    reaches only ``1 / binning`` of the detector's Nyquist.
    """
    if binning < 1:
        raise ValueError(f"binning (image pixel / detector pixel) must be >= 1, got {binning}")
    h, w = image_shape
    wy = 2 * torch.fft.fftfreq(h, device=device, dtype=dtype)[:, None] / binning
    wx = 2 * torch.fft.fftfreq(w, device=device, dtype=dtype)[None, :] / binning
    return wy, wx


def mtf(detector: DetectorModel, image_shape: tuple[int, int], *, device=None,
        dtype: torch.dtype = torch.float32, binning: float = 1.0) -> torch.Tensor:
    """The detector MTF on the unshifted FFT grid; 1 at zero frequency.

    Parameters
    ----------
    binning : image pixel / detector pixel (>= 1) for images binned by Fourier cropping

    Returns
    -------
    torch.Tensor, (H, W)
    """
    wy, wx = _nyquist_fractions(image_shape, device, dtype, binning)
    w2 = wy**2 + wx**2
    if detector.mtf_table_values is not None:
        freq = torch.as_tensor(detector.mtf_table_inverse_pixel, device=device, dtype=dtype)
        values = torch.as_tensor(detector.mtf_table_values, device=device, dtype=dtype)
        radius = torch.sqrt(w2) / 2  # cycles per detector pixel
        return _interp(radius, freq, values) / _interp(torch.zeros((), device=device, dtype=dtype), freq, values)
    c = math.log((2 / math.pi) / detector.mtf_nyquist)
    return torch.sinc(wy / 2) * torch.sinc(wx / 2) * torch.exp(-c * w2)


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Linear interpolation like ``np.interp`` (constant beyond the ends)."""
    idx = torch.searchsorted(xp, x.clamp(xp[0], xp[-1]).contiguous()).clamp(1, len(xp) - 1)
    x0, x1 = xp[idx - 1], xp[idx]
    y0, y1 = fp[idx - 1], fp[idx]
    t = ((x.clamp(xp[0], xp[-1]) - x0) / (x1 - x0)).clamp(0, 1)
    return y0 + t * (y1 - y0)


def dqe(detector: DetectorModel, image_shape: tuple[int, int], *, device=None,
        dtype: torch.dtype = torch.float32, binning: float = 1.0) -> torch.Tensor:
    """The detector DQE on the unshifted FFT grid: ``DQE(0) (DQE(N)/DQE(0))^(|w|^2)``.

    Parameters
    ----------
    binning : image pixel / detector pixel (>= 1) for images binned by Fourier cropping

    Returns
    -------
    torch.Tensor, (H, W)
    """
    wy, wx = _nyquist_fractions(image_shape, device, dtype, binning)
    w2 = wy**2 + wx**2
    return detector.dqe_zero * (detector.dqe_nyquist / detector.dqe_zero) ** w2


def noise_transfer(detector: DetectorModel, image_shape: tuple[int, int], *, device=None,
                   dtype: torch.dtype = torch.float32, binning: float = 1.0) -> torch.Tensor:
    """Amplitude filter ``MTF / sqrt(DQE)`` that turns white Poisson noise into the detector's NPS, (H, W)."""
    return mtf(detector, image_shape, device=device, dtype=dtype, binning=binning) / torch.sqrt(
        dqe(detector, image_shape, device=device, dtype=dtype, binning=binning))


def detector_expected_counts(expected: torch.Tensor, detector: DetectorModel, *, binning: float = 1.0
                             ) -> torch.Tensor:
    """Mean detected counts: the expected electrons blurred by the MTF (periodic boundary).

    Parameters
    ----------
    expected : torch.Tensor, (B, H, W), electrons per pixel arriving at the camera
    detector : DetectorModel
    binning : image pixel / detector pixel (>= 1)

    Returns
    -------
    torch.Tensor, (B, H, W); same mean as ``expected`` (MTF(0) = 1)
    """
    transfer = mtf(detector, expected.shape[-2:], device=expected.device, dtype=expected.dtype, binning=binning)
    return torch.fft.irfft2(torch.fft.rfft2(expected) * transfer[..., : expected.shape[-1] // 2 + 1],
                            s=expected.shape[-2:])


def sample_detector_counts(expected: torch.Tensor, detector: DetectorModel,
                           generator: torch.Generator, *, binning: float = 1.0) -> torch.Tensor:
    """Detected counts: ``MTF (*) E + F^-1[F[P - E] MTF / sqrt(DQE)]`` with ``P ~ Poisson(E)``.

    The mean is :func:`detector_expected_counts` and the noise power spectrum ``mean(E) MTF^2 / DQE``.

    Parameters
    ----------
    expected : torch.Tensor, (B, H, W), electrons per pixel arriving at the camera, non-negative
    detector : DetectorModel
    generator : torch.Generator on ``expected``'s device
    binning : image pixel / detector pixel (>= 1)

    Returns
    -------
    torch.Tensor, (B, H, W), real-valued counts (not integers unless the detector is ideal-without-MTF)
    """
    if generator is None:
        raise ValueError("sample_detector_counts needs a torch.Generator; cryophase never uses the global RNG")
    shot = torch.poisson(expected.clamp_min(0), generator=generator) - expected
    return (detector_expected_counts(expected, detector, binning=binning)
            + colour_detector_noise(shot, detector, binning=binning))


def colour_detector_noise(shot_noise: torch.Tensor, detector: DetectorModel, *, binning: float = 1.0
                          ) -> torch.Tensor:
    """The detector's noise from a draw of the Poisson fluctuation ``P - E``: ``F^-1[F[P - E] MTF / sqrt(DQE)]``.

    Split out of :func:`sample_detector_counts` so a caller can draw the shot noise itself (e.g. one generator
    per particle).

    Parameters
    ----------
    shot_noise : torch.Tensor, (B, H, W), Poisson draws minus their means

    Returns
    -------
    torch.Tensor, (B, H, W), zero-mean noise with power spectrum ``mean(E) MTF^2 / DQE``
    """
    shape = shot_noise.shape[-2:]
    half = shape[-1] // 2 + 1
    transfer = noise_transfer(detector, shape, device=shot_noise.device, dtype=shot_noise.dtype,
                              binning=binning)[..., :half]
    return torch.fft.irfft2(torch.fft.rfft2(shot_noise) * transfer, s=shape)


def critical_exposure_e_per_a2(frequency_inverse_angstrom: torch.Tensor, voltage_kv: torch.Tensor | float = 300.0
                               ) -> torch.Tensor:
    """Critical exposure N_e(k) of Grant & Grigorieff 2015 (eq. 3), e/A^2; scaled by 0.8 at 200 kV.

    Parameters
    ----------
    frequency_inverse_angstrom : torch.Tensor, any shape, |k| in 1/A
    voltage_kv : float or torch.Tensor broadcastable to it
    """
    k = frequency_inverse_angstrom.clamp_min(1e-6)
    ne = CRITICAL_EXPOSURE_A * k**CRITICAL_EXPOSURE_B + CRITICAL_EXPOSURE_C
    voltage = torch.as_tensor(voltage_kv, device=k.device, dtype=k.dtype)
    # Linear in voltage between the published 200 kV (x0.8) and 300 kV (x1) values.
    scale = 1 - (1 - CRITICAL_EXPOSURE_200KV_FACTOR) * (300.0 - voltage) / 100.0
    return ne * scale


def radiation_damage_envelope(image_shape: tuple[int, int], pixel_size_angstrom: torch.Tensor,
                              dose_e_per_a2: torch.Tensor, voltage_kv: torch.Tensor) -> torch.Tensor:
    """Amplitude envelope of the specimen's signal summed over an exposure without dose weighting.

    ``2 N_e / D (1 - exp(-D / (2 N_e)))``: 1 at zero frequency (N_e -> infinity) and falling with dose and
    frequency (Grant & Grigorieff 2015, eLife 4:e06980).

    Parameters
    ----------
    image_shape : (H, W)
    pixel_size_angstrom, dose_e_per_a2, voltage_kv : torch.Tensor, (B,)

    Returns
    -------
    torch.Tensor, (B, H, W // 2 + 1), the rfft half grid
    """
    h, w = image_shape
    device, dtype = dose_e_per_a2.device, dose_e_per_a2.dtype
    fy = torch.fft.fftfreq(h, device=device, dtype=dtype)[None, :, None]
    fx = torch.fft.rfftfreq(w, device=device, dtype=dtype)[None, None, :]
    k = torch.sqrt(fy**2 + fx**2) / pixel_size_angstrom.to(device=device, dtype=dtype)[:, None, None]
    ne = critical_exposure_e_per_a2(k, voltage_kv.to(device=device, dtype=dtype)[:, None, None])
    x = dose_e_per_a2.to(dtype)[:, None, None] / (2 * ne)
    env = -torch.expm1(-x) / x
    env[:, 0, 0] = 1.0
    return env
