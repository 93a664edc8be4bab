"""Fragments as Parsl apps on any Parsl config: a preset's, a config file's, a site file's or a user's.

The back-end owns its DataFlowKernel (never Parsl's global one), loads it on :meth:`start` and
cleans it up on :meth:`stop`: executors, interchange, worker pools and their blocks, cancelled
through the provider. A stop that cancels also kills the fragments running in this process (the
``threads`` preset) and drops what still waits in its queue.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

import psutil
from parsl.config import Config
from parsl.dataflow.dflow import DataFlowKernel

from ..errors import ConfigurationError
from ..planning.plan import FragmentTask
from ._parsl import (
    LIFELINE_MODULE,
    accepts_priority,
    cancel_queued_threads,
    run_id,
    task_id,
    tie_interchange_to_driver,
    try_count,
    user_executors,
)
from .app import bundle_app, fragment_app
from .backends import Backend
from .isolation.client import allow_running, cancel_running
from .retry import retry_cost

logger = logging.getLogger(__name__)

ResourceSpecification = Callable[[FragmentTask], dict[str, Any]]


class ParslBackend(Backend):
    """Jobs as Parsl apps on the executors of ``make_config()``.

    Parameters
    ----------
    label
        Name of the back-end in summaries and provenance (the preset or file it came from).
    make_config
        Builds a fresh Config for each session: Parsl's executors serve one DataFlowKernel only.
    capacity
        Fragments that can run at once with every block up (from the config's settings).
    prefetch
        Fragments the worker pools hold ready beyond those (HTEX ``prefetch_capacity``).
    resource_specification
        ``callable(task) -> dict``: Parsl's per-task resource specification (MPI ranks, ...).
    """

    def __init__(
        self,
        label: str,
        make_config: Callable[[], Config],
        *,
        capacity: int,
        prefetch: int = 0,
        resource_specification: ResourceSpecification | None = None,
    ):
        self.label = label
        self._make_config = make_config
        self._capacity = capacity
        self._prefetch = prefetch
        self._resource_specification = resource_specification
        self.dfk: DataFlowKernel | None = None
        self._run_id: str | None = None
        self._app: Any = None
        self._bundle_app: Any = None
        self._prioritise = False
        self._guard: subprocess.Popen[bytes] | None = None

    @property
    def started(self) -> bool:
        return self.dfk is not None

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def window(self) -> int:
        return self._capacity + self._prefetch

    def start(self) -> None:
        """Load a DataFlowKernel of our own."""
        if self.dfk is not None:
            return
        config = self._make_config()
        config.retries = 0
        if config.retry_handler is None:
            config.retry_handler = retry_cost
        for executor in config.executors:
            tie_interchange_to_driver(executor)
        _put_environment_on_path()
        # Parsl's DEBUG stream belongs in its run directory's parsl.log, not in the user's console.
        logging.getLogger("parsl").propagate = False
        allow_running()
        before = {child.pid for child in psutil.Process().children()}
        self.dfk = DataFlowKernel(config)
        self._guard = _guard_helpers(
            child for child in psutil.Process().children() if child.pid not in before
        )
        self._run_id = run_id(self.dfk)
        self._app = fragment_app(self.dfk)
        self._bundle_app = bundle_app(self.dfk)
        self._prioritise = all(accepts_priority(ex) for ex in user_executors(self.dfk))
        logger.info("Parsl started (%s): run directory %s", self.label, self.dfk.run_dir)

    def stop(self, *, cancel: bool = False) -> None:
        """Clean up the DataFlowKernel; with ``cancel``, first kill and drop what has not finished."""
        if self.dfk is None:
            return
        dfk, self.dfk, self._app, self._bundle_app = self.dfk, None, None, None
        if cancel:
            for executor in user_executors(dfk):
                cancel_queued_threads(executor)
            cancel_running()
        try:
            dfk.cleanup()
        finally:
            if self._guard is not None:
                self._guard.kill()
                self._guard.wait()
                self._guard = None

    def submit(self, task: FragmentTask, job: dict[str, Any], priority: int) -> Future:
        return self._call(self._app, task, job, priority)

    def submit_bundle(self, tasks: list[FragmentTask], jobs: list[dict[str, Any]], priority: int) -> Future:
        return self._call(self._bundle_app, tasks[0], jobs, priority)

    def _call(self, app: Any, task: FragmentTask, argument: Any, priority: int) -> Future:
        if app is None:
            raise ConfigurationError(f"the {self.label!r} executor is not started")
        spec: dict[str, Any] = {}
        if self._resource_specification is not None:
            spec.update(self._resource_specification(task))
        if self._prioritise:
            spec["priority"] = priority
        return app(argument, parsl_resource_specification=spec)

    def attempts(self, future: Future) -> int:
        return try_count(future)

    def task_ids(self, future: Future) -> dict[str, Any]:
        """The session's run id and the app call's task id, as in parsl.log and the monitoring database
        (a bundle is one task: each of its fragments names it)."""
        return {"parsl_run_id": self._run_id, "parsl_task_id": task_id(future)}


def _guard_helpers(started: Iterable[psutil.Process]) -> subprocess.Popen[bytes] | None:
    """A guard (:mod:`.lifeline`) that ends the helpers Parsl ``started`` if the driver dies uncleanly.

    Interchanges already under the lifeline's wrapper end on their own and are left out; with nothing
    else to watch, no guard is started. The back-end kills the guard after a clean shutdown.
    """
    untied = [str(process.pid) for process in started if not _under_lifeline(process)]
    if not untied:
        return None
    command = [sys.executable, "-m", LIFELINE_MODULE, "--guard", str(os.getpid()), *untied]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL)


def _under_lifeline(process: psutil.Process) -> bool:
    try:
        return LIFELINE_MODULE in process.cmdline()
    except psutil.Error:
        return True  # gone already: nothing to watch


def _put_environment_on_path() -> None:
    """Parsl starts interchange.py and worker pools by name: this Python's bin must be on PATH."""
    bin_dir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + path
