"""The ``slurm`` preset on a real single-node Slurm: same many-body result as the sequential path.

The cluster (munged, slurmctld, slurmd on localhost) is started once per session by
the ``slurm_cluster`` fixture (``conftest.py``) and stopped in order at the end.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from hpc_services import SlurmCluster, new_parsl_processes, parsl_processes
from molecules import mbe_input

from qcmb_parsl import ManyBodyComputer, ParslExecutor

pytestmark = pytest.mark.slurm

ENERGY_TOL = 1e-9
#: Dimers kept only within 3.1 Å (minimum interatomic distance): waters 1 and 3 are 3.16 Å apart.
SCREEN = {2: 3.1}


def test_batch_job_runs(slurm_cluster: SlurmCluster) -> None:
    """The fixture's cluster schedules and finishes a job (sbatch --wrap hostname)."""
    out = slurm_cluster.root / "hostname.out"
    submitted = subprocess.run(
        ["sbatch", "--parsable", "-o", str(out), "--wrap", "hostname"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip().split(";")[0]
    slurm_cluster.wait_for_jobs(timeout=60)
    assert slurm_cluster.job_state(job_id) == "COMPLETED"
    assert out.read_text().strip()
    assert slurm_cluster.start_seconds < 30


def test_water_trimer_on_slurm_matches_sequential(
    slurm_cluster: SlurmCluster,
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every fragment runs inside a Slurm job that Parsl submitted; the energies are the sequential ones,
    screened (the plan drops the dimer of waters 1 and 3, 3.16 Å apart) as well as not."""
    monkeypatch.chdir(tmp_path)  # Parsl's runinfo/ and the job scripts
    mbin = mbe_input(3, method="hf", basis="sto-3g", bsse_type=["cp"], max_nbody=2)
    reference = ManyBodyComputer.from_manybodyinput(mbin, executor=None)
    screened_reference = ManyBodyComputer.from_manybodyinput(mbin, executor=None, screening=SCREEN)

    before = parsl_processes()
    with ParslExecutor(
        "slurm",
        partition="debug",
        address="127.0.0.1",
        max_blocks=1,
        max_workers=2,
        exclusive=False,
        walltime="00:10:00",
        cache=False,
        progress=False,
    ) as executor:
        result = ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
        screened = ManyBodyComputer.from_manybodyinput(mbin, executor=executor, screening=SCREEN)
        submitted = set(executor.dfk.executors["slurm"].blocks_to_job_id.values())
        states = {job_id: slurm_cluster.job_state(job_id) for job_id in submitted}
        running = parsl_processes() - before

    np.testing.assert_allclose(result.return_result, reference.return_result, atol=ENERGY_TOL, rtol=0)
    for name, value in reference.properties.dict().items():
        if isinstance(value, float):
            np.testing.assert_allclose(
                getattr(result.properties, name), value, atol=ENERGY_TOL, rtol=0, err_msg=name
            )
    assert set(result.component_results) == set(reference.component_results)
    kept = screened.extras["qcmb_parsl"]["screening"]["levels"]
    assert kept == screened_reference.extras["qcmb_parsl"]["screening"]["levels"]
    np.testing.assert_allclose(
        screened.return_result, screened_reference.return_result, atol=ENERGY_TOL, rtol=0
    )
    assert abs(screened.return_result - result.return_result) > ENERGY_TOL, "the screen dropped nothing"

    assert submitted and all(states.values()), f"Parsl's blocks were not Slurm jobs: {states}"
    for label, component in result.component_results.items():
        job_id = component.extras["qcmb_parsl"]["slurm_job_id"]
        assert job_id.isdigit() and int(job_id) > 0, label
        assert job_id in submitted, f"{label} ran in job {job_id}, not one of Parsl's blocks {submitted}"

    assert slurm_cluster.wait_for_jobs(timeout=60), "the executor left its Slurm block behind"
    assert running, "no Parsl process seen while the executor ran: the leftover check would be vacuous"
    assert not new_parsl_processes(before), "the executor left an interchange or worker pool behind"
