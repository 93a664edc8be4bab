"""The code that runs on a worker: one fragment through ``qcengine.compute``.

It lives in the installed package (not in a user's script or a test module) because Parsl's workers
import it by name. Inputs and outputs are QCSchema JSON, so nothing version-sensitive is pickled
between the driver and nodes that may run another build of pydantic or qcelemental.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from parsl.app.errors import AppTimeout
from parsl.app.python import PythonApp

#: QCEngine error types worth another attempt; everything else is deterministic for the same input.
RETRYABLE_ERROR_TYPES = frozenset({"random_error"})

_PROCESS_READY = threading.Lock()


def _prepare_process(program: str) -> None:
    """Once per process: our PySCF harness, QCEngine's host probe (racy when first run in threads),
    and PySCF's import, so a worker's first fragment is not timed with seconds of imports."""
    import qcengine.config

    from ..engines.pyscf import register_pyscf_harness

    with _PROCESS_READY:
        register_pyscf_harness()
        qcengine.config.get_global()
        if program == "pyscf":
            import pyscf.scf  # noqa: F401


class RetryableEngineError(Exception):
    """A QCEngine ``random_error``: raised so that Parsl's retries give the fragment another attempt."""

    def __init__(self, label: str, message: str):
        super().__init__(f"{label}: {message}")
        self.label = label
        self.message = message

    def __reduce__(self):
        return (type(self), (self.label, self.message))


def compute_fragment(
    label: str,
    atomic_input: dict[str, Any],
    program: str,
    task_config: dict[str, Any],
    environment: dict[str, str],
    workers_per_node: int = 1,
    walltime: float | None = None,
    parsl_resource_specification: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one fragment and return an envelope: the result as JSON text plus where and how it ran.

    ``walltime`` and ``parsl_resource_specification`` are read by Parsl itself (timeout, MPI ranks,
    priority); they are parameters here only so that Parsl passes them on.
    """
    os.environ.update(environment)

    import qcengine

    from ..mpi_syntax import mpi_task_config
    from ..resources import node_task_config

    _prepare_process(program)
    config, mpi_ranks = mpi_task_config(node_task_config(task_config, workers_per_node))

    start = time.time()
    result = qcengine.compute(atomic_input, program, raise_error=False, task_config=config)
    wall_time = time.time() - start

    success = bool(getattr(result, "success", False))
    error = getattr(result, "error", None)
    if not success and walltime is not None and wall_time >= walltime:
        # Parsl's timeout is an exception injected into this thread; QCEngine turns any exception
        # raised inside compute into a failed result, so the timeout is recognised by the clock.
        raise AppTimeout(f"{label} exceeded walltime {walltime} s")
    if not success and error is not None and error.error_type in RETRYABLE_ERROR_TYPES:
        raise RetryableEngineError(label, error.error_message)

    provenance = {
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "thread": threading.get_native_id(),
        "wall_time": wall_time,
        "started": start,
    }
    if os.environ.get("SLURM_JOB_ID"):
        provenance["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    if mpi_ranks:
        provenance["mpi_ranks"] = mpi_ranks
    return {"label": label, "success": success, "result_json": result.model_dump_json(), "provenance": provenance}


def fragment_app(data_flow_kernel: Any, executors: list[str] | str = "all") -> PythonApp:
    """``compute_fragment`` as a Parsl python_app bound to one DataFlowKernel (not the global one)."""
    return PythonApp(compute_fragment, data_flow_kernel=data_flow_kernel, executors=executors)
