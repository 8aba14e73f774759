"""Does averaging ``ldm`` samples converge on the truth? (issue 5, criterion 5)

For each of ``--projections`` projections (held-out structures in turn, a random orientation and in-plane shift
each), ``--n`` particles are simulated at 300 kV that share the specimen, rotation and shift (so the truth) but
have independent noise, defocus, Cs, ice, neighbours and contrast factor (the simulator's defaults at ``--dose``;
contrast factor 0.4-1.0 as in training). Each particle is retrieved by one ``ldm`` sample, the ``regression`` peer
and the Wiener filter; the outputs are averaged over 4 particles (every disjoint group of 4) and over all ``--n``;
the FRC of each average against the truth, averaged over groups and projections, is reported as its mean above
1/12 A^-1 (up to Nyquist).

Requirement: ldm beats the peer at ``--n`` (100), beats Wiener at 4, and comes within 0.01 of Wiener at ``--n``.

Two oracle rows show what an exact posterior sampler can reach at all. Each particle gets the exact posterior of
the weak-phase linear-Gaussian model ``d = T phi + n`` (contrast ``d``, ``T = -CTF / sqrt(1 - A^2)``) whose prior
power spectrum is the truth's own and whose noise spectrum is this particle's own non-signal contrast (shot noise,
ice, neighbours: ``d - T phi`` with the true ``phi``), ring by ring. ``oracle posterior mean`` is
``P T d / (T^2 P + N)``; ``oracle posterior sample`` adds Gaussian noise of the posterior variance
``P N / (T^2 P + N)``. Since ``E[sample | truth] = E[posterior mean | truth]``, averages of samples converge to the
same limit as averages of posterior means, with the posterior variance as extra noise: where one particle's SNR
``s`` is small, the average of ``n`` samples has an SNR of about ``n s^2`` against ``n s`` for the means (and for
Wiener), so no calibrated sampler's average can keep up with Wiener's at low SNR.
``--variant KEY=VALUE[,KEY=VALUE]`` adds rows for ``ldm`` with other settings (``guidance_scale``,
``refine_iterations``), each checked against the same requirement; the verdict is plain ``ldm``'s.

    python benchmarks/ldm_averaging.py [--weights runs/default/weights] [--n 100] [--projections 8] [--dose 30]
        [--steps 20] [--threads 2] [--out docs/figures] [--variant guidance_scale=0.1 ...]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace

import torch

from _common import HELDOUT_STRUCTURES, add_common_arguments, evaluation_config, markdown, mean_frc_above, start
from cryophase.evaluation.figures import curves_plot
from cryophase.evaluation.frc import FrcCurves, fourier_ring_correlation
from cryophase.physics.forward import ImagingPhysics
from cryophase.retrieval.base import get_method
from cryophase.retrieval.wiener import ring_average, ring_index, weak_phase_contrast
from cryophase.simulation import simulate_batch
from cryophase.simulation.batch import random_rotations
from cryophase.specimens.base import Projection, Specimen
from cryophase.specimens.registry import load_specimens

MIN_FREQUENCY_PER_ANGSTROM = 1.0 / 12.0
SMALL_GROUP = 4
WIENER_TOLERANCE = 0.01
LDM, PEER, WIENER = "ldm sample", "regression", "wiener"
ORACLE_MEAN, ORACLE_SAMPLE = "oracle posterior mean", "oracle posterior sample"
VOLTAGE_KV = 300.0


@dataclass(frozen=True)
class FixedView:
    """A specimen always projected at one rotation ``(3, 3)`` and shift ``(2,)`` A, whatever the simulator draws."""

    specimen: Specimen
    rotation: torch.Tensor
    shift_angstrom: torch.Tensor

    @property
    def name(self) -> str:
        return f"{self.specimen.name} (fixed view)"

    def project(self, rotations: torch.Tensor, shifts_angstrom: torch.Tensor, image_shape: tuple[int, int],
                pixel_size_angstrom: float, *, b_factor_a2: float = 0.0) -> Projection:
        b = rotations.shape[0]
        return self.specimen.project(self.rotation.to(rotations).expand(b, 3, 3),
                                     self.shift_angstrom.to(shifts_angstrom).expand(b, 2), image_shape,
                                     pixel_size_angstrom, b_factor_a2=b_factor_a2)


def gaussian_oracle(counts: torch.Tensor, physics: ImagingPhysics, truth: torch.Tensor, *, sample: bool,
                    generator: torch.Generator) -> torch.Tensor:
    """Exact posterior mean or one posterior sample per particle of the weak-phase linear-Gaussian model with the
    truth's own power spectrum as the prior and each particle's own non-signal contrast as the noise (see the module
    docstring); ``counts`` ``(B, H, W)``, ``truth`` ``(1, H, W)`` radians; returns ``(B, H, W)`` radians."""
    counts, truth = counts.double(), truth.double()
    physics = physics.to(counts.device, counts.dtype)
    shape = counts.shape[-2:]
    a = physics.optics.amplitude_contrast.to(counts)[:, None, None]
    transfer = -physics.ctf(shape, rfft=True).to(counts) / torch.sqrt(1 - a**2)
    contrast = torch.fft.rfft2(weak_phase_contrast(counts, physics))
    truth_f = torch.fft.rfft2(truth - truth.mean())
    rings = ring_index(shape, device=counts.device)
    prior = ring_average(truth_f.abs().pow(2), rings)[0].expand_as(transfer)
    noise = ring_average((contrast - transfer * truth_f).abs().pow(2), rings)[0].clamp_min(1e-30)
    denominator = transfer**2 * prior + noise
    phase_f = prior * transfer * contrast / denominator
    if sample:
        white = torch.fft.rfft2(torch.randn(counts.shape, generator=generator, dtype=counts.dtype))
        phase_f = phase_f + white * torch.sqrt(prior * noise / denominator / (shape[0] * shape[1]))
    return torch.fft.irfft2(phase_f, s=shape)


def group_frc(outputs: torch.Tensor, truth: torch.Tensor, group: int) -> FrcCurves:
    """FRC of the averages of disjoint groups of ``group`` outputs ``(N, H, W)`` against ``truth`` ``(1, H, W)``,
    averaged over the groups (a batch of one)."""
    n_groups = outputs.shape[0] // group
    averages = outputs[: n_groups * group].double().reshape(n_groups, group, *outputs.shape[-2:]).mean(dim=1)
    return fourier_ring_correlation(averages, truth.double().expand_as(averages)).mean()


def mean_of(curves: list[FrcCurves]) -> FrcCurves:
    """The average of batch-of-one FRC curves."""
    return replace(curves[0], correlation=torch.cat([c.correlation for c in curves])).mean()


def parse_variant(text: str) -> dict[str, float]:
    """``"guidance_scale=0.1,refine_iterations=5"`` -> ``{"guidance_scale": 0.1, "refine_iterations": 5}``."""
    options = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--variant {text!r}: expected KEY=VALUE[,KEY=VALUE]")
        options[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else float(value)
    return options


def requirement_checks(score: dict, ldm: str, n: int) -> list[dict]:
    """Criterion 5 for one ldm row: beat the peer at ``n``, Wiener at 4, and come within 0.01 of Wiener at ``n``."""
    return [{"requirement": f"{ldm} beats the regression peer at {n}", "ldm": score[(ldm, n)],
             "other": score[(PEER, n)], "pass": score[(ldm, n)] > score[(PEER, n)]},
            {"requirement": f"{ldm} beats Wiener at {SMALL_GROUP}", "ldm": score[(ldm, SMALL_GROUP)],
             "other": score[(WIENER, SMALL_GROUP)], "pass": score[(ldm, SMALL_GROUP)] > score[(WIENER, SMALL_GROUP)]},
            {"requirement": f"{ldm} within {WIENER_TOLERANCE} of Wiener at {n} (or better)", "ldm": score[(ldm, n)],
             "other": score[(WIENER, n)], "pass": score[(ldm, n)] >= score[(WIENER, n)] - WIENER_TOLERANCE}]


def averaging_benchmark(weights, *, steps: int = 20, seed: int = 100, n: int = 100, projections: int = 8,
                        dose_e_per_a2: float = 30.0, out: str | None = None,
                        variants: list[dict] | None = None) -> dict:
    """Run the benchmark, print its tables and return ``{"measured": str, "pass": bool, "rows": [...]}``."""
    specimens = load_specimens([str(p) for p in HELDOUT_STRUCTURES], torch.Generator().manual_seed(0))
    methods = {LDM: get_method("ldm", weights=weights, n_steps=steps, samples=1)}
    for options in variants or []:
        label = ", ".join(f"{k} {v:g}" for k, v in options.items())
        methods[f"{LDM} ({label})"] = get_method("ldm", weights=weights, n_steps=steps, samples=1, **options)
    methods.update({PEER: get_method("regression", weights=weights), WIENER: get_method("wiener")})
    ldm_rows = [m for m in methods if m.startswith(LDM)]
    # One voltage: the truth phase (sigma_e V) depends on it, and every particle must share the same truth.
    config = replace(evaluation_config(dose_e_per_a2=dose_e_per_a2), box_size=methods[LDM].grid.image_size,
                     voltage_choices_kv=(VOLTAGE_KV,))
    g = torch.Generator().manual_seed(seed)
    rows_of = [*methods, ORACLE_MEAN, ORACLE_SAMPLE]
    curves = {(m, k): [] for m in rows_of for k in (SMALL_GROUP, n)}
    per_projection = []
    for p in range(projections):
        rotation = random_rotations(torch.randn(1, 4, generator=g))[0]
        shift = torch.randn(2, generator=g) * config.shift_sd_pixels * config.pixel_size_angstrom
        view = FixedView(specimens[p % len(specimens)], rotation, shift)
        batch = simulate_batch([view], config, n, torch.Generator().manual_seed(seed + 1000 + p))
        truth = batch.phase[:1]
        row = {"projection": p + 1, "structure": view.specimen.name}
        outputs = {}
        for name, method in methods.items():
            generator = torch.Generator().manual_seed(seed + p)
            phase = method.reconstruct(batch.counts, batch.physics, generator=generator).phase
            outputs[name] = phase
        for name, sample in ((ORACLE_MEAN, False), (ORACLE_SAMPLE, True)):
            outputs[name] = gaussian_oracle(batch.counts, batch.physics, truth, sample=sample,
                                            generator=torch.Generator().manual_seed(seed + p))
        for name, phase in outputs.items():
            for k in (SMALL_GROUP, n):
                curves[(name, k)].append(group_frc(phase, truth, k))
            row[f"{name} @{n}"] = mean_frc_above(curves[(name, n)][-1], config.pixel_size_angstrom,
                                                 MIN_FREQUENCY_PER_ANGSTROM)
        per_projection.append(row)
    mean_curves = {key: mean_of(c) for key, c in curves.items()}
    score = {key: mean_frc_above(c, config.pixel_size_angstrom, MIN_FREQUENCY_PER_ANGSTROM)
             for key, c in mean_curves.items()}
    rows = [{"method": m, f"mean FRC > 1/12 A^-1, average of {SMALL_GROUP}": score[(m, SMALL_GROUP)],
             f"average of {n}": score[(m, n)],
             # the spread of the per-projection scores: differences smaller than about two of these are noise
             f"standard error over the {projections} projections, average of {n}":
                 float(torch.tensor([r[f"{m} @{n}"] for r in per_projection]).std() / projections**0.5)}
            for m in rows_of]
    checks = requirement_checks(score, LDM, n)
    print(f"## Averaging {n} particles of one projection ({projections} projections of {len(specimens)} held-out "
          f"structures, {dose_e_per_a2:g} e/A^2, ldm {steps} steps, one sample per particle)\n")
    print(markdown(rows))
    print(f"\nThe oracle rows use the truth (its power spectrum as the prior, its residual as each particle's noise "
          f"spectrum) in the exact posterior of the weak-phase linear-Gaussian model: not a method, a bound. Their "
          f"posterior samples are calibrated by construction, and their average of {n} shows how far any calibrated "
          f"sampler's can get: a sample's expected value is the posterior mean's, plus the posterior variance as "
          f"noise, so where one particle's SNR s is small the average of {n} has an SNR of about {n} s^2, against "
          f"{n} s for posterior means and for Wiener.")
    print(f"\nper projection, mean FRC > 1/12 A^-1 of the average of {n}:\n")
    print(markdown(per_projection))
    print("\n## Verdict (criterion 5)\n")
    print(markdown(checks))
    for name in ldm_rows[1:]:
        print(f"\n{name}, against the same requirement:\n")
        print(markdown(requirement_checks(score, name, n)))
    if out is not None:
        frequency = mean_curves[(LDM, n)].frequency_per_angstrom(config.pixel_size_angstrom).numpy()
        path = curves_plot({f"{m}, {k}": (frequency, mean_curves[(m, k)].correlation[0].numpy()) for m in rows_of
                            for k in (SMALL_GROUP, n)}, f"{out}/ldm_averaging_frc.png",
                           xlabel="spatial frequency (1/Å)", ylabel="FRC of the average vs truth",
                           title=f"Averages of {SMALL_GROUP} and {n} particles of one projection",
                           hlines={"0": 0.0})
        print(f"\nfigure: {path}")
    measured = "; ".join(f"{c['requirement']}: {c['ldm']:.3f} vs {c['other']:.3f}" for c in checks)
    return {"measured": measured, "pass": all(c["pass"] for c in checks), "rows": rows}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, n_default=100, out_default="docs/figures")
    parser.add_argument("--projections", type=int, default=8, help="projections (held-out structures in turn)")
    parser.add_argument("--dose", type=float, default=30.0, help="e/A^2 of every particle")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="add an ldm row with these settings, e.g. guidance_scale=0.1 (repeatable)")
    args = parser.parse_args()
    start(args, "ldm: averaging single samples of one projection")
    if args.n < 2 * SMALL_GROUP:
        parser.error(f"--n must be at least {2 * SMALL_GROUP}")
    averaging_benchmark(args.weights, steps=args.steps, seed=args.seed, n=args.n, projections=args.projections,
                        dose_e_per_a2=args.dose, out=args.out, variants=[parse_variant(v) for v in args.variant])


if __name__ == "__main__":
    main()
