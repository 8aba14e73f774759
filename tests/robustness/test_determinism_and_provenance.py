"""Same seed + same inputs -> bit-identical outputs on the CPU; every output records version, command and settings.

Each command is run twice into the same output path (the first result moved aside), so that paths recorded in
the outputs agree. Only fields that record the time (``created_utc``, ``seconds``, ``elapsed_s``, the comment
line starlib writes at the top of every STAR file) may differ.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys

import pytest

from robust_inputs import invoke, simulate_small
from cryophase import __version__
from cryophase.models.weights import load_tensors
from cryophase.training import presets
from models.tiny import tiny_preset
from test_weights_safety import save_tiny_weights

TIME_FIELDS = {"created_utc", "seconds", "elapsed_s"}


def star_body(path):
    """A STAR file without its ``# Created by the starfile Python package ... at HH:MM:SS`` line."""
    return [line for line in path.read_text().splitlines() if not line.startswith("# Created by")]


def without_time(record):
    if isinstance(record, dict):
        return {k: without_time(v) for k, v in record.items() if k not in TIME_FIELDS}
    if isinstance(record, list):
        return [without_time(v) for v in record]
    return record


def twice(tmp_path, out_name, args):
    """Run the CLI twice into ``tmp_path/out_name``; returns (first, second) folders."""
    out = tmp_path / out_name
    for attempt in range(2):
        result = invoke([a if a != "OUT" else out for a in args])
        assert result.exit_code == 0, result.output
        if attempt == 0:
            shutil.move(out, tmp_path / f"{out_name}_first")
    return tmp_path / f"{out_name}_first", out


def assert_same_files(first, second, binary=(), star=(), json_files=()):
    for name in binary:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    for name in star:
        assert star_body(first / name) == star_body(second / name), name
    for name in json_files:
        a, b = (json.loads((d / name).read_text()) for d in (first, second))
        assert without_time(a) == without_time(b), name


def test_simulate_is_bit_identical(tmp_path):
    first, second = twice(tmp_path, "sim", ["simulate", "OUT", "--n", "3", "--box", "16", "--seed", "7"])
    assert_same_files(first, second, binary=["particles.mrcs", "phases.mrcs"], star=["particles.star"],
                      json_files=["simulation.json"])


@pytest.mark.parametrize("method", ["wiener", "phase-flip", "gs", "raf", "hio", "raar", "ml", "regression", "ldm"])
def test_retrieve_is_bit_identical(method, sim, tmp_path):
    extra = []
    if method in ("regression", "ldm"):
        extra = ["--weights", save_tiny_weights(tmp_path / "weights")]
    if method == "ldm":
        extra += ["--option", "n_steps=3", "--option", "samples=2"]
    first, second = twice(tmp_path, "out", ["retrieve", sim / "particles.star", "--method", method, "--out", "OUT",
                                            "--device", "cpu", "--seed", "3", *extra])
    binary = ["phases.mrcs"] + (["uncertainty.mrcs"] if method == "ldm" else [])
    assert_same_files(first, second, binary=binary, star=["phases.star"], json_files=["retrieve.json"])


@pytest.fixture
def tiny_train_preset(monkeypatch):
    """``--preset tiny``: the 16 px test models, 2 steps between checkpoints."""
    monkeypatch.setitem(presets.PRESETS, "tiny", tiny_preset)


@pytest.fixture(scope="module")
def sim16(tmp_path_factory):
    return simulate_small(tmp_path_factory.mktemp("sim16") / "sim", n=12, box=16)


def test_train_is_bit_identical(tiny_train_preset, sim16, tmp_path):
    first, second = twice(tmp_path, "run", ["train", "vae", "--out", "OUT", "--preset", "tiny", "--data", sim16,
                                            "--max-steps", "3", "--seed", "2", "--no-progress", "--device", "cpu"])
    assert_same_files(first, second, binary=["weights/vae.safetensors", "weights/vae.json"],
                      json_files=["vae/run.json", "vae/checkpoint/state.json"])
    for name in ("model", "ema", "optimizer", "rng"):
        assert_same_files(first, second, binary=[f"vae/checkpoint/{name}.safetensors"])
    rows = [list(csv.DictReader(open(d / "vae" / "metrics.csv"))) for d in (first, second)]
    assert without_time(rows[0]) == without_time(rows[1]) and len(rows[0]) >= 1


# --- provenance -------------------------------------------------------------------------------------------------

def _with_argv(monkeypatch, args):
    monkeypatch.setattr(sys, "argv", ["/usr/bin/cryophase", *map(str, args)])
    result = invoke(args)
    assert result.exit_code == 0, result.output
    return " ".join(["cryophase", *map(str, args)])


def _check(record, command_line):
    assert record["cryophase_version"] == __version__
    assert record["command_line"] == command_line
    assert isinstance(record["settings"], dict) and record["settings"]
    return record["settings"]


def test_simulate_records_provenance(monkeypatch, tmp_path):
    line = _with_argv(monkeypatch, ["simulate", tmp_path / "s", "--n", "2", "--box", "16", "--seed", "5",
                                    "--dose", "33"])
    record = json.loads((tmp_path / "s" / "simulation.json").read_text())
    settings = _check(record, line)
    assert settings["seed"] == 5
    assert record["simulation_config"]["dose_range_e_per_a2"] == [33.0, 33.0]
    assert record["simulation_config"]["box_size"] == 16


def test_retrieve_and_evaluate_record_provenance(monkeypatch, sim, tmp_path):
    line = _with_argv(monkeypatch, ["retrieve", sim / "particles.star", "--method", "gs", "--out", tmp_path / "r",
                                    "--device", "cpu", "--seed", "9", "--batch-size", "3"])
    record = json.loads((tmp_path / "r" / "retrieve.json").read_text())
    settings = _check(record, line)
    assert settings["seed"] == 9 and settings["batch_size"] == 3 and record["method"] == "gs"
    line = _with_argv(monkeypatch, ["evaluate", "--truth", sim / "phases.mrcs", "--pred", tmp_path / "r" /
                                    "phases.mrcs", "--out", tmp_path / "e", "--lowpass-angstrom", "25"])
    settings = _check(json.loads((tmp_path / "e" / "metrics.json").read_text()), line)
    assert settings["lowpass_resolution_angstrom"] == 25


def test_train_records_provenance(monkeypatch, tiny_train_preset, sim16, tmp_path):
    line = _with_argv(monkeypatch, ["train", "vae", "--out", tmp_path / "run", "--preset", "tiny", "--data", sim16,
                                    "--max-steps", "2", "--seed", "4", "--no-progress", "--device", "cpu"])
    settings = _check(json.loads((tmp_path / "run" / "vae" / "run.json").read_text()), line)
    assert settings["kind"] == "vae" and settings["preset"] == "tiny"
    assert settings["loop"]["seed"] == 4 and settings["loop"]["max_steps"] == 2
