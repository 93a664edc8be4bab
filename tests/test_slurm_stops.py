"""Stopping a driver that runs fragments on Slurm: its worker jobs go, its finished fragments stay.

On a real single-node Slurm started by the tests: a driver on the "login node" stopped with SIGTERM,
and the example batch script run as a driver job that ``scancel`` stops mid-campaign and a second
submission resumes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from drivers import descendants, interchanges, start_cli, still_alive, stop_driver, wait_for_cached, wait_until
from hpc_services import SlurmCluster, parsl_processes
from molecules import mbe_input

from qcmb_parsl.cache import FragmentCache

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[1]
SLURM_OPTIONS = [
    "--option", "partition=debug",
    "--option", "address=127.0.0.1",
    "--option", "exclusive=false",
    "--option", "walltime=00:10:00",
    "--option", "max_blocks=1",
    "--workers", "1",
]
N_TASKS = 13  # water trimer, MBE(3), cp and nocp


def _input(directory: Path, basis: str = "aug-cc-pvdz") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "trimer.json"
    path.write_text(json.dumps(mbe_input(3, method="mp2", basis=basis, bsse_type=["cp", "nocp"])))
    return path


def _wait_until_no_jobs(cluster: SlurmCluster, timeout: float) -> float:
    start = time.monotonic()
    assert cluster.wait_for_jobs(timeout=timeout), f"jobs still queued after {timeout} s: {cluster.job_ids()}"
    return time.monotonic() - start


def test_sigterm_of_a_driver_cancels_its_worker_jobs(slurm_cluster: SlurmCluster, tmp_path):
    cache = tmp_path / "cache"
    inp = _input(tmp_path / "inputs")
    before = parsl_processes()
    driver = start_cli(["run", str(inp), "--preset", "slurm", *SLURM_OPTIONS, "-q"], tmp_path, cache)
    try:
        wait_for_cached(cache, 2, timeout=240)
        assert slurm_cluster.job_ids(), "the driver's worker job is in squeue"
        processes = descendants(driver.pid)
    finally:
        stderr = stop_driver(driver, signal.SIGTERM, 60)
    assert driver.returncode == 143, stderr
    assert "stopped by SIGTERM" in stderr.strip().splitlines()[-1]
    assert _wait_until_no_jobs(slurm_cluster, 30) < 30
    assert not still_alive(processes, 30)
    assert not parsl_processes() - before


def test_a_slurm_driver_whose_interchange_dies_starts_afresh_and_finishes(slurm_cluster: SlurmCluster, tmp_path):
    """The interchange SIGKILLed under a driver on the login node: its worker job is cancelled through
    Slurm, a fresh session's job takes over what was in flight, and the run finishes."""
    cache = tmp_path / "cache"
    inp = _input(tmp_path / "inputs", basis="cc-pvdz")
    before = parsl_processes()
    driver = start_cli(["run", str(inp), "--preset", "slurm", *SLURM_OPTIONS, "--progress", "log"], tmp_path, cache)
    try:
        wait_for_cached(cache, 2, timeout=240, driver=driver)
        first_jobs = set(slurm_cluster.job_ids())
        assert first_jobs, "the driver's worker job is in squeue"
        processes = descendants(driver.pid)
        for interchange in interchanges(driver.pid):
            interchange.kill()
        wait_until(lambda: not first_jobs & set(slurm_cluster.job_ids()), 60, "the lost session's job cancelled")
        _, stderr = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            stop_driver(driver, signal.SIGTERM, 60)
    assert driver.returncode == 0, stderr
    assert "was killed by SIGKILL: starting slurm afresh" in stderr, stderr
    summary = json.loads((tmp_path / "inputs" / "trimer.result.json").read_text())["extras"]["qcmb_parsl"]
    assert summary["n_executed"] == N_TASKS and summary["n_failed"] == 0
    assert _wait_until_no_jobs(slurm_cluster, 30) < 30
    assert not still_alive(processes, 30)
    assert not parsl_processes() - before


def _sbatch(cluster: SlurmCluster, workdir: Path, cache: Path) -> str:
    executor = " ".join(["--preset", "slurm", *SLURM_OPTIONS])
    env = {
        **os.environ,
        "VENV": sys.prefix,
        "INPUTS": str(workdir / "inputs"),
        "OUT_DIR": str(workdir / "results"),
        "QCMB_PARSL_CACHE_DIR": str(cache),
        "EXECUTOR": executor,
        "OMP_NUM_THREADS": "1",
    }
    submitted = subprocess.run(
        [
            "sbatch", "--parsable", "--partition=debug", "--cpus-per-task=1", "--mem=2G",
            f"--chdir={workdir}", f"--output={workdir}/driver-%j.log",
            str(ROOT / "examples" / "slurm_campaign.sbatch"),
        ],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert submitted.returncode == 0, submitted.stderr
    return submitted.stdout.strip().split(";")[0]


def test_example_campaign_job_cancelled_and_resubmitted(slurm_cluster: SlurmCluster, tmp_path):
    """The example batch script as the driver job: scancel mid-campaign, then submit it again."""
    cache = tmp_path / "cache"
    _input(tmp_path / "inputs")
    first = _sbatch(slurm_cluster, tmp_path, cache)
    wait_for_cached(cache, 3, timeout=300)
    subprocess.run(["scancel", first], check=True, timeout=30)
    took = _wait_until_no_jobs(slurm_cluster, 30)
    log = (tmp_path / f"driver-{first}.log").read_text()
    assert "stopped by SIGTERM" in log, log[-2000:]
    with FragmentCache(cache) as opened:
        kept = len(opened)
    assert 3 <= kept < N_TASKS
    stopped = (tmp_path / "results" / "campaign_summary.csv").read_text().splitlines()[1]
    assert ",stopped," in stopped, "the stopped campaign still wrote its summary, the input marked stopped"

    second = _sbatch(slurm_cluster, tmp_path, cache)
    assert slurm_cluster.wait_for_jobs(timeout=600), "the resubmitted campaign did not finish"
    assert slurm_cluster.job_state(second) == "COMPLETED", (tmp_path / f"driver-{second}.log").read_text()[-3000:]
    summary = (tmp_path / "results" / "campaign_summary.csv").read_text().splitlines()
    header, row = summary[0].split(","), summary[1].split(",")
    counts = dict(zip(header, row, strict=False))
    assert counts["status"] == "computed" and int(counts["n_tasks"]) == N_TASKS
    assert int(counts["n_cached"]) == kept and int(counts["n_executed"]) == N_TASKS - kept
    assert took < 30
