"""The files a fragment's process reads and leaves behind in its private directory: a few per process,
not per job, so that the jobs of a bundle create none.

Creating a file or a directory costs about 1 ms of CPU on some disks (measured on this machine's ext4,
against 6-16 microseconds on tmpfs): three directories and five files per job were most of what a
bundled GFN2-xTB fragment cost its worker and its engine process beyond the engine itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

#: The jobs, written by the client before the process starts.
INPUT = "input.json"
#: Which job the process is computing, since when, and where its output starts:
#: ``{"index", "started", "stdout", "stderr"}``, written over in place (:func:`write_progress`).
PROGRESS = "progress.json"
#: Each finished job's two lines: ``{"index", "started", "wall_time", "stdout", "stderr"}`` (its output
#: as ``[start, end)`` offsets in the process's files), then the AtomicResult's JSON text as the engine
#: gave it.
RESULTS = "results.jsonl"
#: The process's output, every job's in turn.
STDOUT = "stdout.txt"
STDERR = "stderr.txt"
#: Working directory of the engine; QCEngine makes its own temporary directories inside it.
SCRATCH = "scratch"
#: ``TMPDIR`` of the engine and of everything it starts (MPI session directories included).
TMP = "tmp"
#: Bytes of a progress record: it is written over in place, and never longer.
PROGRESS_WIDTH = 256


def work_directory(directory: Path, index: int, messy: bool) -> Path:
    """Where the ``index``-th job of a process computes (its ``scratch`` and ``tmp`` inside): one for all
    the jobs, emptied between them, unless their scratch is kept (``scratch_messy``): then one each."""
    return directory / str(index) if messy else directory


def empty(directory: Path) -> None:
    """Remove what a previous job left in ``directory``, keeping the directory itself."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


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


def write_progress(fd: int, progress: dict[str, Any]) -> None:
    """The progress record written over the previous one: no new file per job."""
    os.pwrite(fd, json.dumps(progress).ljust(PROGRESS_WIDTH).encode(), 0)


def read_progress(path: Path) -> dict[str, Any] | None:
    """The progress record, or None when there is none yet or it was being written over: two reads that
    agree are one record (a read may meet a write half done)."""
    try:
        first, second = path.read_bytes(), path.read_bytes()
        return json.loads(first) if first == second else None
    except (OSError, ValueError):
        return None


def read_results(path: Path) -> dict[int, tuple[dict[str, Any], str]]:
    """index -> (timing and output offsets, result JSON text) of every job the process finished; a last
    record cut short (the process died writing it) is not one."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    lines = text[: text.rfind("\n") + 1].split("\n")[:-1]  # only lines the process ended
    finished = {}
    for header, result_json in zip(lines[0::2], lines[1::2], strict=False):
        try:
            record = json.loads(header)
        except ValueError:
            break
        finished[int(record["index"])] = (record, result_json)
    return finished


def tail(
    path: Path, start: int = 0, end: int | None = None, max_chars: int = 2000, max_lines: int = 25
) -> str:
    """The end of bytes ``[start, end)`` of an output file (a job's part of it; by default all of it),
    where engines say what went wrong."""
    try:
        with path.open("rb") as handle:
            stop = handle.seek(0, os.SEEK_END) if end is None else end
            handle.seek(max(stop - max_chars, start, 0))
            text = handle.read(max(stop - handle.tell(), 0)).decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-max_lines:])
