"""``python -m qcmb_parsl.execution.lifeline COMMAND...``: run COMMAND for as long as our parent lives.

Parsl starts the HighThroughputExecutor's interchange as a plain child of the driver. A driver killed
with SIGKILL (or by the OOM killer) leaves the interchange behind, and its worker pools with it, for
as long as they keep each other alive: minutes to hours. This wrapper sits between the two: it runs
the interchange, forwards the signals Parsl sends it, and ends the interchange as soon as the driver
is gone. Worker pools notice the interchange is gone within their heartbeat threshold and exit.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys

#: Seconds the interchange gets to exit on SIGTERM before SIGKILL.
GRACE = 5.0

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask the kernel to SIGTERM this process (the interchange, after exec) when the wrapper dies."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def main(argv: list[str]) -> int:
    driver = os.getppid()
    try:
        driver_fd = os.pidfd_open(driver)
    except (OSError, AttributeError):
        os.execvp(argv[0], argv)  # no pidfd (old kernel): run the command as Parsl would have
    child = subprocess.Popen(argv, preexec_fn=_die_with_parent)  # noqa: PLW1509 - this process has one thread
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda received, _frame: child.send_signal(received))
    child_fd = os.pidfd_open(child.pid)
    while True:
        with contextlib.suppress(InterruptedError):
            readable, _, _ = select.select([driver_fd, child_fd], [], [])
            if child_fd in readable:
                return child.wait()
            if driver_fd in readable:
                child.terminate()
                try:
                    child.wait(GRACE)
                except subprocess.TimeoutExpired:
                    child.kill()
                return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
