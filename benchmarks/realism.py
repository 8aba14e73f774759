"""How far are simulated particles from real ones? Power spectra, particle-vs-background power and histograms.

For each REAL stack in ../shared/data/real_particles (RELION-normalised, see SOURCES.md), simulate particles at
the same pixel size, box, voltage, Cs, amplitude contrast and defocus (from its STAR file), normalise them as
RELION does (``conventions.relion_normalise``), and compare, per band of spatial frequency (fractions of
Nyquist):

* ``PS``: log10 of simulated over real radially averaged power spectrum (0 = match);
* ``excess``: power of the particle disk (r < 0.3 box) over that of the background (r > 0.4 box), minus 1, a
  spectral-SNR proxy computed identically on both (real and simulated values shown);
* histograms: standard deviation, skewness and excess kurtosis of the normalised pixels and the two-sample
  Kolmogorov-Smirnov distance between the pooled pixel values.

Large boxes are Fourier-cropped to at most ``--max-box`` pixels (the pixel size grows accordingly) so the
comparison runs in a minute on two cores.

    python benchmarks/realism.py [--n 24] [--max-box 128] [--set ice_thickness_range_angstrom=300,500 ...]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch

from cryophase.conventions import relion_normalise
from cryophase.io.star import ParticleImages, read_particles_star
from cryophase.simulation import SimulationConfig, simulate_batch
from cryophase.specimens.synthetic import SyntheticProteinConfig, random_synthetic_protein

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real_particles"
#: (STAR file, its stack, approximate mass of the particle in kDa for the synthetic stand-in)
DATASETS = {
    "trpv1": ("trpv1/trpv1_small_stack.star", "trpv1/trpv1_small_stack.mrcs", 380.0),
    "empiar10076": ("empiar10076/empiar_10076_7.star", "empiar10076/empiar_10076_7.mrc", 1400.0),
    "relion31": ("relion31/relion31.star", "relion31/relion31.mrcs", 2500.0),
    "aspire": ("aspire_sample/sample_particles_relion31.star", "aspire_sample/sample.mrcs", 500.0),
}
BANDS = ((0.02, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 1.0))


def fourier_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bin (B, N, N) images to (B, size, size) by keeping the central Fourier square."""
    n = images.shape[-1]
    if size >= n:
        return images
    spectrum = torch.fft.fftshift(torch.fft.fft2(images.to(torch.float64)), dim=(-2, -1))
    lo = n // 2 - size // 2
    cropped = spectrum[..., lo:lo + size, lo:lo + size]
    return torch.fft.ifft2(torch.fft.ifftshift(cropped, dim=(-2, -1))).real.to(images.dtype) * (size / n) ** 2


def radial_index(n: int) -> torch.Tensor:
    """Radius of each FFT pixel as a fraction of Nyquist, (n, n)."""
    f = torch.fft.fftfreq(n, dtype=torch.float64) * 2
    return torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)


def band_power(images: torch.Tensor, mask: torch.Tensor | None = None) -> np.ndarray:
    """Mean power per band of (B, N, N) images (optionally masked, normalised by the mask area)."""
    x = images.to(torch.float64)
    area = float(x.shape[-1] * x.shape[-2])
    if mask is not None:
        x = x * mask
        area = float(mask.sum())
    power = (torch.fft.fft2(x).abs() ** 2).mean(dim=0) / area
    r = radial_index(x.shape[-1])
    return np.array([float(power[(r >= lo) & (r < hi)].mean()) for lo, hi in BANDS])


def disk_masks(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    c = torch.arange(n, dtype=torch.float64) - n // 2
    r = torch.sqrt(c[:, None] ** 2 + c[None, :] ** 2) / n
    return (r < 0.3).to(torch.float64), (r > 0.4).to(torch.float64)


def moments(images: torch.Tensor) -> tuple[float, float, float]:
    x = images.to(torch.float64).flatten()
    x = x - x.mean()
    sd = float(x.std())
    return sd, float((x**3).mean() / sd**3), float((x**4).mean() / sd**4 - 3)


def ks_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    a = np.sort(a.flatten().numpy())
    b = np.sort(b.flatten().numpy())
    grid = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, grid, side="right") / a.size
                               - np.searchsorted(b, grid, side="right") / b.size)))


def load_real(star: Path, stack: Path, max_box: int):
    table = read_particles_star(star, stack=stack)
    with ParticleImages(table) as images:
        real = images.read(slice(None))
    optics = table.optics_for()
    n = real.shape[-1]
    size = min(n, max_box)
    size -= size % 2
    real = fourier_crop(real, size)
    pixel = float(optics.pixel_size_angstrom[0]) * n / size
    original = table.particles.get("rlnMicrographOriginalPixelSize")
    detector_pixel = float(original.iloc[0]) if original is not None else None
    return real, optics, pixel, detector_pixel


