"""The warm template: a process that has the engines imported and forks one child per fragment.

Started by :mod:`qcmb_parsl.execution.isolation.client` as ``python -m
qcmb_parsl.execution.isolation.template PROGRAM`` (the program of its first fragment), it speaks JSON
lines: requests on stdin (``{"id", "dir", "program"}``), answers on stdout (``{"ready"}`` once, then
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
import importlib
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

#: Per in-process engine: its Python modules, imported once here instead of once per fragment, and
#: the cheapest calculation that walks QCEngine's and the engine's whole path (a helium atom at
#: HF/STO-3G; a hydrogen molecule at GFN2-xTB). Loaded for the programs the template is asked for,
#: not for every engine installed: a template without PySCF forks from 70 MB instead of 185 MB.
WARM_UPS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "pyscf": (
        ("pyscf.scf", "pyscf.dft", "pyscf.mp", "pyscf.cc", "pyscf.grad"),
        {
            "molecule": {"symbols": ["He"], "geometry": [0.0, 0.0, 0.0]},
            "driver": "energy",
            "model": {"method": "hf", "basis": "sto-3g"},
        },
    ),
    "xtb": (
        ("tblite.interface", "tblite.qcschema"),
        {
            "molecule": {"symbols": ["H", "H"], "geometry": [0.0, 0.0, 0.0, 0.0, 0.0, 1.4]},
            "driver": "gradient",
            "model": {"method": "GFN2-xTB"},
        },
    ),
}


def warm_up() -> None:
    """The project's harnesses and QCEngine's host probe (1 s+), once, instead of in every child."""
    import qcengine.config

    from ...engines import register_harnesses

    register_harnesses()
    qcengine.config.get_global()


def warm_program(program: str, warmed: set[str]) -> None:
    """Warm a program once, before its first child: import its modules and walk one tiny calculation
    through it (an in-process engine's first-use costs, about 15 ms per PySCF fragment, measured), or
    probe its version (NWChem's probe runs the program: 1.5 s), so that children inherit all of it.

    The template runs with every BLAS/OpenMP cap at one thread, so this starts no thread pool that a
    fork would break. Whatever runs, runs as a fragment would, with temporary files and an Open MPI
    session directory of its own: in the node's shared one it could collide with other runs (issue
    18), and then every fragment of this template would run the program twice, probing again.
    """
    if program in warmed:
        return
    warmed.add(program)
    import qcengine

    try:
        harness = qcengine.get_program(program, check=False)
        if not harness.found():
            return
        modules, calculation = WARM_UPS.get(program, ((), None))
        for module in modules:
            importlib.import_module(module)
        with _private_temporary_files():
            harness.get_version()
            if calculation is not None:
                qcengine.compute(calculation, program, task_config={"ncores": 1, "memory": 0.5, "retries": 0})
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
        from threadpoolctl import ThreadpoolController

        self.children: dict[int, int] = {}  # pid -> request id
        self.directories: dict[int, Path] = {}  # pid -> the child's private directory
        #: The BLAS/OpenMP libraries loaded so far: found again after a program is warmed.
        self.thread_pools = ThreadpoolController()
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

    def warm(self, program: str) -> None:
        """:func:`warm_program`, then the thread pools found again (the program may have loaded some)."""
        if program not in self.warmed:
            from threadpoolctl import ThreadpoolController

            warm_program(program, self.warmed)
            self.thread_pools = ThreadpoolController()

    def start(self, request: dict[str, Any]) -> None:
        self.warm(request["program"])
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            inherited = [self.lifeline_w, self.wake_r, self.wake_w]
            run_child(Path(request["dir"]), self.lifeline_r, inherited, self.thread_pools)
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
    """``python -m qcmb_parsl.execution.isolation.template [PROGRAM ...]``: the programs named are
    warmed before the template says it is ready (others when their first fragment comes)."""
    warm_up()
    template = Template()
    for program in sys.argv[1:]:
        template.warm(program)
    template.serve()


if __name__ == "__main__":
    main()
