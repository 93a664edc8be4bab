"""MPI for real: mpiexec and srun --mpi=pmix start mpi4py ranks; the ``slurm-mpi`` preset runs NWChem
fragments on 2 ranks with the serial energies; the ``mpi`` preset's pools started by mpiexec run a
water-trimer expansion with the sequential result.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import qcengine
from components import require, require_nwchem
from hpc_services import (
    MpiInstall,
    SlurmCluster,
    mpi_environment,
    new_parsl_processes,
    parsl_processes,
)
from molecules import mbe_input, water_cluster
from mpi_probe import rank_probe_app

from qcmb_parsl import ManyBodyComputer, ParslExecutor
from qcmb_parsl.execution.app import fragment_app
from qcmb_parsl.presets.batch import ALLOCATION_HOSTFILE_INIT

pytestmark = pytest.mark.mpi

#: Rank 0 prints (rank, size) of every rank: lines printed by each rank at once can interleave.
PROBE = (
    "from mpi4py import MPI; c = MPI.COMM_WORLD; rows = c.gather((c.Get_rank(), c.Get_size())); "
    "c.Get_rank() == 0 and print(sorted(rows))"
)


def _worker_init() -> str:
    """What a site would put in worker_init here: Open MPI's consent to run as root (we are root),
    and this directory on PYTHONPATH so that workers can import the rank probe app."""
    exports = {**mpi_environment(), "PYTHONPATH": f"{Path(__file__).parent}:${{PYTHONPATH:-}}"}
    return "\n".join(f"export {name}={value}" for name, value in exports.items())


def _ranks(stdout: str) -> list[tuple[int, int]]:
    return [tuple(row) for row in ast.literal_eval(stdout.strip().splitlines()[-1])]


def test_mpiexec_starts_two_mpi4py_ranks(mpi_install: MpiInstall) -> None:
    """mpiexec (Open MPI: --oversubscribe, root variables) runs mpi4py on 2 ranks of one communicator."""
    extra = ["--oversubscribe"] if mpi_install.flavour == "openmpi" else []
    done = subprocess.run(
        [mpi_install.mpiexec, *extra, "-n", "2", sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **mpi_environment()},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert _ranks(done.stdout) == [(0, 2), (1, 2)]


@pytest.mark.slurm
def test_srun_pmix_starts_two_mpi4py_ranks(slurm_cluster: SlurmCluster, mpi_install: MpiInstall) -> None:
    """srun --mpi=pmix wires Open MPI's ranks up under Slurm (the launch the slurm-mpi preset uses)."""
    done = subprocess.run(
        ["srun", "--mpi=pmix", "-n", "2", sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert _ranks(done.stdout) == [(0, 2), (1, 2)]


@pytest.mark.slurm
def test_allocation_hostfile_inside_a_slurm_job(slurm_cluster: SlurmCluster, tmp_path) -> None:
    """Inside a Slurm job the mpi preset's worker_init hands mpiexec the job's hosts as $PBS_NODEFILE."""
    script = tmp_path / "job.sh"
    script.write_text(
        f'#!/bin/bash\nunset PBS_NODEFILE\nexport TMPDIR={tmp_path}\n{ALLOCATION_HOSTFILE_INIT}\ncat "$PBS_NODEFILE"\n'
    )
    out = tmp_path / "job.out"
    submitted = subprocess.run(
        ["sbatch", "-o", str(out), str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert submitted.returncode == 0, submitted.stderr
    assert slurm_cluster.wait_for_jobs(timeout=60)
    assert out.read_text().split() == ["localhost"]


@pytest.mark.slurm
@pytest.mark.nwchem
def test_slurm_mpi_runs_fragments_on_two_ranks(
    slurm_cluster: SlurmCluster,
    mpi_install: MpiInstall,
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A probe sees 2 ranks; NWChem fragments run under srun on 2 ranks and give the serial energies."""
    require_nwchem()
    monkeypatch.chdir(tmp_path)
    mbin = mbe_input(
        2, method="hf", basis="6-31g", program="nwchem", bsse_type=["cp"], keywords={"basis__spherical": True}
    )
    reference = ManyBodyComputer.from_manybodyinput(mbin, executor=None)

    before = parsl_processes()
    with ParslExecutor(
        "slurm-mpi",
        partition="debug",
        address="127.0.0.1",
        ranks_per_node=2,
        ranks_per_fragment_min=2,
        exclusive=False,
        walltime="00:10:00",
        memory_per_worker=2,
        worker_init=_worker_init(),
        cache=False,
        progress=False,
    ) as executor:
        spec = {"num_nodes": 1, "ranks_per_node": 2, "launcher_options": "--mpi=pmix"}
        probe = rank_probe_app(executor.dfk)(parsl_resource_specification=spec).result(timeout=180)
        result = ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
        submitted = set(executor.dfk.executors["slurm-mpi"].blocks_to_job_id.values())
        running = parsl_processes() - before

    assert probe["ranks"] == [0, 1] and probe["sizes"] == [2], probe
    assert probe["prefix"].startswith("srun ") and probe["slurm_job_id"] in submitted

    np.testing.assert_allclose(result.return_result, reference.return_result, atol=1e-8, rtol=0)
    for label, component in result.component_results.items():
        serial = reference.component_results[label].return_result
        np.testing.assert_allclose(component.return_result, serial, atol=1e-8, rtol=0, err_msg=label)
        provenance = component.extras["qcmb_parsl"]
        assert provenance["mpi_ranks"] == 2, label
        assert provenance["slurm_job_id"] in submitted, label
        assert re.search(r"nproc\s*=\s*2\b", component.stdout or ""), (
            f"{label}: NWChem did not report 2 ranks"
        )

    assert slurm_cluster.wait_for_jobs(timeout=60), "the executor left its Slurm block behind"
    assert running, "no Parsl process seen while the executor ran: the leftover check would be vacuous"
    assert not new_parsl_processes(before), "the executor left an interchange or worker pool behind"


@pytest.mark.slurm
@pytest.mark.nwchem
def test_slurm_mpi_with_open_mpi_mpiexec_launcher(
    slurm_cluster: SlurmCluster,
    mpi_install: MpiInstall,
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """mpi_launcher="mpiexec": Parsl's MPICH-style prefix, rewritten for Open MPI, runs NWChem on 2 ranks."""
    require_nwchem()
    require(
        mpi_install.flavour == "openmpi", f"this test drives Open MPI's mpiexec, found {mpi_install.flavour}"
    )
    monkeypatch.chdir(tmp_path)
    water = {
        "molecule": water_cluster(1),
        "driver": "energy",
        "model": {"method": "hf", "basis": "6-31g"},
        "keywords": {"basis__spherical": True},
    }
    serial = qcengine.compute(water, "nwchem", raise_error=True).return_result

    with ParslExecutor(
        "slurm-mpi",
        partition="debug",
        address="127.0.0.1",
        ranks_per_node=2,
        mpi_launcher="mpiexec",
        exclusive=False,
        walltime="00:10:00",
        worker_init=_worker_init(),
        cache=False,
        progress=False,
    ) as executor:
        spec = {"num_nodes": 1, "ranks_per_node": 2, "num_ranks": 2, "launcher_options": ""}
        job = {
            "label": "water",
            "program": "nwchem",
            "atomic_input": water,
            "task_config": {"ncores": 1, "memory": 1.0},
            "environment": {"OMP_NUM_THREADS": "1"},
            "workers_per_node": 1,
            "max_retries": 0,
        }
        envelope = fragment_app(executor.dfk)(job, parsl_resource_specification=spec).result(timeout=240)

    result = json.loads(envelope["result_json"])
    assert envelope["failure"] is None, envelope["failure"]
    assert envelope["provenance"]["mpi_ranks"] == 2 and envelope["provenance"]["slurm_job_id"]
    assert abs(result["return_result"] - serial) < 1e-8
    assert re.search(r"nproc\s*=\s*2\b", result["stdout"]), "NWChem did not report 2 ranks"
    assert slurm_cluster.wait_for_jobs(timeout=60), "the executor left its Slurm block behind"


def test_mpi_preset_pools_started_by_mpiexec(
    mpi_install: MpiInstall,
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ``mpi`` preset inside an "allocation" of localhost: mpiexec starts 2 pools; same MBE result."""
    require(
        mpi_install.flavour == "openmpi", f"this test drives Open MPI's mpiexec, found {mpi_install.flavour}"
    )
    monkeypatch.chdir(tmp_path)
    hostfile = tmp_path / "hosts"
    hostfile.write_text("localhost\n")
    mbin = mbe_input(3, method="hf", basis="sto-3g", bsse_type=["cp"], max_nbody=2)
    reference = ManyBodyComputer.from_manybodyinput(mbin, executor=None)

    before = parsl_processes()
    with ParslExecutor(
        "mpi",
        nodes=2,
        max_workers=1,
        hostfile=str(hostfile),
        mpiexec_overrides="--oversubscribe",  # two "nodes" on one host
        address="127.0.0.1",
        worker_init=_worker_init(),
        cache=False,
        progress=False,
    ) as executor:
        result = ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
        managers = executor.dfk.executors["mpi"].connected_managers()
        running = parsl_processes() - before

    assert len(managers) == 2, f"mpiexec should have started 2 worker pools, got {len(managers)}"
    np.testing.assert_allclose(result.return_result, reference.return_result, atol=1e-9, rtol=0)
    assert set(result.component_results) == set(reference.component_results)
    for label, component in result.component_results.items():
        serial = reference.component_results[label].return_result
        np.testing.assert_allclose(component.return_result, serial, atol=1e-9, rtol=0, err_msg=label)
        assert component.extras["qcmb_parsl"]["pid"] != os.getpid()
    assert running, "no Parsl process seen while the executor ran: the leftover check would be vacuous"
    assert not new_parsl_processes(before), "the executor left an interchange or worker pool behind"
