"""``python -I lifeline.py ...``: the driver's helper processes, tied to its life.

The driver runs this file by its path, in isolated mode, never as ``python -m``: it then starts in a
fraction of a second (it imports nothing of the package, whose import takes seconds) and never finds
a copy of itself imported by its own package. It is also importable, for :func:`end_run`.

Parsl starts the HighThroughputExecutor's interchange as a plain child of the driver, which leaves
holes:

- A driver killed with SIGKILL (or by the OOM killer) leaves the interchange behind, and its worker
  pools with it, for as long as they keep each other alive: minutes to hours.
- A signal sent to every process of a job or a terminal's process group (Slurm's ``scancel`` and time
  limit, Ctrl-C, a closed terminal's SIGHUP) kills the interchange while the driver is still stopping
  cleanly, and the driver's shutdown then waits forever for the interchange to answer.

``lifeline.py --driver PID COMMAND...`` runs the interchange immune to such broadcasts, ends it when
the driver asks (Parsl's SIGTERM, recognised by its sender) and the moment the driver is gone, and
takes it along if the wrapper itself is killed. The driver's pid is passed in: a driver that died
before the wrapper looked is noticed (the wrapper is then no longer its child) and nothing is
started. The wrapper lets go of the driver's stdout and stderr, so a pipeline reading them ends with
the driver and the interchange. When the interchange dies, the wrapper dies the same way, so the
driver sees how it ended (:mod:`.watch`).

Other helpers of a run nothing would end after a SIGKILL of the driver: with monitoring on, Parsl's
database and message router (multiprocessing children waiting for an exit event that never comes);
worker pools started on this machine (the local provider detaches them, and a pool that had not yet
connected when its interchange died waits for it forever). ``lifeline.py --guard PID TOKEN`` watches
the driver for them: it reads more pids to end on its stdin, and at the driver's end it ends those
and every process whose environment carries ``QCMB_PARSL_RUN=TOKEN`` (what the driver exports in
its blocks' ``worker_init``). A driver that stops cleanly ends the guard itself.
"""

from __future__ import annotations

import contextlib
import glob
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile

import psutil

#: The environment variable that marks every process of a run's worker blocks on this machine.
RUN_VARIABLE = "QCMB_PARSL_RUN"
#: The file in a block's temporary directory that names the run it belongs to.
BLOCK_MARK = ".qcmb-run"

_PR_SET_PDEATHSIG = 1
_BROADCAST = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
#: Seconds between looks at pending signals; the pidfds wake the loop at once.
_TICK = 0.2
#: Seconds the ended processes get between SIGTERM and SIGKILL.
GRACE = 3.0
#: Looks for processes of the run after ending those found: a pool may start workers while it ends.
_ROUNDS = 5


def _prepare_interchange(wrapper: int) -> None:
    """In the child before exec: ignore broadcast signals, die with the wrapper (even if it died
    between the fork and this, when no death signal would ever come)."""
    import ctypes

    for signum in _BROADCAST:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _BROADCAST)
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != wrapper:
        os._exit(1)


def _tie(driver: int, argv: list[str]) -> int:
    """Run ``argv`` for as long as ``driver`` lives and wants it; end the way it ended."""
    try:
        driver_fd = os.pidfd_open(driver)
    except ProcessLookupError:
        return 0  # the driver is gone already: nothing to run
    except (OSError, AttributeError):  # no pidfd (an old kernel): run the command as Parsl would have
        os.execvp(argv[0], argv)
    if os.getppid() != driver:
        return 0  # reparented: the driver died, and its pid may be another process's by now
    signal.pthread_sigmask(signal.SIG_BLOCK, _BROADCAST)
    wrapper = os.getpid()
    child = subprocess.Popen(argv, preexec_fn=lambda: _prepare_interchange(wrapper))
    child_fd = os.pidfd_open(child.pid)
    _let_go_of_output()
    while True:
        readable, _, _ = select.select([driver_fd, child_fd], [], [], _TICK)
        if child_fd in readable:
            return _end_like(child.wait())
        if driver_fd in readable:
            child.kill()
            return child.wait()
        received = signal.sigtimedwait(_BROADCAST, 0)
        if received is not None and received.si_signo == signal.SIGTERM and received.si_pid == driver:
            child.kill()
            return child.wait()


def _let_go_of_output() -> None:
    """The wrapper writes nothing: the driver's stdout and stderr stay open only through the child."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def _end_like(status: int) -> int:
    """Exit as the child did: killed by a signal, the wrapper is killed by the same one."""
    if status >= 0:
        return status
    signum = -status
    if signum != signal.SIGKILL:
        signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    os.kill(os.getpid(), signum)
    return 128 + signum


def _guard(driver: int, token: str) -> int:
    """Wait for the driver's end, reading pids to end from stdin; then end the run's processes."""
    for signum in _BROADCAST:
        signal.signal(signum, signal.SIG_IGN)  # a job's or terminal's broadcast is for the driver
    known: list[psutil.Process] = []
    try:
        driver_fd: int | None = os.pidfd_open(driver)
    except ProcessLookupError:
        end_run(token, known)  # gone before the guard started
        return 0
    except (OSError, AttributeError):  # no pidfd (an old kernel): the guard is reparented when it ends
        driver_fd = None
    reading, pending = True, b""
    while True:
        watched = ([0] if reading else []) + ([] if driver_fd is None else [driver_fd])
        readable, _, _ = select.select(watched, [], [], _TICK if driver_fd is None else None)
        if driver_fd in readable or (driver_fd is None and os.getppid() != driver):
            break
        if 0 in readable:
            data = os.read(0, 4096)
            reading = bool(data)
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                with contextlib.suppress(ValueError, psutil.Error):
                    known.append(psutil.Process(int(line)))
    end_run(token, known)
    return 0


def run_processes(token: str) -> list[psutil.Process]:
    """Live processes whose environment carries ``QCMB_PARSL_RUN=token``."""
    found = []
    for process in psutil.process_iter(["environ"]):
        environment = process.info.get("environ") or {}
        if environment.get(RUN_VARIABLE) == token and process.pid != os.getpid():
            found.append(process)
    return found


def end_run(token: str, known: list[psutil.Process], grace: float = GRACE) -> None:
    """SIGTERM to ``known`` (each checked against pid reuse) and every process of the run, SIGKILL to
    those still there after ``grace`` seconds; again for any that appeared meanwhile. Then the run's
    block directories left on this machine go too."""
    targets = [process for process in known if process.is_running()]
    for _ in range(_ROUNDS):
        targets += run_processes(token) if token else []
        if not targets:
            break
        for process in targets:
            with contextlib.suppress(psutil.Error):
                process.terminate()
        _, alive = psutil.wait_procs(targets, timeout=grace)
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(alive, timeout=grace)
        targets = []
    if token:
        _remove_block_directories(token)


def _remove_block_directories(token: str) -> None:
    """Remove the temporary directories of the run's blocks on this machine that their scripts, killed
    outright, could not (each names its run in :data:`BLOCK_MARK`)."""
    for directory in glob.glob(os.path.join(tempfile.gettempdir(), "qcmb-??????")):
        try:
            with open(os.path.join(directory, BLOCK_MARK)) as mark:
                owner = mark.read().strip()
        except OSError:
            continue
        if owner == token:
            shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--guard"]:
        return _guard(int(argv[1]), argv[2])
    if argv[:1] == ["--driver"]:
        return _tie(int(argv[1]), argv[2:])
    sys.stderr.write("usage: lifeline.py --driver PID COMMAND... | --guard PID TOKEN\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
