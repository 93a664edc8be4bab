"""Progress people can see: a live bar on a terminal, plain log lines in batch jobs, or nothing."""

from __future__ import annotations

import logging
import sys
import time
from typing import Literal

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .outcomes import TaskResult

logger = logging.getLogger("qcmb_parsl.progress")  # a stable name: users filter on it

ProgressMode = bool | Literal["auto", "bar", "log"]


class ProgressDisplay:
    """Counts what happened; subclasses show it. The plain class shows nothing."""

    def __init__(self, total: int, label: str):
        self.total = total
        self.label = label
        self.done = self.cached = self.shared = self.failed = self.submitted_count = 0

    @property
    def running(self) -> int:
        """Submitted but not back yet (queued on the executor or running)."""
        return self.submitted_count - (self.done - self.cached - self.shared)

    def submitted(self) -> None:
        self.submitted_count += 1
        self.show()

    def update(self, result: TaskResult) -> None:
        self.done += 1
        self.cached += result.cached
        self.shared += "shared_with" in result.provenance
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
                self.label, self.done, self.total, self.cached, self.running, self.failed, now - self.start,
            )


class BarProgress(ProgressDisplay):
    """A rich live bar on stderr: done/total, cached, running, failed, elapsed and ETA."""

    def __init__(self, total: int, label: str):
        super().__init__(total, label)
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("cached {task.fields[cached]} · running {task.fields[running]} · failed {task.fields[failed]}"),
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


def make_progress(mode: ProgressMode, total: int, label: str) -> ProgressDisplay:
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "log"
    if mode == "bar":
        return BarProgress(total, label)
    if mode == "log":
        return LogProgress(total, label)
    return ProgressDisplay(total, label)
