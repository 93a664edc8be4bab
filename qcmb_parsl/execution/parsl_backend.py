"""Fragments as Parsl apps on any Parsl config: a preset's, a config file's, a site file's or a user's.

The back-end owns its DataFlowKernel (never Parsl's global one), loads it on :meth:`start` and
ends it on :meth:`stop` within :data:`~.teardown.STOP_SECONDS`: executors, interchange, worker pools
and their blocks, cancelled through the provider (:mod:`.teardown`). A stop that cancels also kills
the fragments running in this process (the ``threads`` preset) and drops what still waits in its
queue. A stop signal during the start-up ends what had started.

Every process of a session is tied to the driver: the interchange runs under the lifeline's wrapper,
a guard (:mod:`.lifeline`) ends the rest if the driver dies without cleaning up, and each block runs
with a mark in its environment and a temporary directory of its own that its script removes when
it ends (Parsl's worker pools leave their multiprocessing directories behind when they are killed).
:meth:`lost` says when the machinery died under a running session (:mod:`.watch`).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import psutil
from parsl.config import Config
from parsl.dataflow.dflow import DataFlowKernel

from ..errors import ConfigurationError
from ..planning.plan import FragmentTask
from ._parsl import (
    LIFELINE,
    accepts_priority,
    add_worker_init,
    block_executors,
    cancel_queued_threads,
    lifeline_command,
    load_dfk,
    run_id,
    task_id,
    tie_interchange_to_driver,
    try_count,
    user_executors,
)
from .app import bundle_app, fragment_app, job_text
from .backends import Backend, Loss
from .isolation.client import allow_running, cancel_running
from .lifeline import BLOCK_MARK, RUN_VARIABLE
from .retry import retry_cost
from .rundirs import KEEP_RUNS, prune_run_dirs
from .teardown import end_session, end_start
from .watch import SessionWatch

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
    keep_runs
        Parsl session directories kept in the config's ``run_dir`` (the oldest are removed).
    """

    def __init__(
        self,
        label: str,
        make_config: Callable[[], Config],
        *,
        capacity: int,
        prefetch: int = 0,
        resource_specification: ResourceSpecification | None = None,
        keep_runs: int = KEEP_RUNS,
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
        self._keep_runs = keep_runs
        self._session: _Session | None = None

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
        _put_environment_on_path()
        prune_run_dirs(config.run_dir, self._keep_runs)
        # Parsl's DEBUG stream belongs in its run directory's parsl.log, not in the user's console.
        logging.getLogger("parsl").propagate = False
        allow_running()
        session = _Session(config)
        for executor in config.executors:
            tie_interchange_to_driver(executor)
            add_worker_init(executor, session.block_init())
        self.dfk = load_dfk(config, session.abort)
        session.started()
        self._session = session
        self._run_id = run_id(self.dfk)
        self._app = fragment_app(self.dfk)
        self._bundle_app = bundle_app(self.dfk)
        self._prioritise = all(accepts_priority(ex) for ex in user_executors(self.dfk))
        logger.info("Parsl started (%s): run directory %s", self.label, self.dfk.run_dir)

    def stop(self, *, cancel: bool = False) -> None:
        """End the DataFlowKernel; with ``cancel``, first kill and drop what has not finished."""
        if self.dfk is None or self._session is None:
            return
        dfk, session = self.dfk, self._session
        self.dfk, self._session, self._app, self._bundle_app = None, None, None, None
        if cancel:
            for executor in user_executors(dfk):
                cancel_queued_threads(executor)
            cancel_running()
        try:
            end_session(dfk, session.executors, token=session.token, started=session.processes)
        finally:
            session.release_guard()

    def lost(self, finished: int) -> Loss | None:
        return None if self._session is None else self._session.watch.lost(finished)

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
        return app(job_text(argument), parsl_resource_specification=spec)

    def attempts(self, future: Future) -> int:
        return try_count(future)

    def task_ids(self, future: Future) -> dict[str, Any]:
        """The session's run id and the app call's task id, as in parsl.log and the monitoring database
        (a bundle is one task: each of its fragments names it)."""
        return {"parsl_run_id": self._run_id, "parsl_task_id": task_id(future)}


#: Longest path of a block's temporary directory: a worker pool's multiprocessing manager listens on
#: a socket at ``DIR/pymp-XXXXXXXX/listener-XXXXXXXX``, and a socket's path holds 107 characters.
_BLOCK_TMP_ROOM = 107 - len("/pymp-XXXXXXXX/listener-XXXXXXXX")


def block_init(token: str) -> str:
    """``worker_init`` lines of a session's blocks: the session's mark, and a temporary directory of the
    block's own (where ``$TMPDIR`` leaves room for the pools' multiprocessing socket below it: see
    :data:`_BLOCK_TMP_ROOM`). The block's script removes it when it exits; a script killed outright
    (SIGKILL after the grace of a bounded stop) cannot, so the directory names its session in
    :data:`~.lifeline.BLOCK_MARK` and the session's end removes it (:func:`.lifeline.end_run`)."""
    return (
        f"export {RUN_VARIABLE}={token}\n"
        'qcmb_tmp=$(mktemp -d "${TMPDIR:-/tmp}/qcmb-XXXXXX") && '
        f'if [ ${{#qcmb_tmp}} -le {_BLOCK_TMP_ROOM} ]; then export TMPDIR="$qcmb_tmp"; '
        f"""echo {token} > "$TMPDIR/{BLOCK_MARK}"; trap 'rm -rf "$TMPDIR"' EXIT; else rmdir "$qcmb_tmp"; fi"""
    )


class _Session:
    """One DataFlowKernel's life on this machine: the mark of its blocks, the processes the driver
    started for it, the guard that ends them if the driver dies, and the watch on its machinery."""

    def __init__(self, config: Config):
        self.executors = list(config.executors)
        #: Marks the processes of the session's blocks; none without blocks (threads only).
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}" if block_executors(self.executors) else ""
        self._before = set(_children())
        self.processes: list[psutil.Process] = []
        self.watch = SessionWatch(self.executors)
        self._guard: subprocess.Popen[bytes] | None = None
        if self.token or config.monitoring is not None:
            # Started first, so that a driver killed during Parsl's start-up leaves nothing either.
            self._guard = subprocess.Popen(
                lifeline_command("--guard", str(os.getpid()), self.token),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def block_init(self) -> str:
        """``worker_init`` lines of every block (see :func:`block_init`)."""
        return block_init(self.token)

    def started(self) -> None:
        """Note the processes Parsl started for the session and hand those the lifeline's wrapper does
        not tie to the driver (monitoring's database and router) to the guard."""
        guard = {self._guard.pid} if self._guard is not None else set()
        self.processes = [process for pid, process in _children().items() if pid not in self._before | guard]
        untied = "".join(f"{p.pid}\n" for p in self.processes if not _under_lifeline(p))
        if untied and self._guard is not None and self._guard.stdin is not None:
            self._guard.stdin.write(untied.encode())
            self._guard.stdin.flush()

    def abort(self, dfk: DataFlowKernel) -> None:
        """Parsl's start-up was cut short (a stop signal inside it): end what it had started."""
        self.started()
        try:
            end_start(dfk, self.executors, token=self.token, started=self.processes)
        finally:
            self.release_guard()

    def release_guard(self) -> None:
        """The session ended cleanly: the guard has nothing left to do."""
        if self._guard is not None:
            self._guard.kill()
            self._guard.wait()
            if self._guard.stdin is not None:
                self._guard.stdin.close()
            self._guard = None


def _children() -> dict[int, psutil.Process]:
    return {child.pid: child for child in psutil.Process().children()}


def _under_lifeline(process: psutil.Process) -> bool:
    try:
        return LIFELINE in process.cmdline()
    except psutil.Error:
        return True  # gone already: nothing to watch


def _put_environment_on_path() -> None:
    """Parsl starts interchange.py and worker pools by name: this Python's bin must be on PATH."""
    bin_dir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + path
