"""Every place we rely on Parsl beyond its documented API, in one module, for the versions tested.

``tests/test_dependency_contracts.py`` checks each of these against the installed Parsl, so an upgrade that
changes them fails loudly there instead of quietly somewhere else.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from parsl.config import Config
from parsl.dataflow.dflow import DataFlowKernel
from parsl.executors import HighThroughputExecutor, MPIExecutor, ThreadPoolExecutor
from parsl.executors.base import ParslExecutor
from parsl.executors.status_handling import BlockProviderExecutor
from parsl.jobs.states import JobStatus

#: Parsl releases these internals hold for: the contract tests and real runs (monitoring, the local
#: preset through the command line) passed with 2026.1.5, 2026.6.1, 2026.9.28 and 2026.10.26. Later
#: releases of the year are allowed, so that an environment with a newer Parsl installs; the contract
#: tests say when one of them changed what we rely on.
TESTED_PARSL = ">=2026.1.5,<2027"

#: Label of the executor Parsl adds to every DataFlowKernel for its own bookkeeping tasks.
INTERNAL_EXECUTOR_LABEL = "_parsl_internal"

#: What HighThroughputExecutor runs to start its interchange when nobody says otherwise.
DEFAULT_INTERCHANGE_LAUNCH_CMD = ["interchange.py"]

#: The program that ties the driver's helper processes to its life, run by its path (see its docstring).
LIFELINE = str(Path(__file__).with_name("lifeline.py"))


def lifeline_command(*arguments: str) -> list[str]:
    """The command line of the lifeline program: isolated mode, so it imports nothing of the package."""
    return [sys.executable, "-I", LIFELINE, *arguments]


def load_dfk(config: Config, on_failure: Callable[[DataFlowKernel], None]) -> DataFlowKernel:
    """A DataFlowKernel of ``config``. Its start-up starts executors, interchanges and blocks; if it
    raises part way (a stop signal arriving inside it), ``on_failure`` gets the kernel as far as it was
    built (its attributes are set as its parts start), to end what had started, before the exception
    goes on."""
    dfk = DataFlowKernel.__new__(DataFlowKernel)
    try:
        DataFlowKernel.__init__(dfk, config)
    except BaseException:
        on_failure(dfk)
        raise
    return dfk


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
        executor.interchange_launch_cmd = lifeline_command(
            "--driver", str(os.getpid()), *DEFAULT_INTERCHANGE_LAUNCH_CMD
        )


def add_worker_init(executor: ParslExecutor, lines: str) -> None:
    """Shell ``lines`` run in each of the executor's blocks before the user's ``worker_init``."""
    provider = getattr(executor, "provider", None)
    if provider is not None and hasattr(provider, "worker_init"):
        provider.worker_init = f"{lines}\n{provider.worker_init or ''}"


def interchange_process(executor: ParslExecutor) -> subprocess.Popen | None:
    """The process HTEX started for its interchange (our lifeline's wrapper), once it has one."""
    return (
        getattr(executor, "interchange_proc", None) if isinstance(executor, HighThroughputExecutor) else None
    )


def block_executors(executors: list[ParslExecutor]) -> list[BlockProviderExecutor]:
    """The executors that run their workers in blocks of a provider."""
    return [
        executor
        for executor in executors
        if isinstance(executor, BlockProviderExecutor) and executor.provider
    ]


def block_statuses(executor: BlockProviderExecutor) -> dict[str, JobStatus]:
    """Block id -> status, as Parsl's status poller last saw them (reading them asks nobody anything).

    HTEX reports a block that ended without any of its pools ever connecting as ``MISSING``.
    """
    return dict(executor.status_facade)


def cancel_blocks(executor: BlockProviderExecutor) -> None:
    """Cancel every block not known to have ended, through the provider alone: HTEX's own scale-in
    asks the interchange first, which may be dead."""
    BlockProviderExecutor.scale_in(executor, len(executor.blocks_to_job_id))


def mark_broken(executor: ParslExecutor, reason: Exception) -> None:
    """Tell Parsl an executor is beyond repair: its tasks fail, and its shutdown skips the scale-in
    that would ask its interchange first."""
    if isinstance(executor, BlockProviderExecutor) and not executor.bad_state_is_set:
        executor.set_bad_state_and_fail_all(reason)


def release_poller(dfk: DataFlowKernel, executors: list[ParslExecutor], seconds: float) -> bool:
    """Wake Parsl's status poller from a call to a dead interchange and end it; whether it ended.

    The poller asks each HTEX's interchange over a command channel with no timeout (Parsl issue
    #3374): with the interchange gone it waits for ever, and ``DataFlowKernel.cleanup`` with it.
    Ending the channel's ZeroMQ context makes that call fail at once; the context's end completes
    when the channel's socket is closed, which is done here once the poller has stopped, so that
    nobody else touches the socket meanwhile and Parsl's own shutdown finds it closed.
    """
    clients = [client for executor in executors if (client := getattr(executor, "command_client", None))]
    enders = [
        threading.Thread(target=client.zmq_context.term, name="qcmb-end-command-channel", daemon=True)
        for client in clients
    ]
    for ender in enders:
        ender.start()
    poller = getattr(dfk, "job_status_poller", None)
    if poller is not None:
        poller.close(timeout=seconds)  # sets its stop event, waits for its thread
        if poller._thread.is_alive():
            return False
    for client in clients:
        client.zmq_socket.close()
    for ender in enders:
        ender.join(seconds)
    return not any(ender.is_alive() for ender in enders)


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
