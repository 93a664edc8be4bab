"""Every place we rely on Parsl beyond its documented API, in one module, for the versions tested.

``tests/test_dependency_contracts.py`` checks each of these against the installed Parsl, so an upgrade that
changes them fails loudly there instead of quietly somewhere else.
"""

from __future__ import annotations

import math
import os
import sys
from concurrent.futures import Future
from typing import Any

from parsl.dataflow.dflow import DataFlowKernel
from parsl.executors import HighThroughputExecutor, MPIExecutor, ThreadPoolExecutor
from parsl.executors.base import ParslExecutor

#: Parsl releases these internals hold for: the contract tests and real runs (monitoring, the local
#: preset through the command line) passed with 2026.1.5, 2026.6.1, 2026.9.28 and 2026.10.26. Later
#: releases of the year are allowed, so that an environment with a newer Parsl installs; the contract
#: tests say when one of them changed what we rely on.
TESTED_PARSL = ">=2026.1.5,<2027"

#: Label of the executor Parsl adds to every DataFlowKernel for its own bookkeeping tasks.
INTERNAL_EXECUTOR_LABEL = "_parsl_internal"

#: What HighThroughputExecutor runs to start its interchange when nobody says otherwise.
DEFAULT_INTERCHANGE_LAUNCH_CMD = ["interchange.py"]

#: The program that ties the driver's helper processes to its life. The driver runs it and never
#: imports it: ``python -m`` would otherwise find it imported by its own package, warn and run a copy.
LIFELINE_MODULE = "qcmb_parsl.execution.lifeline"


def user_executors(dfk: DataFlowKernel) -> list[ParslExecutor]:
    """The executors of the config, without the one Parsl adds for itself."""
    return [executor for label, executor in dfk.executors.items() if label != INTERNAL_EXECUTOR_LABEL]


def try_count(future: Future) -> int:
    """How many times Parsl launched the task behind an AppFuture (1 + retries)."""
    record = getattr(future, "task_record", None) or {}
    return int(record.get("try_id", 0)) + 1


def run_id(dfk: DataFlowKernel) -> str:
    """The DataFlowKernel's run id: the ``run_id`` of every row it writes to Parsl's monitoring database."""
    return str(dfk.run_id)


def task_id(future: Future) -> int:
    """Parsl's id of the task behind an AppFuture: ``task_id`` in the monitoring database and parsl.log."""
    return int(future.tid)  # type: ignore[attr-defined]


def cancel_queued_threads(executor: ParslExecutor) -> None:
    """Drop what waits in a ThreadPoolExecutor's queue: Parsl's shutdown would run all of it first."""
    if isinstance(executor, ThreadPoolExecutor):
        executor.executor.shutdown(wait=False, cancel_futures=True)


def tie_interchange_to_driver(executor: ParslExecutor) -> None:
    """Start the interchange under our lifeline, so that it ends when the driver ends, even by SIGKILL.

    Only the default launch command is wrapped: a site that set its own keeps it.
    """
    if (
        isinstance(executor, HighThroughputExecutor)
        and list(executor.interchange_launch_cmd) == DEFAULT_INTERCHANGE_LAUNCH_CMD
    ):
        executor.interchange_launch_cmd = [
            sys.executable,
            "-m",
            LIFELINE_MODULE,
            *DEFAULT_INTERCHANGE_LAUNCH_CMD,
        ]


def executor_capacity(executor: ParslExecutor) -> int:
    """Fragments an executor can run at once, from its settings (at most, with every block up)."""
    if isinstance(executor, ThreadPoolExecutor):
        return int(executor.max_threads or os.cpu_count() or 1)
    if isinstance(executor, MPIExecutor):
        return int(executor.max_workers_per_block) * _max_blocks(executor)
    if isinstance(executor, HighThroughputExecutor):
        per_node = executor.max_workers_per_node
        if per_node == math.inf:
            per_node = max((os.cpu_count() or 1) // max(int(executor.cores_per_worker), 1), 1)
        nodes = int(getattr(executor.provider, "nodes_per_block", 1) or 1)
        return int(per_node) * nodes * _max_blocks(executor)
    return os.cpu_count() or 1


def executor_prefetch(executor: ParslExecutor) -> int:
    """Fragments an executor's pools hold beyond those they run (HTEX ``prefetch_capacity``)."""
    if type(executor) is not HighThroughputExecutor:
        return 0
    nodes = int(getattr(executor.provider, "nodes_per_block", 1) or 1)
    return int(executor.prefetch_capacity) * nodes * _max_blocks(executor)


def _max_blocks(executor: Any) -> int:
    return max(int(getattr(executor.provider, "max_blocks", 1) or 1), 1)


def accepts_priority(executor: ParslExecutor) -> bool:
    """HTEX orders its queue by ``priority``; MPIExecutor and others reject unknown resource keys."""
    return type(executor) is HighThroughputExecutor
