"""``cryophase_relion_external`` on bad inputs: the failure marker, one error line naming the file, no outputs."""

from __future__ import annotations

import pytest

from cryophase.relion_external import main as relion_external
from test_retrieve_inputs import (case_defocus_in_micrometres, case_index_beyond_stack, case_missing_defocus,
                                  case_nan_pixel, case_truncated_stack, case_zero_voltage_in_star)

CASES = {f.__name__[len("case_"):]: f for f in (case_defocus_in_micrometres, case_index_beyond_stack,
                                                 case_missing_defocus, case_nan_pixel, case_truncated_stack,
                                                 case_zero_voltage_in_star)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_relion_job_fails_cleanly(case, sim, tmp_path, capsys):
    args, phrases = CASES[case](sim)
    job = tmp_path / "External" / "job012"
    code = relion_external(["--in_parts", str(args[0]), "--o", str(job), "--method", "wiener", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("cryophase: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    for phrase in phrases:
        assert phrase in errors[0], (phrase, errors[0])
    assert sorted(p.name for p in job.iterdir()) == ["RELION_JOB_EXIT_FAILURE"]
