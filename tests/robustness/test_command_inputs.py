"""``evaluate``, ``simulate``, ``report`` and ``train`` on bad inputs: one-line error, exit 2, no output written."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from robust_inputs import assert_user_error, can_be_made_unreadable, invoke, snapshot
from cryophase.io.mrc import read_stack, write_stack


# --- evaluate ---------------------------------------------------------------------------------------------------

def _pred(sim, n=None, value=None):
    phases, pixel = read_stack(sim / "phases.mrcs")
    phases = phases[:n] if n is not None else phases.clone()
    if value is not None:
        phases[1, 4, 4] = value
    write_stack(sim / "pred.mrcs", phases, pixel)
    return sim / "pred.mrcs"


def ev_missing_truth(sim):
    return ["--truth", sim / "none.mrcs", "--pred", sim / "phases.mrcs"], ["none.mrcs", "no such file"]


def ev_count_mismatch(sim):
    return ["--truth", sim / "phases.mrcs", "--pred", _pred(sim, n=3)], ["pred.mrcs", "holds 4 images",
                                                                         "holds 3"]


def ev_nan_pred(sim):
    return ["--truth", sim / "phases.mrcs", "--pred", _pred(sim, value=np.nan)], ["pred.mrcs", "non-finite"]


def ev_volume_as_truth(sim):
    write_stack(sim / "volume.mrc", np.zeros((32, 32, 32), np.float32), 3.5)
    import mrcfile

    with mrcfile.open(sim / "volume.mrc", mode="r+") as mrc:
        mrc.set_volume()
    return ["--truth", sim / "volume.mrc", "--pred", sim / "phases.mrcs"], ["volume.mrc", "3D volume"]


def ev_corrupt_pred(sim):
    (sim / "pred.mrcs").write_bytes((sim / "phases.mrcs").read_bytes()[:1500])
    return ["--truth", sim / "phases.mrcs", "--pred", sim / "pred.mrcs"], ["pred.mrcs", "not a valid"]


def ev_zero_pixel_size(sim):
    return ["--truth", sim / "phases.mrcs", "--pred", sim / "phases.mrcs", "--pixel-size", "0"], \
        ["--pixel-size", "positive"]


def ev_negative_pixel_size(sim):
    return ["--truth", sim / "phases.mrcs", "--pred", sim / "phases.mrcs", "--pixel-size", "-2"], \
        ["--pixel-size", "positive"]


EVALUATE = {k[3:]: v for k, v in dict(globals()).items() if k.startswith("ev_")}


@pytest.mark.filterwarnings("ignore:Data array contains NaN values")  # mrcfile, when the test writes the NaN
@pytest.mark.parametrize("case", sorted(EVALUATE))
def test_evaluate_refuses(case, sim, tmp_path):
    args, phrases = EVALUATE[case](sim)
    out = tmp_path / "out"
    result = invoke(["evaluate", *args, "--out", out])
    assert_user_error(result, *phrases)
    assert snapshot(out) == {}


def test_evaluate_existing_results_refused(sim, tmp_path):
    out = tmp_path / "out"
    args = ["evaluate", "--truth", sim / "phases.mrcs", "--pred", sim / "phases.mrcs", "--out", out]
    assert invoke(args).exit_code == 0
    before = snapshot(out)
    assert_user_error(invoke(args), str(out), "already holds results", "--overwrite")
    assert snapshot(out) == before
    assert invoke([*args, "--overwrite"]).exit_code == 0


# --- simulate ---------------------------------------------------------------------------------------------------

SIMULATE = {
    "zero_dose": (["--dose", "0"], ["--dose", "positive"]),
    "negative_dose": (["--dose", "-10,40"], ["--dose", "positive"]),
    "zero_pixel_size": (["--pixel-size", "0"], ["pixel", "positive"]),
    "negative_pixel_size": (["--pixel-size", "-1"], ["pixel", "positive"]),
    "zero_box": (["--box", "0"], ["box"]),
    "defocus_in_micrometres": (["--defocus", "1.5"], ["--defocus", "micrometres", "--force"]),
    "negative_defocus_range": (["--defocus", "20000,10000"], ["--defocus", "MIN <= MAX"]),
    "missing_specimen_file": (["--specimen", "nothing.pdb"], ["nothing.pdb"]),
    "zero_particles": (["--n", "0"], ["--n", "at least 1"]),
}


@pytest.mark.parametrize("case", sorted(SIMULATE))
def test_simulate_refuses(case, tmp_path):
    args, phrases = SIMULATE[case]
    out = tmp_path / "out"
    n = [] if "--n" in args else ["--n", "2"]
    result = invoke(["simulate", out, *n, "--box", "16", *args])
    assert_user_error(result, *phrases)
    assert snapshot(out) == {}


def test_simulate_micrometre_defocus_runs_with_force(tmp_path):
    result = invoke(["simulate", tmp_path / "out", "--n", "1", "--box", "16", "--defocus", "1.5", "--force"])
    assert result.exit_code == 0, result.output


def test_simulate_existing_results_refused(sim):
    before = snapshot(sim)
    assert_user_error(invoke(["simulate", sim, "--n", "2", "--box", "16"]), str(sim), "already holds results",
                      "--overwrite")
    assert snapshot(sim) == before


# --- report -----------------------------------------------------------------------------------------------------

@pytest.fixture
def retrieved(sim, tmp_path):
    out = tmp_path / "retrieved"
    result = invoke(["retrieve", sim / "particles.star", "--method", "wiener", "--out", out, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return out


def test_report_not_a_retrieve_folder(sim, tmp_path):
    before = snapshot(sim)
    assert_user_error(invoke(["report", sim]), str(sim), "no retrieve.json")
    assert snapshot(sim) == before


def test_report_truth_count_mismatch(retrieved, sim):
    _pred(sim, n=3)
    before = snapshot(retrieved)
    assert_user_error(invoke(["report", retrieved, "--truth", sim / "pred.mrcs"]), "pred.mrcs", "holds 3 images")
    assert snapshot(retrieved) == before


def test_report_existing_report_refused(retrieved):
    assert invoke(["report", retrieved]).exit_code == 0
    before = snapshot(retrieved)
    assert_user_error(invoke(["report", retrieved]), "report.html", "already exists", "--overwrite")
    assert snapshot(retrieved) == before


# --- train ------------------------------------------------------------------------------------------------------

TRAIN = {
    "missing_data_folder": (lambda sim: ["--data", sim.parent / "nowhere"], ["nowhere"]),
    "corrupt_data_stack": (lambda sim: (sim / "particles.mrcs").write_bytes(b"\0" * 2000) and
                           ["--data", sim], ["particles.mrcs"]),
    "unknown_preset": (lambda sim: ["--data", sim, "--preset", "huge"], ["unknown preset 'huge'"]),
    "zero_batch_size": (lambda sim: ["--data", sim, "--batch-size", "0"], ["--batch-size"]),
    "zero_max_steps": (lambda sim: ["--data", sim, "--max-steps", "0"], ["--max-steps"]),
}


@pytest.mark.parametrize("case", sorted(TRAIN))
def test_train_refuses(case, sim, tmp_path):
    make, phrases = TRAIN[case]
    args = make(sim)
    out = tmp_path / "run"
    result = invoke(["train", "vae", "--out", out, *args, "--no-progress", "--device", "cpu"])
    assert_user_error(result, *phrases)
    assert not (out / "weights").exists() and not (out / "vae" / "checkpoint").exists()


def test_train_existing_run_refused(sim, tmp_path):
    out = tmp_path / "run"
    (out / "vae" / "checkpoint").mkdir(parents=True)
    (out / "vae" / "metrics.csv").write_text("step,loss\n1,0.5\n")
    before = snapshot(out)
    result = invoke(["train", "vae", "--out", out, "--data", sim, "--max-steps", "1", "--no-progress"])
    assert_user_error(result, "already holds results", "--overwrite")
    assert snapshot(out) == before


def test_unreadable_truth(sim, tmp_path):
    path = shutil.copy(sim / "phases.mrcs", tmp_path / "truth.mrcs")
    if not can_be_made_unreadable(path):
        pytest.skip("running as root: chmod 000 does not make a file unreadable for root")
    assert_user_error(invoke(["evaluate", "--truth", path, "--pred", sim / "phases.mrcs"]), "truth.mrcs",
                      "permission denied")
