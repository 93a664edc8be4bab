"""A Parsl app for the MPI tests: which ranks does a fragment launched under ``$PARSL_MPI_PREFIX`` get?

It lives in a module of its own because Parsl's workers import apps by module name: the tests put
this directory on the workers' ``PYTHONPATH`` through ``worker_init``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from typing import Any

from parsl.app.python import PythonApp

#: Rank 0 gathers (rank, size, host) from every rank and prints them as one JSON line: ranks writing
#: their own lines at once can interleave on the launcher's shared stdout.
_PROBE = (
    "import json; from mpi4py import MPI; c = MPI.COMM_WORLD; "
    "rows = c.gather([c.Get_rank(), c.Get_size(), MPI.Get_processor_name()]); "
    "c.Get_rank() == 0 and print(json.dumps(rows))"
)


def rank_probe(parsl_resource_specification: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run an mpi4py program under ``$PARSL_MPI_PREFIX`` and report what each rank saw.

    The proof that a fragment would get the ranks its resource specification asked for: every rank
    reports its rank, the communicator size and its host. Runs on a worker of an MPIExecutor.
    """
    prefix = os.environ["PARSL_MPI_PREFIX"]
    command = f"{prefix} {shlex.quote(sys.executable)} -c {shlex.quote(_PROBE)}"
    done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{command!r} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "prefix": prefix,
        "ranks": sorted(row[0] for row in rows),
        "sizes": sorted({row[1] for row in rows}),
        "hosts": sorted({row[2] for row in rows}),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }


def rank_probe_app(data_flow_kernel: Any, executors: list[str] | str = "all") -> PythonApp:
    """``rank_probe`` as a Parsl python_app bound to one DataFlowKernel (not the global one)."""
    return PythonApp(rank_probe, data_flow_kernel=data_flow_kernel, executors=executors)
