"""Progress people can see: a live bar on a terminal or in a notebook, plain log lines in batch jobs and
scripts, or nothing.

Log lines go through the ``qcmb_parsl.progress`` logger. A script that has not set up logging still
sees them: while a display is up and nothing handles the logger's records, a handler of its own writes
them to stderr (a script's own ``logging`` set-up, or the command line's, takes precedence). In a
Jupyter notebook ``"auto"`` is rich's notebook display when ipywidgets is installed (rich draws
through it), log lines in the cell's output otherwise.

A run whose workers have computed nothing yet starts with a phase of its own: the bar reads
"starting 2 workers…" and a log line says so, until the first fragment comes back.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
from typing import Any, Literal, cast

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..errors import ConfigurationError
from .outcomes import TaskResult

#: How an executor shows progress: a live bar, log lines, "auto" (a bar on a terminal), or nothing.
ProgressMode = bool | Literal["auto", "bar", "log"]

logger = logging.getLogger("qcmb_parsl.progress")  # a stable name: users filter on it


class ProgressDisplay:
    """Counts what happened; subclasses show it. The plain class shows nothing."""

    def __init__(self, total: int, label: str):
        self.total = total
        self.label = label
        self.done = self.cached = self.shared = self.failed = self.running = 0
        self.workers_starting = 0

    def starting(self, workers: int) -> None:
        """Parsl, ``workers`` workers and their engine templates are starting: nothing computes yet."""
        self.workers_starting = workers
        self.show()

    def submitted(self, count: int = 1) -> None:
        """Fragments went to the back-end (queued there or running)."""
        self.running += count
        self.show()

    def returned(self, count: int = 1) -> None:
        self.running -= count
        self.workers_starting = 0

    def update(self, result: TaskResult) -> None:
        self.done += 1
        self.cached += result.cached
        self.shared += result.shared
        self.failed += not result.success
        self.show()

    def show(self) -> None:
        """Nothing to show for the quiet display."""

    def close(self) -> None:
        """Nothing to release for the quiet display."""


class LogProgress(ProgressDisplay):
    """One INFO line every ``interval`` seconds and at the end: fit for batch logs and scripts.

    When nothing would handle the lines (no logging set up), a stderr handler of its own does, for the
    display's life.
    """

    def __init__(self, total: int, label: str, interval: float = 10.0):
        super().__init__(total, label)
        self.interval = interval
        self.start = self.last = time.monotonic()
        self._handler: logging.Handler | None = None
        self._level = logger.level
        if not logger.hasHandlers():
            self._handler = logging.StreamHandler(sys.stderr)
            self._handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(self._handler)
            logger.setLevel(logging.INFO)

    def starting(self, workers: int) -> None:
        logger.info("%s: starting %d worker%s…", self.label, workers, "" if workers == 1 else "s")

    def show(self) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval or self.done == self.total:
            self.last = now
            logger.info(
                "%s: %d/%d fragments done (%d cached, %d running, %d failed) after %.1f s",
                self.label,
                self.done,
                self.total,
                self.cached,
                self.running,
                self.failed,
                now - self.start,
            )

    def close(self) -> None:
        if self._handler is not None:
            logger.removeHandler(self._handler)
            logger.setLevel(self._level)
            self._handler = None


class BarProgress(ProgressDisplay):
    """A rich live bar on stderr: done/total, cached, running, failed, elapsed and ETA."""

    def __init__(self, total: int, label: str):
        super().__init__(total, label)
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "cached {task.fields[cached]} · running {task.fields[running]} · failed {task.fields[failed]}"
            ),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.task_id = self.bar.add_task(f"fragments ({label})", total=total, cached=0, running=0, failed=0)
        self.bar.start()

    def show(self) -> None:
        n = self.workers_starting
        description = f"starting {n} worker{'' if n == 1 else 's'}…" if n else f"fragments ({self.label})"
        self.bar.update(
            self.task_id,
            description=description,
            completed=self.done,
            cached=self.cached,
            running=self.running,
            failed=self.failed,
        )

    def close(self) -> None:
        self.bar.stop()


#: Progress modes by name; True means "auto" and False nothing.
PROGRESS_MODES = ("auto", "bar", "log")


def check_progress(progress: Any) -> ProgressMode:
    """``progress`` when it is one of :data:`ProgressMode`'s values; ConfigurationError naming them if not."""
    if isinstance(progress, bool) or progress in PROGRESS_MODES:
        return cast(ProgressMode, progress)
    raise ConfigurationError(
        f"progress must be one of {', '.join(map(repr, PROGRESS_MODES))}, True or False, got {progress!r}"
    )


def make_progress(mode: ProgressMode, total: int, label: str) -> ProgressDisplay:
    if mode is True or mode == "auto":
        mode = "bar" if sys.stderr.isatty() or _notebook_display() else "log"
    if mode == "bar":
        return BarProgress(total, label)
    if mode == "log":
        return LogProgress(total, label)
    return ProgressDisplay(total, label)


def _notebook_display() -> bool:
    """Whether this is a Jupyter notebook where rich can draw its bar (it needs ipywidgets there)."""
    return Console().is_jupyter and importlib.util.find_spec("ipywidgets") is not None
