"""Progress people can see: a live bar on a terminal, plain log lines in batch jobs, or nothing."""

from __future__ import annotations

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

    def submitted(self, count: int = 1) -> None:
        """Fragments went to the back-end (queued there or running)."""
        self.running += count
        self.show()

    def returned(self, count: int = 1) -> None:
        self.running -= count

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
    """One INFO line every ``interval`` seconds and at the end: fit for batch logs."""

    def __init__(self, total: int, label: str, interval: float = 10.0):
        super().__init__(total, label)
        self.interval = interval
        self.start = self.last = time.monotonic()

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
        self.bar.update(
            self.task_id, completed=self.done, cached=self.cached, running=self.running, failed=self.failed
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
        mode = "bar" if sys.stderr.isatty() else "log"
    if mode == "bar":
        return BarProgress(total, label)
    if mode == "log":
        return LogProgress(total, label)
    return ProgressDisplay(total, label)
