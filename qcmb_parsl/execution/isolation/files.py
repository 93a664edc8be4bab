"""The files a fragment's process reads and leaves behind in its private directory."""

from __future__ import annotations

import os
from pathlib import Path

INPUT = "input.json"
#: Which job of a bundle the process is computing, and since when: ``{"index", "started"}``.
PROGRESS = "progress.json"
RESULT = "result.json"
TIMING = "timing.json"
STDOUT = "stdout.txt"
STDERR = "stderr.txt"
#: Working directory of the engine; QCEngine makes its own temporary directories inside it.
SCRATCH = "scratch"
#: ``TMPDIR`` of the engine and of everything it starts (MPI session directories included).
TMP = "tmp"


def job_directory(directory: Path, index: int) -> Path:
    """The private directory of a child's ``index``-th job, inside the child's own ``directory``."""
    return directory / str(index)


def private_temporary_files(directory: str) -> dict[str, str]:
    """The environment that keeps every temporary file of an engine, and of what it starts, in
    ``directory``: ``TMPDIR`` and its aliases, and Open MPI's session directory.

    Open MPI's session directory (``/tmp/ompi.HOST.UID`` by default) is shared by every MPI singleton
    of the user on the node, and one run's cleanup removes it under another's MPI_Init: NWChem runs
    side by side failed about 1 in 1,000 with "A call to mkdir was unable to create the desired
    directory" (issue 18).
    """
    return {
        "TMPDIR": directory,
        "TMP": directory,
        "TEMP": directory,
        "OMPI_MCA_orte_tmpdir_base": directory,  # Open MPI up to 4.1
        "OMPI_MCA_prte_tmpdir_base": directory,  # Open MPI 5 (PRRTE)
    }


def write_atomically(path: Path, text: str) -> None:
    """A reader never sees half a file: write beside it, then rename."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def tail(path: Path, max_chars: int = 2000, max_lines: int = 25) -> str:
    """The end of an output file, where engines say what went wrong."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(size - max_chars, 0))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-max_lines:])
