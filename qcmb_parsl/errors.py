"""One error vocabulary for the project.

Everything this package raises on purpose derives from :class:`QcmbParslError`, so a campaign script
can catch one class. Messages are built from stored fields and fit on one line, naming what is wrong
and, where there is one, the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class QcmbParslError(Exception):
    """Root of every error raised by qcmb_parsl on purpose."""


class ConfigurationError(QcmbParslError, ValueError):
    """An executor preset, config file, site file or option is unusable; raised before any submission."""


class InputError(QcmbParslError, ValueError):
    """The ManyBodyInput (or a low-level plan) cannot be run as given; raised before any submission."""


class OutputError(QcmbParslError):
    """A result or summary file cannot be written where asked.

    Raised before anything is computed when the place is unusable (a directory, no write access), and
    after computing when writing fails (quota, file-size limit), then saying where the work is kept.
    """


class CacheError(QcmbParslError):
    """The fragment cache directory cannot be created, opened or written."""


class FragmentsFailedError(QcmbParslError, RuntimeError):
    """Raised after every other fragment finished (and was cached) when some fragments failed.

    Identical failures are grouped: one entry per distinct (kind, program, reason), with its count and
    first labels, so the message stays short however many fragments failed. :meth:`full` gives every
    group with the engine's evidence (exit status, the end of its output) of its first fragment.
    """

    #: Characters of the one-line message, a little more than a terminal line or two.
    MAX_LINE = 300

    def __init__(self, failures: Sequence[Any], n_tasks: int, report: Any = None):
        self.failures = list(failures)
        self.n_tasks = n_tasks
        self.report = report  # the RunReport, with every fragment that did succeed
        super().__init__(self._one_line())

    def groups(self) -> list[list[Any]]:
        """Failures with the same kind, program and reason: causes first (largest first), then the
        fragments cancelled because of them."""
        grouped: dict[tuple[str, str, str], list[Any]] = {}
        for failure in self.failures:
            grouped.setdefault((failure.kind.value, failure.program, failure.reason()), []).append(failure)
        return sorted(grouped.values(), key=lambda group: (group[0].kind.value == "cancelled", -len(group)))

    def _one_line(self) -> str:
        head = f"{len(self.failures)} of {self.n_tasks} fragments failed: "
        parts = []
        for group in self.groups():
            first = group[0]
            others = f" and {len(group) - 1} more" if len(group) > 1 else ""
            parts.append(
                f"{len(group)} {first.kind.value} [{first.program}] {first.reason()} ({first.label}{others})"
            )
        text = head + "; ".join(parts)
        if len(text) > self.MAX_LINE:
            text = text[: self.MAX_LINE - 1].rstrip() + "…"
        return text

    def full(self) -> str:
        """Every group, with the first fragment's evidence of each attempt; several lines."""
        lines = [f"{len(self.failures)} of {self.n_tasks} fragments failed"]
        for group in self.groups():
            labels = ", ".join(f.label for f in group[:5]) + (
                f" and {len(group) - 5} more" if len(group) > 5 else ""
            )
            lines.append(f"{len(group)} x {group[0].kind.value} [{group[0].program}]: {labels}")
            lines.extend("  " + line for line in group[0].full().splitlines())
        return "\n".join(lines)


class RunInterrupted(KeyboardInterrupt):
    """The driver was told to stop (SIGINT, SIGTERM, SIGHUP) and did: nothing running, every finished
    fragment kept.

    A ``KeyboardInterrupt``, so that code which handles Ctrl-C keeps working; ``exit_status`` is what a
    shell expects of a process ended by ``signum`` (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).
    ``report`` is None for a stop before the run loop began (while importing, reading or planning):
    nothing was computed then.
    """

    def __init__(self, signum: int, kept: int = 0, total: int = 0, report: Any = None, cached: bool = True):
        super().__init__(signum)
        self.signum = signum
        self.kept = kept
        self.total = total
        self.report = report  # the RunReport of what finished before the stop
        self.cached = cached  # whether finished fragments are in a cache (a rerun resumes)

    @property
    def exit_status(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        import signal

        name = signal.Signals(self.signum).name
        if self.report is None:  # before any run loop began: importing, reading or planning
            return (
                f"stopped by {name}: nothing was computed yet and nothing was written; running the same "
                "command again starts from the beginning"
            )
        if not self.cached:
            return (
                f"stopped by {name}: {self.kept} of {self.total} fragments were done, but with no cache "
                "nothing is kept: running the same command again starts over"
            )
        return (
            f"stopped by {name}: {self.kept} of {self.total} fragments are done and kept in the cache; "
            "running the same command again resumes"
        )


class OptimizationFailed(QcmbParslError, RuntimeError):
    """The optimizer stopped without converging, or gave up on the structure. Every fragment computed on
    the way is in the fragment cache: a rerun (with a larger ``maxiter``, say) answers those from it."""
