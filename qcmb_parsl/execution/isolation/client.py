"""Run one fragment in a child of this process's warm template, and stop it when it must stop.

Safe to call from many threads at once (the ``threads`` preset): each call waits on its own child, and
every process-wide setting (environment, scratch, thread caps) is the child's own. The template is
started on first use and ends when this process ends, however it ends, or when an executor that
used it here is closed (:func:`end_template`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import psutil

from ...resources import thread_environment
from . import files

logger = logging.getLogger(__name__)

#: Seconds the template may take to import the engines and answer; far above the 1-3 s seen.
TEMPLATE_START_TIMEOUT = 300.0
#: Seconds an idle template may take to end after its input is closed.
TEMPLATE_END_TIMEOUT = 10.0

KilledFor = Literal["timeout", "memory", "cancelled"]

#: Seconds between looks at a fragment's memory when it has a limit.
WATCH_PERIOD = 0.1


@dataclass(frozen=True)
class FragmentLimits:
    """Hard limits of one fragment's process.

    Parameters
    ----------
    timeout
        Seconds before the process group is sent SIGTERM, then SIGKILL ``grace`` seconds later.
    memory_bytes
        Bytes the fragment may hold: its own pages (what it did not share with the template) plus
        everything its subprocesses hold. Watched every :data:`WATCH_PERIOD` seconds; over it, the
        process group is killed. (A kernel limit on address space does not fit: PySCF reserves
        gigabytes of address space it never touches, and fails at once under such a limit.)
    """

    timeout: float | None = None
    memory_bytes: int | None = None
    grace: float = 3.0


@dataclass
class ChildOutcome:
    """How a fragment's process ended and what it left: the raw material of a result or a failure."""

    result_json: str | None
    started: float
    wall_time: float
    engine_pid: int | None
    exit_status: int | None = None
    signal: str | None = None
    killed_for: KilledFor | None = None
    peak_rss_mib: float | None = None
    peak_memory_mib: float | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    template_lost: bool = False


@dataclass
class _Waiter:
    pid: int | None = None
    status: int | None = None
    maxrss_kib: int | None = None
    lost: bool = False
    killed_for: KilledFor | None = None
    peak_memory: int = 0
    template: int | None = None
    forked: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