def matched_config(base: SimulationConfig, optics, box: int, pixel: float, detector_pixel: float | None):
    voltage = float(torch.mode(optics.voltage_kv).values)
    defocus = optics.defocus_mean_angstrom
    astig = float((optics.defocus_u_angstrom - optics.defocus_v_angstrom).abs().max())
    changes = dict(
        box_size=box, pixel_size_angstrom=pixel, voltage_choices_kv=(voltage,),
        cs_choices_mm=(float(optics.cs_mm[0]),), amplitude_contrast_choices=(float(optics.amplitude_contrast[0]),),
        defocus_range_angstrom=(float(defocus.min()), float(defocus.max())), max_astigmatism_angstrom=astig,
    )
    if detector_pixel is not None:
        changes["detector_pixel_size_angstrom"] = detector_pixel
    return replace(base, **changes)


def parse_overrides(items: list[str]) -> dict:
    types = {f.name: f.type for f in fields(SimulationConfig)}
    out = {}
    for item in items:
        key, value = item.split("=", 1)
        if key not in types:
            raise SystemExit(f"unknown SimulationConfig field {key!r}")
        default = getattr(SimulationConfig(), key)
        if isinstance(default, tuple):
            out[key] = tuple(float(v) for v in value.split(","))
        elif isinstance(default, bool):
            out[key] = value.lower() in ("1", "true", "yes")
        elif isinstance(default, (int, float)):
            out[key] = type(default)(value)
        else:
            out[key] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=24, help="simulated particles per data set")
    parser.add_argument("--max-box", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], help="SimulationConfig overrides, key=value")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is absent: the real particles ship beside the repository")
    base = replace(SimulationConfig(), **parse_overrides(args.set))
    print(f"settings changed from the defaults: {parse_overrides(args.set) or 'none'}\n")
    band_names = [f"{lo:g}-{hi:g}" for lo, hi in BANDS]
    ps_rows, excess_rows, hist_rows = [], [], []
    start = time.perf_counter()
    total_abs, excess_abs = [], []
    for name, (star, stack, mass) in DATASETS.items():
        real, optics, pixel, detector_pixel = load_real(DATA / star, DATA / stack, args.max_box)
        box = real.shape[-1]
        config = matched_config(base, optics, box, pixel, detector_pixel)
        g = torch.Generator().manual_seed(args.seed)
        specimens = [random_synthetic_protein(SyntheticProteinConfig(), g, mass_kda=mass) for _ in range(2)]
        sim = simulate_batch(specimens, config, args.n, g)
        sim_norm = relion_normalise(sim.counts.to(torch.float64), invert=True)
        real_norm = relion_normalise(real.to(torch.float64), invert=False)
        ps = np.log10(band_power(sim_norm) / band_power(real_norm))
        total_abs.append(np.abs(ps))
        inner, outer = disk_masks(box)
        excess_real = band_power(real_norm, inner) / band_power(real_norm, outer) - 1
        excess_sim = band_power(sim_norm, inner) / band_power(sim_norm, outer) - 1
        excess_abs.append(np.abs(np.log10((1 + excess_sim) / (1 + excess_real))))
        ps_rows.append(f"| {name} ({box} px, {pixel:.2f} A) | " + " | ".join(f"{v:+.2f}" for v in ps)
                       + f" | {np.abs(ps).mean():.2f} |")
        excess_rows.append(f"| {name} | " + " | ".join(f"{r:+.2f} / {s:+.2f}" for r, s in zip(excess_real, excess_sim))
                           + " |")
        mr, ms = moments(real_norm), moments(sim_norm)
        hist_rows.append(f"| {name} | {mr[0]:.2f} / {ms[0]:.2f} | {mr[1]:+.2f} / {ms[1]:+.2f} | "
                         f"{mr[2]:+.2f} / {ms[2]:+.2f} | {ks_distance(real_norm, sim_norm):.3f} |")

    print("Power spectrum mismatch, log10(simulated / real), per band (fraction of Nyquist):\n")
    print("| data set | " + " | ".join(band_names) + " | mean abs |")
    print("| --- |" + " ---: |" * (len(BANDS) + 1))
    print("\n".join(ps_rows))
    print(f"\nmean |log10 ratio| over data sets and bands: {np.mean(total_abs):.3f}\n")
    print("Particle-over-background excess power (spectral-SNR proxy), real / simulated:\n")
    print("| data set | " + " | ".join(band_names) + " |")
    print("| --- |" + " ---: |" * len(BANDS))
    print("\n".join(excess_rows))
    print(f"\nmean |log10((1 + simulated) / (1 + real))| over data sets and bands: {np.mean(excess_abs):.3f}")
    print("\nPixel histograms of the normalised images, real / simulated:\n")
    print("| data set | sd | skewness | excess kurtosis | KS distance |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print("\n".join(hist_rows))
    print(f"\n({args.n} simulated particles per data set, {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
