"""``python -m qcmb_parsl.execution.lifeline COMMAND...``: the interchange, tied to the driver's life.

Parsl starts the HighThroughputExecutor's interchange as a plain child of the driver, which leaves two
holes:

- A driver killed with SIGKILL (or by the OOM killer) leaves the interchange behind, and its worker
  pools with it, for as long as they keep each other alive: minutes to hours.
- A signal sent to every process of a job or a terminal's process group (Slurm's ``scancel`` and time
  limit, Ctrl-C) kills the interchange while the driver is still stopping cleanly, and the driver's
  shutdown then waits forever for the interchange to answer.

This wrapper runs the interchange immune to such broadcasts, ends it when the driver asks (Parsl's
SIGTERM, recognised by its sender) and the moment the driver is gone, and takes it along if the
wrapper itself is killed. Worker pools notice the interchange is gone within their heartbeat
threshold and exit.

Parsl starts other helpers of the driver that nothing ends after a SIGKILL: with monitoring on, its
database and message router (multiprocessing children waiting for an exit event that never comes).
``python -m qcmb_parsl.execution.lifeline --guard DRIVER PID...`` watches the driver for them and
ends them when it is gone; a driver that stops cleanly ends the guard itself.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time

import psutil

_PR_SET_PDEATHSIG = 1
_BROADCAST = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
#: Seconds between looks at pending signals; the pidfds wake the loop at once.
_TICK = 0.2
#: Seconds the guarded processes get between SIGTERM and SIGKILL.
_GRACE = 3.0


def _prepare_interchange() -> None:
    """In the child before exec: ignore broadcast signals, die with the wrapper."""
    import ctypes

    for signum in _BROADCAST:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _BROADCAST)
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _watch(driver: int, pids: list[int]) -> int:
    """Wait for the driver's end, then end the processes it left (each checked against pid reuse)."""
    for signum in _BROADCAST:
        signal.signal(signum, signal.SIG_IGN)  # a job's or terminal's broadcast is for the driver
    processes = []
    for pid in pids:
        try:
            processes.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    try:
        driver_fd = os.pidfd_open(driver)
    except ProcessLookupError:
        pass  # gone before the guard started
    except (OSError, AttributeError):  # no pidfd (an old kernel): the guard is reparented when it ends
        while os.getppid() == driver:
            time.sleep(_TICK)
    else:
        select.select([driver_fd], [], [])
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=_GRACE)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--guard"]:
        return _watch(int(argv[1]), [int(pid) for pid in argv[2:]])
    driver = os.getppid()
    try:
        driver_fd = os.pidfd_open(driver)
    except (OSError, AttributeError):
        os.execvp(argv[0], argv)  # no pidfd (an old kernel): run the command as Parsl would have
    signal.pthread_sigmask(signal.SIG_BLOCK, _BROADCAST)
    child = subprocess.Popen(argv, preexec_fn=_prepare_interchange)
    child_fd = os.pidfd_open(child.pid)
    while True:
        readable, _, _ = select.select([driver_fd, child_fd], [], [], 0)
        if child_fd in readable:
            return child.wait()
        if driver_fd in readable:
            child.kill()
            return child.wait()
        received = signal.sigtimedwait(_BROADCAST, _TICK)
        if received is not None and received.si_signo == signal.SIGTERM and received.si_pid == driver:
            child.kill()
            return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
