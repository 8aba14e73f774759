"""Input preparation: counts vs RELION-normalised detection, contrast inversion, conversion to counts."""

from __future__ import annotations

import pytest
import torch

from cryophase.conventions import relion_normalise
from cryophase.errors import CryophaseError
from cryophase.evaluation import normalised_cross_correlation
from cryophase.io.particles import (
    contrast_scores,
    inspect_images,
    read_particle_table,
    sample_rows,
    to_counts,
)
from cryophase.io.star import ParticleImages, StarError
from cryophase.physics import ImagingPhysics, Optics, sample_counts
from cryophase.physics.forward import dose_from_counts

DOSE, PIXEL = 60.0, 1.5


def _phantom(n, box, generator):
    yy, xx = torch.meshgrid(torch.arange(box, dtype=torch.float64), torch.arange(box, dtype=torch.float64),
                            indexing="ij")
    centres = box / 2 + 3 * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    r2 = (yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2
    return 0.5 * torch.exp(-r2 / (2 * (box / 10) ** 2))


@pytest.fixture
def counts_and_optics(generator):
    n, box = 8, 96
    optics = Optics.create(defocus_u_angstrom=torch.linspace(10000, 25000, n), pixel_size_angstrom=PIXEL,
                           amplitude_contrast=0.1, dtype=torch.float64)
    phase = _phantom(n, box, generator)
    counts = sample_counts(ImagingPhysics(optics, DOSE).expected_counts(phase), generator)
    return counts, optics


def test_counts_are_detected_and_keep_their_dose(counts_and_optics):
    counts, optics = counts_and_optics
    convention = inspect_images(counts, optics)
    assert not convention.normalised and not convention.inverted
    assert convention.normalised_source == "detected" and "electron counts" in convention.report[0]
    out, physics = to_counts(counts, optics, convention, None)
    assert out is counts
    # The dose is the mean count over the pixel area: 60 e/A^2 within shot noise and absorption (~1%).
    torch.testing.assert_close(physics.dose_e_per_a2, torch.full((8,), DOSE, dtype=torch.float64), rtol=0.02, atol=0)
    torch.testing.assert_close(dose_from_counts(counts, optics.pixel_size_angstrom), physics.dose_e_per_a2)


@pytest.mark.parametrize("invert", [True, False])
def test_normalised_particles_and_their_contrast_are_detected(counts_and_optics, invert):
    counts, optics = counts_and_optics
    normalised = relion_normalise(counts, invert=invert)
    convention = inspect_images(normalised, optics)
    assert convention.normalised and convention.inverted == invert
    assert convention.inverted_source == "detected"
    scores = contrast_scores(normalised, optics)
    assert ((scores > 0) == invert).all()


def test_user_flags_override_detection(counts_and_optics):
    counts, optics = counts_and_optics
    normalised = relion_normalise(counts, invert=True)
    convention = inspect_images(normalised, optics, inverted=False)
    assert convention.normalised and not convention.inverted and convention.inverted_source == "given"
    with pytest.raises(CryophaseError, match="negative"):
        inspect_images(normalised, optics, normalised=False)


def test_normalised_round_trip_recovers_counts_up_to_background_statistics(counts_and_optics):
    counts, optics = counts_and_optics
    normalised = relion_normalise(counts, invert=True)
    convention = inspect_images(normalised, optics)
    pseudo, physics = to_counts(normalised, optics, convention, DOSE)
    assert (pseudo >= 0).all()
    torch.testing.assert_close(physics.dose_e_per_a2, torch.full((8,), DOSE, dtype=torch.float64))
    # An affine map of the true counts (background mean and sd instead of N and sqrt(N)).
    assert normalised_cross_correlation(counts, pseudo).min() > 0.999
    assert (pseudo.mean(dim=(-2, -1)) / (DOSE * PIXEL**2) - 1).abs().max() < 0.05


def test_normalised_without_dose_is_a_clear_error(counts_and_optics):
    counts, optics = counts_and_optics
    normalised = relion_normalise(counts, invert=True)
    with pytest.raises(CryophaseError, match="--dose"):
        to_counts(normalised, optics, inspect_images(normalised, optics), None)


def test_sample_rows_spread_over_the_stack():
    assert list(sample_rows(5, 64)) == [0, 1, 2, 3, 4]
    rows = sample_rows(1000, 4)
    assert rows[0] == 0 and rows[-1] == 999 and len(rows) == 4


def test_unknown_file_type_is_refused(tmp_path):
    with pytest.raises(CryophaseError, match="unknown particle file type"):
        read_particle_table(tmp_path / "particles.csv")


@pytest.mark.parametrize("metadata, inverted", [
    ("aspire_sample/sample_particles_relion31.star", True),
    ("trpv1/trpv1_small_stack.star", True),
    ("empiar10076/empiar_10076_7.star", False),
])
def test_real_stacks_are_detected_as_normalised_with_their_contrast(shared_data, metadata, inverted):
    # SOURCES.md: all real stacks are normalised, most inverted (protein white). EMPIAR-10076's 7 particles
    # all come out dark (not inverted) with every particle agreeing; the others all bright.
    real = shared_data / "real_particles"
    stack = real / "trpv1" / "trpv1_small_stack.mrcs" if "trpv1" in metadata else None
    table = read_particle_table(real / metadata, stack=stack)
    with ParticleImages(table) as images:
        convention = inspect_images(images.read(slice(None)), table.optics_for())
    assert convention.normalised
    assert convention.inverted == inverted and convention.inverted_source == "detected"


def test_missing_stack_error_names_the_stack_the_places_and_the_remedy(shared_data):
    # SOURCES.md: trpv1_small_stack.star names './batch_0_restacked.mrc', which is not shipped; its images are in
    # trpv1_small_stack.mrcs beside it.
    star = shared_data / "real_particles" / "trpv1" / "trpv1_small_stack.star"
    with pytest.raises(StarError) as error:
        ParticleImages(read_particle_table(star))
    message = str(error.value)
    assert "batch_0_restacked.mrc" in message and str(star.parent.resolve()) in message and "--stack" in message
    table = read_particle_table(star, stack=star.with_suffix(".mrcs"))
    with ParticleImages(table) as images:
        assert images.read(slice(0, 2)).shape == (2, 48, 48)
