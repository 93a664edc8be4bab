"""The warm template: a process that has the engines imported and forks one child per fragment.

Started by :mod:`qcmb_parsl.execution.isolation.client` as ``python -m
qcmb_parsl.execution.isolation.template``, it speaks JSON lines: requests on stdin
(``{"id", "dir", "program"}``), answers on stdout (``{"ready"}`` once, then
``{"id", "pid"}`` when a child starts and ``{"id", "status", "maxrss_kib"}`` when it ends). It never
computes: forking is safe for BLAS and OpenMP only before their thread pools exist, so the template
imports and probes, and its children do the work.

It lives exactly as long as its client: end of file on stdin (the client exited, however it died)
kills every child's process group, removes the private directories of those children (their client
would have, had it lived) and ends the template. Children hold a lifeline to the template and kill
their own group when it goes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import files
from .child import run_child

logger = logging.getLogger(__name__)

#: Python modules of the embedded engine, imported once here instead of once per fragment.
PRELOAD = ("pyscf.scf", "pyscf.dft", "pyscf.mp", "pyscf.cc", "pyscf.grad")

#: A helium atom at HF/STO-3G: the cheapest calculation that walks QCEngine's and PySCF's whole path.
_WARM_UP_INPUT = {
    "molecule": {"symbols": ["He"], "geometry": [0.0, 0.0, 0.0]},
    "driver": "energy",
    "model": {"method": "hf", "basis": "sto-3g"},
}


def warm_up() -> None:
    """Import what every fragment needs, and walk one tiny calculation through it, once.

    QCEngine's host probe (1 s+) and the first-use costs of QCEngine, qcelemental and PySCF (about
    15 ms per fragment, measured) are then paid here instead of in every child. The template runs
    with every BLAS/OpenMP cap at one thread, so this starts no thread pool that a fork would break.
    """
    import importlib

    import qcengine.config

    from ...engines.pyscf import register_pyscf_harness

    register_pyscf_harness()
    qcengine.config.get_global()
    for module in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    if qcengine.get_program("pyscf", check=False).found():
        qcengine.compute(_WARM_UP_INPUT, "pyscf", task_config={"ncores": 1, "memory": 0.5, "retries": 0})


def warm_program(program: str, warmed: set[str]) -> None:
    """Probe a program's version once (NWChem's probe runs the program: 1.5 s), so children inherit it.

    The probe runs the program as a fragment would, with temporary files and an Open MPI session
    directory of its own: in the node's shared one it could collide with other runs (issue 18), and
    then every fragment of this template would run the program twice, probing again.
    """
    if program in warmed:
        return
    warmed.add(program)
    import qcengine

    try:
        harness = qcengine.get_program(program, check=False)
        if harness.found():
            with _private_temporary_files():
                harness.get_version()
    except Exception as exc:  # noqa: BLE001 - the child will meet the same problem and report it
        logger.debug("could not warm %s: %s", program, exc)


@contextlib.contextmanager
def _private_temporary_files() -> Iterator[None]:
    """This process's environment pointed at a fresh directory for temporary files, removed after.
    (The template has one thread: changing its environment for a moment is safe.)"""
    directory = tempfile.mkdtemp(prefix="qcmb-probe-")
    private = files.private_temporary_files(directory)
    saved = {name: os.environ.get(name) for name in private}
    os.environ.update(private)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(directory, ignore_errors=True)


class Template:
    """The fork loop: one select over requests and child exits, one thread (so forking stays safe)."""

    def __init__(self) -> None:
        self.children: dict[int, int] = {}  # pid -> request id
        self.directories: dict[int, Path] = {}  # pid -> the child's private directory
        self.warmed: set[str] = set()
        self.lifeline_r, self.lifeline_w = os.pipe()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.terminated = False

    def send(self, message: dict[str, Any]) -> None:
        os.write(1, (json.dumps(message) + "\n").encode())

    def serve(self) -> None:
        self.send({"ready": os.getpid()})
        pending = b""
        while True:
            try:
                readable, _, _ = select.select([0, self.wake_r], [], [])
            except InterruptedError:
                continue
            if self.wake_r in readable:
                signals = os.read(self.wake_r, 4096)
                if signal.SIGTERM in signals:
                    break
                self.reap()
            if 0 in readable:
                data = os.read(0, 1 << 16)
                if not data:
                    break
                pending += data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        self.start(json.loads(line))
        self.kill_all()

    def start(self, request: dict[str, Any]) -> None:
        warm_program(request["program"], self.warmed)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            inherited = [self.lifeline_w, self.wake_r, self.wake_w]
            run_child(Path(request["dir"]), self.lifeline_r, inherited)
        self.children[pid] = request["id"]
        self.directories[pid] = Path(request["dir"])
        self.send({"id": request["id"], "pid": pid})

    def reap(self) -> None:
        while self.children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            request_id = self.children.pop(pid, None)
            self.directories.pop(pid, None)
            if request_id is not None:
                self.send({"id": request_id, "status": status, "maxrss_kib": usage.ru_maxrss})

    def kill_all(self) -> None:
        """The client is gone: nothing this template started may outlive it, nor their directories."""
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        os.close(self.lifeline_w)
        for pid, directory in self.directories.items():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            if not _kept(directory):
                shutil.rmtree(directory, ignore_errors=True)


def _kept(directory: Path) -> bool:
    """Whether the fragment asked to keep its scratch (``scratch_messy``), as its client would honour."""
    try:
        jobs = json.loads((directory / files.INPUT).read_text())["jobs"]
        return bool(jobs[0]["task_config"].get("scratch_messy"))
    except (OSError, ValueError, KeyError, IndexError):
        return False


def main() -> None:
    warm_up()
    Template().serve()


if __name__ == "__main__":
    main()
