"""Every writer is atomic: a write that fails half-way leaves the old file as it was and no temporary file.

Each case writes a file once, then writes it again with the underlying writer made to fail after it has
written part of its output; the first version must survive byte for byte and the folder hold nothing else.
Outputs get the permissions of an ordinarily written file (0666 less the umask), not mkstemp's 0600.
"""

from __future__ import annotations

import os
import stat

import numpy as np
import pandas as pd
import pytest
import torch

from robust_inputs import invoke
from cryophase.evaluation.figures import curves_plot
from cryophase.evaluation.report import write_html_report
from cryophase.io.mrc import MrcStackWriter, write_stack
from cryophase.io.outputs import write_json_atomic
from cryophase.io.star import write_star
from cryophase.models.weights import save_tensors
from cryophase.training.loop import MetricsLog


class Crash(RuntimeError):
    """Stands for the process being killed just before the rename."""


def stack(path, value):
    write_stack(path, np.full((2, 8, 8), value, np.float32), 1.0)


def star(path, value):
    write_star(path, {"particles": pd.DataFrame({"rlnImageName": [f"{value}@a.mrcs"]})})


def json_file(path, value):
    write_json_atomic(path, {"value": value})


def png(path, value):
    curves_plot({"a": (np.arange(3.0), np.arange(3.0) * value)}, path, xlabel="x", ylabel="y", title="t")


def html(path, value):
    write_html_report(path, title=f"t{value}", sections=[("s", [f"v{value}"])], provenance={})


def tensors(path, value):
    save_tensors(path, {"w": torch.full((3,), float(value))})


#: name -> (writer(path, value), file name); write_output_nodes (RELION external job) goes through write_star.
WRITERS = {
    "mrc": (stack, "out.mrcs"),
    "star": (star, "out.star"),
    "json": (json_file, "out.json"),
    "png": (png, "out.png"),
    "html": (html, "out.html"),
    "safetensors": (tensors, "out.safetensors"),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_failed_write_keeps_the_old_file(kind, tmp_path, monkeypatch):
    write, name = WRITERS[kind]
    path = tmp_path / name
    write(path, 1)
    before = path.read_bytes()
    monkeypatch.setattr(os, "replace", _crash_replace)  # the last step of every atomic writer
    with pytest.raises(Crash):
        write(path, 2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    write(path, 3)
    assert path.read_bytes() != before  # and the writer really writes this file


def _crash_replace(src, dst):
    assert os.path.getsize(src) > 0  # the new content was written, to the temporary file
    raise Crash("killed before the rename")


def test_chunked_stack_writer_is_atomic(tmp_path):
    path = tmp_path / "big.mrcs"
    writer = MrcStackWriter(path, 4, (8, 8), 1.0)
    writer.write(0, torch.ones(2, 8, 8))
    assert not path.exists()  # nothing under the final name until finalize
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_metrics_log_rewrites_whole_file(tmp_path):
    log = MetricsLog(tmp_path, enabled=True)
    log.write(1, {"loss": 1.0})
    log.write(2, {"loss": 0.5})
    log.truncate_after(1)
    assert (tmp_path / "metrics.csv").read_text() == "step,loss\n1,1.0\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]


def test_outputs_have_ordinary_permissions(sim, tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    out = tmp_path / "out"
    result = invoke(["retrieve", sim / "particles.star", "--method", "wiener", "--out", out, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for path in [*out.iterdir(), *sim.iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path


def test_weights_have_ordinary_permissions(tmp_path):
    # safetensors recreates its file owner-only (0600); weights are shared with colleagues like any output.
    from cryophase.models.weights import save_tensors

    mask = os.umask(0o022)
    os.umask(mask)
    save_tensors(tmp_path / "w.safetensors", {"x": torch.zeros(3)})
    assert stat.S_IMODE((tmp_path / "w.safetensors").stat().st_mode) == 0o666 & ~mask
