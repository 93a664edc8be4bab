"""The few files a fragment's process keeps for all its jobs: each job's result, timing and part of the
output found again, a record cut short by a dying process not taken for a result, scratch emptied
between jobs, and a bundle's jobs answered one by one in a process that creates no file per job."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from qcmb_parsl.execution.isolation import EngineJob, FragmentLimits, isolated_compute_many
from qcmb_parsl.execution.isolation import files

pytestmark = pytest.mark.fast

HELIUM = {"molecule": {"symbols": ["He"], "geometry": [0.0, 0.0, 0.0]}, "driver": "energy"}


def test_a_record_cut_short_is_not_a_result(tmp_path):
    path = tmp_path / files.RESULTS
    whole = [json.dumps({"index": i, "started": 1.0, "wall_time": 0.1}) + "\n" + '{"success": true}\n' for i in (0, 1)]
    path.write_text("".join(whole) + json.dumps({"index": 2, "started": 2.0, "wall_time": 0.1}) + '\n{"succ')
    assert sorted(files.read_results(path)) == [0, 1]
    path.write_text("".join(whole) + '{"index": 2, "sta')
    assert files.read_results(path)[1] == ({"index": 1, "started": 1.0, "wall_time": 0.1}, '{"success": true}')
    assert files.read_results(tmp_path / "missing") == {}


def test_progress_written_over_in_place_reads_as_the_last_record(tmp_path):
    path = tmp_path / files.PROGRESS
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    files.write_progress(fd, {"index": 10, "started": 123.456789, "stdout": 100000, "stderr": 100000})
    files.write_progress(fd, {"index": 2, "started": 1.5, "stdout": 0, "stderr": 0})
    os.close(fd)
    assert files.read_progress(path) == {"index": 2, "started": 1.5, "stdout": 0, "stderr": 0}
    assert files.read_progress(tmp_path / "missing") is None


def test_a_jobs_part_of_the_output_and_scratch_emptied_between_jobs(tmp_path):
    output = tmp_path / "stdout.txt"
    output.write_bytes(b"first job\nits last words\nsecond job\n")
    assert files.tail(output, 0, 25) == "first job\nits last words"
    assert files.tail(output, 25) == "second job"
    assert files.tail(output, 25, max_chars=4) == "job"
    (tmp_path / "scratch" / "deep").mkdir(parents=True)
    (tmp_path / "scratch" / "deep" / "file").write_text("left by a job")
    (tmp_path / "scratch" / "file").write_text("left by a job")
    files.empty(tmp_path / "scratch")
    assert (tmp_path / "scratch").is_dir() and not list((tmp_path / "scratch").iterdir())


def test_a_bundle_answers_each_job_and_blames_only_the_one_that_failed(tmp_path):
    """Three jobs in one process: the second asks PySCF for a basis it does not know. Each gets its own
    answer, timing and part of the output, and the process's directory is gone afterwards."""
    config = {"ncores": 1, "memory": 0.5, "retries": 0, "scratch_directory": str(tmp_path)}
    jobs = [
        EngineJob("pyscf", {**HELIUM, "model": {"method": "hf", "basis": basis}}, config, {})
        for basis in ("sto-3g", "no-such-basis", "6-31g")
    ]
    first, failed, third = isolated_compute_many(jobs, FragmentLimits())
    energies = [json.loads(o.result_json)["properties"]["return_energy"] for o in (first, third)]
    assert energies[0] == pytest.approx(-2.807783957, abs=1e-6) and energies[1] < energies[0]
    assert json.loads(failed.result_json)["success"] is False
    assert first.engine_pid == failed.engine_pid == third.engine_pid
    assert first.started < failed.started < third.started and all(o.exit_status == 0 for o in (first, failed, third))
    assert not list(Path(tmp_path).iterdir())
