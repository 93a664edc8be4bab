"""An amplifier of Open MPI's session-directory race, for the tests of engines side by side.

Open MPI 4.1 singletons (Debian's NWChem runs without mpirun) put their session directories under one
top directory shared by every run of the user on the node, ``<tmpdir>/ompi.<node>.<uid>``; a run
that finishes removes the top directory when it looks empty, and a run starting at that moment can
lose it between its own mkdir() calls ("A call to mkdir was unable to create the desired directory").
:class:`SessionDirRacer` does what a finishing run does, rmdir() of that top directory, thousands of
times a second in a process of its own, so the rare collision (about 1 in 1,000 NWChem runs two at a
time) becomes a frequent one.

It only ever calls ``rmdir`` on that one path: rmdir() removes nothing but an empty directory and
never follows anything, so it cannot hurt a run that already made its own directories inside. Tests
point ``TMPDIR`` at a directory of their own before they start it, so it never touches the machine's
``/tmp/ompi.*`` of anyone else's runs.

Run as a script (``python session_dir_racer.py TOP``) it is the racing process: it stops when its
standard input closes (its test ended, however it ended) or after :data:`MAX_SECONDS`, and prints
how often it tried and how often it removed the directory, as JSON.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

#: The racing process ends by itself after this long, whatever happens to the test that started it.
MAX_SECONDS = 600.0
#: Seconds between two rmdir() calls: about 4,000 calls a second at a few percent of one core.
PERIOD = 0.0002

_TOP_NAME = re.compile(r"^ompi\.[^/]+\.\d+$")


def open_mpi_tmpdir(environ: Mapping[str, str] = os.environ) -> str:
    """Where Open MPI 4.1 puts session directories: the ``orte_tmpdir_base`` MCA parameter, else
    ``opal_tmp_directory()`` (``TMPDIR``, else ``TEMP``, else ``TMP``, else ``/tmp``)."""
    for name in ("OMPI_MCA_orte_tmpdir_base", "TMPDIR", "TEMP", "TMP"):
        if environ.get(name):
            return environ[name]
    return "/tmp"


def open_mpi_nodename() -> str:
    """The node's name as Open MPI writes it: the host name up to its first dot (an IP address whole)."""
    name = socket.gethostname()
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name.split(".")[0]
    return name


def shared_session_top(environ: Mapping[str, str] = os.environ) -> Path:
    """The top session directory every Open MPI singleton started with ``environ`` shares."""
    return Path(open_mpi_tmpdir(environ)) / f"ompi.{open_mpi_nodename()}.{os.getuid()}"


class SessionDirRacer:
    """A process that rmdir()s ``top`` (and nothing else) in a loop while the ``with`` block runs.

    After the block, :attr:`tries` and :attr:`removed` say how often it tried and how often it found the
    directory empty and removed it (a run's session directory was between its two mkdir() calls, or no
    run was there at all).
    """

    def __init__(self, top: Path):
        if not _TOP_NAME.match(top.name):
            raise ValueError(f"{top} is not an Open MPI top session directory (ompi.<node>.<uid>)")
        self.top = top
        self.tries = 0
        self.removed = 0
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> SessionDirRacer:
        self._process = subprocess.Popen(
            [sys.executable, __file__, str(self.top)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._process is not None
        try:
            output, _ = self._process.communicate(timeout=30)  # closes its stdin: the racer stops
        except subprocess.TimeoutExpired:
            self._process.kill()
            output, _ = self._process.communicate()
        if output.strip():
            counts = json.loads(output)
            self.tries, self.removed = counts["tries"], counts["removed"]


def _race(top: str) -> dict[str, int]:
    """The racing loop: rmdir(top) until standard input closes or MAX_SECONDS pass."""
    stop = threading.Event()

    def until_stdin_closes() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    end = time.monotonic() + MAX_SECONDS
    tries = removed = 0
    while not stop.is_set() and time.monotonic() < end:
        tries += 1
        try:
            os.rmdir(top)
            removed += 1
        except OSError as error:
            if error.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST, errno.EBUSY):
                raise
        time.sleep(PERIOD)
    return {"tries": tries, "removed": removed}


if __name__ == "__main__":
    print(json.dumps(_race(sys.argv[1])))
