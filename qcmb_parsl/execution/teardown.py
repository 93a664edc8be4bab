"""Ending a Parsl session within a stated time, whatever Parsl does.

Parsl's cleanup (``DataFlowKernel.cleanup``) closes its status poller, scales every block in through
its provider, shuts each executor down and stops monitoring. It can block for ever: on a poller
blocked on a dead or frozen interchange (Parsl issue #3374), on a provider command that hangs (#2844).
So it gets :data:`CLEANUP_SECONDS` in a thread of its own, and what it leaves is ended here directly,
within :data:`TEARDOWN_SECONDS`: each block cancelled through its provider (``scancel`` on Slurm, the
process group on this machine), each interchange killed, and every process the session started on
this machine (the driver's new children, the processes of its local blocks) ended by
:func:`.lifeline.end_run`.

The same ending serves a session whose start-up was cut short (a stop signal inside
``DataFlowKernel(config)``): what had started by then is ended, and the signal goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil
from parsl.dataflow.dflow import DataFlowKernel
from parsl.executors.base import ParslExecutor

from ._parsl import block_executors, cancel_blocks, interchange_process, mark_broken, release_poller
from .lifeline import GRACE, end_run

logger = logging.getLogger(__name__)

#: Seconds Parsl's own cleanup gets: enough for a clean shutdown (1-3 s measured on ``local``, a
#: little more where ``scancel`` answers slowly).
CLEANUP_SECONDS = 10.0
#: Seconds the direct ending gets after that: provider commands, then the processes' SIGTERM grace.
TEARDOWN_SECONDS = 10.0
#: The most a stop takes once the run has stopped submitting: well inside Slurm's KillWait (30 s).
STOP_SECONDS = CLEANUP_SECONDS + TEARDOWN_SECONDS


class InterchangeLost(RuntimeError):
    """Why Parsl is told an executor is beyond repair: its interchange is gone."""


def end_session(
    dfk: DataFlowKernel, executors: list[ParslExecutor], *, token: str, started: list[psutil.Process]
) -> None:
    """End a Parsl session within :data:`STOP_SECONDS`.

    ``executors`` are the config's own; ``started`` the processes the driver started for the session;
    ``token`` marks the processes of its blocks on this machine.
    """
    dead = [executor for executor in executors if _interchange_ended(executor)]
    for executor in dead:
        mark_broken(executor, InterchangeLost(f"the interchange of executor {executor.label!r} is gone"))
    if dead and not release_poller(dfk, dead, CLEANUP_SECONDS / 2):
        logger.warning(
            "Parsl's status poller is stuck: ending interchanges, worker pools and blocks directly"
        )
    elif _within(dfk.cleanup, CLEANUP_SECONDS):
        if not dead:
            # What Parsl's scale-in cannot reach: the processes a killed worker pool left in its block
            # (its multiprocessing manager, waiting for a shutdown that never comes).
            end_run(token, [], grace=GRACE)
            return
    else:
        logger.warning(
            "Parsl's cleanup did not end cleanly within %g s: ending interchanges, worker pools and "
            "blocks directly",
            CLEANUP_SECONDS,
        )
    end_directly(executors, token=token, started=started)


def end_start(
    dfk: DataFlowKernel, executors: list[ParslExecutor], *, token: str, started: list[psutil.Process]
) -> None:
    """End what a start-up cut short had started: ``dfk`` is the kernel as far as it was built."""
    end_directly(executors, token=token, started=started)
    poller = getattr(dfk, "job_status_poller", None)
    if poller is not None:
        poller.close(timeout=0)  # every executor is marked broken: it scales nothing in


def end_directly(executors: list[ParslExecutor], *, token: str, started: list[psutil.Process]) -> None:
    """Cancel every block through its provider, kill every interchange, end the session's processes."""
    deadline = time.monotonic() + TEARDOWN_SECONDS - GRACE
    for executor in executors:
        mark_broken(executor, InterchangeLost("the session is being ended"))
    cancels = [
        _start(cancel_blocks, executor, name=f"qcmb-cancel-{executor.label}")
        for executor in block_executors(executors)
    ]
    for executor in executors:
        process = interchange_process(executor)
        if process is not None and process.poll() is None:
            process.kill()
    for thread in cancels:
        thread.join(max(deadline - time.monotonic(), 0.0))
        if thread.is_alive():
            logger.warning("cancelling blocks through the provider did not end in time (%s)", thread.name)
    end_run(token, started, grace=GRACE)


def _interchange_ended(executor: ParslExecutor) -> bool:
    process = interchange_process(executor)
    return process is not None and process.poll() is not None


def _start(
    function: Callable[..., Any], *arguments: Any, name: str, done: list[bool] | None = None
) -> threading.Thread:
    """``function(*arguments)`` in a daemon thread: a call that never returns must not hold the driver.
    ``done`` gets True appended when the call returns without raising."""

    def call() -> None:
        try:
            function(*arguments)
        except Exception:
            logger.warning("%s failed", name, exc_info=True)
        else:
            if done is not None:
                done.append(True)

    thread = threading.Thread(target=call, name=name, daemon=True)
    thread.start()
    return thread


def _within(function: Callable[[], Any], seconds: float) -> bool:
    """Whether ``function()`` returned within ``seconds`` without raising (run in a daemon thread,
    left to itself if it does not return)."""
    done: list[bool] = []
    _start(function, name="qcmb-parsl-cleanup", done=done).join(seconds)
    return bool(done)