class _Template:
    """This process's template: started on demand, restarted if it dies, shared by all threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._waiters: dict[int, _Waiter] = {}
        self._ids = itertools.count(1)
        self.cancelled = False

    def submit(self, directory: Path, program: str) -> _Waiter:
        waiter = _Waiter()
        with self._lock:
            proc = self._running(program)
            request_id = next(self._ids)
            waiter.template = proc.pid
            self._waiters[request_id] = waiter
            request = {"id": request_id, "dir": str(directory), "program": program}
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(request) + "\n").encode())
            proc.stdin.flush()
        return waiter

    def kill(self, waiter: _Waiter, signum: int, reason: KilledFor) -> None:
        waiter.killed_for = waiter.killed_for or reason
        if waiter.pid is not None and not waiter.done.is_set():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(waiter.pid, signum)

    def stop(self, waiter: _Waiter, reason: KilledFor, grace: float) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns when the process is gone."""
        waiter.forked.wait(5)
        if grace > 0:
            self.kill(waiter, signal.SIGTERM, reason)
            if waiter.done.wait(grace):
                return
        self.kill(waiter, signal.SIGKILL, reason)
        waiter.done.wait()

    def kill_all(self) -> None:
        with self._lock:
            waiters = list(self._waiters.values())
        for waiter in waiters:
            waiter.forked.wait(5)
            self.kill(waiter, signal.SIGKILL, "cancelled")

    def end(self) -> None:
        """End the template unless a fragment is using it; the next fragment starts another."""
        with self._lock:
            proc = self._proc
            if proc is None or self._waiters:
                return
            self._proc = None
        assert proc.stdin is not None
        proc.stdin.close()  # end of file: the template ends
        try:
            proc.wait(TEMPLATE_END_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _running(self, program: str) -> subprocess.Popen[bytes]:
        """The template, started (and ``program`` warmed in it) if it is not running."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        # Thread caps of one: the template must never start BLAS/OpenMP pools it would fork.
        environment = {**os.environ, **thread_environment(1)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "qcmb_parsl.execution.isolation.template", program],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=environment,
            start_new_session=True,
        )
        assert proc.stdout is not None
        ready = threading.Event()
        threading.Thread(
            target=self._read, args=(proc.pid, proc.stdout, ready), name="qcmb-template-reader", daemon=True
        ).start()
        if not ready.wait(TEMPLATE_START_TIMEOUT) or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"the fragment template process did not start (exit status {proc.poll()})")
        logger.debug("fragment template started, pid %d", proc.pid)
        self._proc = proc
        return proc

    def _read(self, template: int, stream: IO[bytes], ready: threading.Event) -> None:
        for line in stream:
            message = json.loads(line)
            if "ready" in message:
                ready.set()
                continue
            waiter = self._waiters.get(message["id"])
            if waiter is None:
                continue
            if "pid" in message:
                waiter.pid = message["pid"]
                waiter.forked.set()
            else:
                waiter.status = message["status"]
                waiter.maxrss_kib = message["maxrss_kib"]
                with self._lock:
                    self._waiters.pop(message["id"], None)
                waiter.done.set()
        ready.set()
        with self._lock:
            lost = {key: waiter for key, waiter in self._waiters.items() if waiter.template == template}
            for key in lost:
                del self._waiters[key]
        for waiter in lost.values():
            waiter.lost = True
            waiter.forked.set()
            waiter.done.set()


_TEMPLATE = _Template()


def cancel_running() -> None:
    """Kill every fragment process of this process, and refuse new ones until :func:`allow_running`."""
    _TEMPLATE.cancelled = True
    _TEMPLATE.kill_all()


def allow_running() -> None:
    _TEMPLATE.cancelled = False


def end_template() -> None:
    """End this process's template (about 170 MiB) if no fragment is using it: an executor that ran
    fragments here was closed. The next fragment starts a fresh one."""
    _TEMPLATE.end()


@dataclass(frozen=True)
class EngineJob:
    """One ``qcengine.compute`` call: what the worker hands to a fragment's process."""

    program: str
    atomic_input: dict[str, Any]
    task_config: dict[str, Any]
    environment: dict[str, str]


def isolated_compute(job: EngineJob, limits: FragmentLimits) -> ChildOutcome:
    """``qcengine.compute`` in a fresh child of the template, within ``limits``; never raises for the
    engine's sake (a crash, a kill or a failed result all come back as a :class:`ChildOutcome`)."""
    return isolated_compute_many([job], limits)[0]


def isolated_compute_many(jobs: list[EngineJob], limits: FragmentLimits) -> list[ChildOutcome]:
    """Several jobs one after another in one child (a bundle of tiny fragments: one fork for all).

    The limits apply to each job. A job that crashes, runs out of time or over its memory ends the
    child; it alone gets the blame, and the jobs after it go to a fresh child.
    """
    outcomes: list[ChildOutcome | None] = [None] * len(jobs)
    while remaining := [index for index, outcome in enumerate(outcomes) if outcome is None]:
        if _TEMPLATE.cancelled:
            for index in remaining:
                outcomes[index] = ChildOutcome(None, time.time(), 0.0, None, killed_for="cancelled")
            break
        for index, outcome in zip(remaining, _run_child([jobs[i] for i in remaining], limits), strict=True):
            outcomes[index] = outcome
    return [outcome for outcome in outcomes if outcome is not None]


def _run_child(jobs: list[EngineJob], limits: FragmentLimits) -> list[ChildOutcome | None]:
    """One child for ``jobs``: an outcome for each job it finished or was computing, None for the rest."""
    started = time.time()
    base = jobs[0].task_config.get("scratch_directory") or tempfile.gettempdir()
    directory = Path(tempfile.mkdtemp(prefix="qcmb-fragment-", dir=base))
    messy = bool(jobs[0].task_config.get("scratch_messy"))
    try:
        entries = [_prepare(directory, index, job, messy) for index, job in enumerate(jobs)]
        files.write_atomically(directory / files.INPUT, json.dumps({"jobs": entries}))
        waiter = _TEMPLATE.submit(directory, jobs[0].program)
        try:
            _watch(waiter, limits, directory / files.PROGRESS)
        except BaseException:
            waiter.forked.wait(5)
            _TEMPLATE.kill(waiter, signal.SIGKILL, "cancelled")
            raise
        return _outcomes(directory, len(jobs), waiter, started)
    finally:
        if not messy:
            shutil.rmtree(directory, ignore_errors=True)


def _prepare(directory: Path, index: int, job: EngineJob, messy: bool) -> dict[str, Any]:
    """The job's entry in the child's input, and its scratch and ``TMPDIR`` (made once for every job of
    the child unless each keeps its own)."""
    work = files.work_directory(directory, index, messy)
    if messy or index == 0:
        (work / files.SCRATCH).mkdir(parents=True)
        (work / files.TMP).mkdir()
    # Everything the engine, MPI and their libraries put in temporary files stays in here.
    private = files.private_temporary_files(str(work / files.TMP))
    return {
        "program": job.program,
        "atomic_input": job.atomic_input,
        "task_config": {**job.task_config, "scratch_directory": str(work / files.SCRATCH)},
        "environment": {**job.environment, **private},
    }


def _watch(waiter: _Waiter, limits: FragmentLimits, progress: Path) -> None:
    """Wait for the fragment's process; kill its group when a job runs out of time or over its memory.

    A job's time starts when the child says it starts it (the progress file), so every job of a
    bundle gets the whole ``timeout``.
    """
    job_started = time.time()
    seen = None
    while True:
        remaining = None
        if limits.timeout is not None:
            remaining = max(job_started + limits.timeout - time.time(), 0.0)
        if limits.memory_bytes is not None or limits.timeout is not None:
            remaining = WATCH_PERIOD if remaining is None else min(remaining, WATCH_PERIOD)
        if waiter.done.wait(remaining):
            return
        if limits.timeout is not None:
            current = files.read_progress(progress)
            if current and current != seen:
                seen, job_started = current, current["started"]
            if time.time() >= job_started + limits.timeout:
                _TEMPLATE.stop(waiter, "timeout", limits.grace)
                return
        if limits.memory_bytes is not None and waiter.pid is not None:
            waiter.peak_memory = max(waiter.peak_memory, _fragment_memory(waiter.pid))
            if waiter.peak_memory > limits.memory_bytes:
                _TEMPLATE.stop(waiter, "memory", 0.0)
                return


def _fragment_memory(pid: int) -> int:
    """What a fragment holds: its process's own pages (USS: not those still shared with the template)
    plus the resident memory of everything it started (an engine's executable, MPI ranks)."""
    try:
        process = psutil.Process(pid)
        total = process.memory_full_info().uss
        for descendant in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += descendant.memory_info().rss
        return total
    except psutil.Error:
        return 0


def _outcomes(directory: Path, count: int, waiter: _Waiter, started: float) -> list[ChildOutcome | None]:
    """Each job's outcome: its result if it left one; how the process ended for the job it was computing
    when it ended; None for the jobs it never started."""
    progress = files.read_progress(directory / files.PROGRESS) or {"index": 0, "stdout": 0, "stderr": 0}
    finished = files.read_results(directory / files.RESULTS)
    exit_status = signal_name = None
    if waiter.status is not None:
        if os.WIFSIGNALED(waiter.status):
            signal_name = signal.Signals(os.WTERMSIG(waiter.status)).name
        else:
            exit_status = os.waitstatus_to_exitcode(waiter.status)
    outcomes: list[ChildOutcome | None] = []
    for index in range(count):
        record, result_json = finished.get(index, (None, None))
        if record is None and index != progress["index"]:
            outcomes.append(None)
            continue
        blamed = record is None
        # A finished job's part of the output, or, for the job blamed, all from where it began.
        output = record or {name: [progress.get(name, 0), None] for name in ("stdout", "stderr")}
        outcomes.append(
            ChildOutcome(
                result_json=result_json,
                started=record["started"] if record else progress.get("started", started),
                wall_time=record["wall_time"] if record else time.time() - progress.get("started", started),
                engine_pid=waiter.pid,
                exit_status=exit_status if blamed else 0,
                signal=signal_name if blamed else None,
                killed_for=waiter.killed_for if blamed else None,
                peak_rss_mib=None if waiter.maxrss_kib is None else waiter.maxrss_kib / 1024,
                peak_memory_mib=waiter.peak_memory / 2**20 if waiter.peak_memory and blamed else None,
                stdout_tail=files.tail(directory / files.STDOUT, *output["stdout"]),
                stderr_tail=files.tail(directory / files.STDERR, *output["stderr"]),
                template_lost=waiter.lost and blamed,
            )
        )
    return outcomes
