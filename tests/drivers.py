"""Drivers in subprocesses, and the processes they leave (or must not leave) behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from qcmb_parsl.cache import FragmentCache

#: Environment variable naming the test session a process belongs to (set in conftest.py).
SESSION_MARKER = "QCMB_PARSL_TEST_SESSION"


def session_processes(name: str) -> list[psutil.Process]:
    """Live processes of this test session whose command line contains ``name``, wherever they were
    reparented (the local provider detaches its worker pools from the driver)."""
    session = os.environ.get(SESSION_MARKER)
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if name in " ".join(proc.info["cmdline"] or []) and proc.environ().get(SESSION_MARKER) == session:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
        except psutil.Error:
            continue
    return found


def as_in_a_terminal() -> None:
    """Give a driver about to start the stop signals a terminal's foreground command has.

    Signal dispositions are inherited: under ``nohup`` SIGHUP is ignored, and a command started in the
    background by a shell without job control ignores SIGINT. A driver rightly leaves an ignored
    signal ignored, so a test that stops one with it must not inherit how the test run was started.
    """
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def start_cli(args: list[str], cwd: Path, cache: Path, **environment: str) -> subprocess.Popen:
    """``python -m qcmb_parsl ARGS`` in its own session, as a user's shell would start it (with
    ``environment`` added to this process's)."""
    env = {**os.environ, "QCMB_PARSL_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1", **environment}
    return subprocess.Popen(
        [sys.executable, "-m", "qcmb_parsl", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=as_in_a_terminal,
    )


def wait_for_cached(
    cache: Path, count: int, timeout: float = 180, driver: subprocess.Popen | None = None
) -> None:
    """Until the cache holds ``count`` fragments: the moment to stop a driver mid-run (an error at
    once, with its stderr, if ``driver`` ends first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (cache / "cache.db").exists():
            with FragmentCache(cache) as opened:
                if len(opened) >= count:
                    return
        if driver is not None and driver.poll() is not None:
            raise AssertionError(f"the driver ended ({driver.returncode}): {driver.communicate()[1]}")
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} fragments cached after {timeout} s")


def still_alive(pids: set[int], timeout: float) -> set[int]:
    """Which of ``pids`` are still running (zombies count as gone) after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {
            pid
            for pid in alive
            if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        }
        time.sleep(0.2)
    return alive


def interchanges(driver: int) -> list[psutil.Process]:
    """The HTEX interchanges below a driver (Parsl renames them, and their environment with them, so
    only their place in the tree tells whose they are)."""
    found = []
    for pid in descendants(driver):
        try:
            process = psutil.Process(pid)
            if "HTEX interchange" in " ".join(process.cmdline()):
                found.append(process)
        except psutil.Error:
            continue
    return found


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> float:
    """Seconds until ``condition()`` holds, looked at every 0.1 s; an AssertionError naming ``what``
    after ``timeout`` seconds."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)
    return time.monotonic() - start


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``: interchange, worker pools, templates, engines."""
    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return set()


def run_cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m qcmb_parsl ARGS`` in ``cwd`` to the end; stdout and stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "qcmb_parsl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "160"},
    )


def assert_refused(proc: subprocess.CompletedProcess, *expected: str) -> str:
    """A command refused as bad input: exit status 2 and one error line holding every ``expected`` text;
    the line."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("qcmb-parsl: error: "), proc.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def stop_driver(driver: subprocess.Popen, signum: int, timeout: float, *, group: bool = False) -> str:
    """Signal a running driver (its whole process group with ``group``, as Ctrl-C in a terminal does)
    and wait for it to exit; its stderr. A driver still running after ``timeout`` is killed."""
    try:
        if group:
            os.killpg(driver.pid, signum)
        else:
            driver.send_signal(signum)
        _, stderr = driver.communicate(timeout=timeout)
        return stderr
    finally:
        if driver.poll() is None:
            driver.kill()
