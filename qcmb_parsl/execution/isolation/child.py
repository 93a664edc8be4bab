"""What a fragment's own process does, from the moment the template forks it to its exit.

It cuts itself loose from the template (own session, own files), dies with the template if that
dies, runs ``qcengine.compute`` for each job it was given (one fragment, or a bundle of tiny ones one
after another), each in its own directory with its own environment, output files and thread counts,
and leaves every result on disk as soon as it has it. Before each job it says which one it starts,
so that a crash, a timeout or a memory kill is blamed on that job alone. It never returns into the
template's code: it leaves through ``os._exit``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import files

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController

#: Exit status of a child whose own code (not the engine) failed; the engine's failures are results.
EXIT_CHILD_ERROR = 70


def run_child(
    directory: Path, lifeline: int, inherited: list[int], thread_pools: ThreadpoolController
) -> None:
    """The body of a forked child; never returns.

    ``thread_pools`` are the BLAS and OpenMP pools the template found once (finding them costs about
    25 ms of CPU and 1,300 page faults, measured: never a fragment's to pay).
    """
    status = EXIT_CHILD_ERROR
    try:
        _detach(directory, lifeline, inherited)
        status = _compute(directory, thread_pools)
    except BaseException as exc:  # noqa: BLE001 - anything at all becomes evidence, then an exit status
        try:
            sys.stderr.write(f"qcmb_parsl fragment process: {type(exc).__name__}: {exc}\n")
            sys.stderr.flush()
        finally:
            os._exit(status)
    os._exit(status)


def _detach(directory: Path, lifeline: int, inherited: list[int]) -> None:
    """Own session (so a kill of the group takes the engine's subprocesses too), own files, own fate."""
    os.setsid()
    for fd in inherited:
        os.close(fd)
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    os.chdir(directory)
    # Whatever goes wrong before the first job starts is its evidence: its part of the output begins at 0.
    _redirect(directory)
    threading.Thread(target=_die_with_template, args=(lifeline,), name="lifeline", daemon=True).start()


def _redirect(directory: Path) -> None:
    """stdin from /dev/null; stdout and stderr (C level included) into the process's files, every job's
    output in turn (the progress and results records say where each job's part starts and ends)."""
    for fd, path, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, directory / files.STDOUT, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (2, directory / files.STDERR, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        opened = os.open(path, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)


def _die_with_template(lifeline: int) -> None:
    """The template holds the only write end: end of file means it is gone, and so must we be.

    A thread, not a signal handler: an engine deep in C code would not run a Python handler for
    minutes, while this thread only waits on a pipe.
    """
    while os.read(lifeline, 1):
        pass
    os.killpg(0, signal.SIGKILL)


def _limit_threads(thread_pools: ThreadpoolController, ncores: int) -> None:
    """BLAS and OpenMP pools sized to the fragment: the template started them at one thread, so a
    one-core fragment (the jobs of one child share their task_config) has nothing to change."""
    if ncores != 1:
        thread_pools.limit(limits=ncores)


def _compute(directory: Path, thread_pools: ThreadpoolController) -> int:
    import qcengine

    jobs = json.loads((directory / files.INPUT).read_text())["jobs"]
    inherited = dict(os.environ)
    _limit_threads(thread_pools, int(jobs[0]["task_config"].get("ncores") or 1))
    progress = os.open(directory / files.PROGRESS, os.O_WRONLY | os.O_CREAT, 0o600)
    results = os.open(directory / files.RESULTS, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    output = _output_offsets()
    for index, job in enumerate(jobs):
        # First of all: from here on, whatever happens to this process happens to this job.
        started = time.time()
        files.write_progress(progress, {"index": index, "started": started, **output})
        scratch = Path(job["task_config"]["scratch_directory"])
        if index and not job["task_config"].get("scratch_messy"):  # one scratch for all, emptied
            files.empty(scratch)
            files.empty(Path(job["environment"]["TMPDIR"]))
        os.chdir(scratch)
        os.environ.clear()
        os.environ.update({**inherited, **job["environment"]})
        result = qcengine.compute(
            job["atomic_input"], job["program"], raise_error=False, task_config=job["task_config"]
        )
        wall_time = time.time() - started
        result_json = result.model_dump_json()
        ended = _output_offsets()
        record: dict[str, Any] = {"index": index, "started": started, "wall_time": wall_time}
        record.update({name: [output[name], ended[name]] for name in output})
        os.write(results, f"{json.dumps(record)}\n{result_json}\n".encode())
        output = ended  # where the next job's part begins
    return 0


def _output_offsets() -> dict[str, int]:
    """Where the process's output files end now: where the next job's part begins."""
    sys.stdout.flush()
    sys.stderr.flush()
    return {"stdout": os.lseek(1, 0, os.SEEK_END), "stderr": os.lseek(2, 0, os.SEEK_END)}
