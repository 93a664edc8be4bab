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


class FragmentFailure:
    """What is known about one fragment that did not succeed, kept for the summary error."""

    def __init__(self, label: str, program: str, error_type: str, message: str, attempts: int = 1):
        self.label = label
        self.program = program
        self.error_type = error_type
        self.message = message
        self.attempts = attempts

    def one_line(self) -> str:
        first = (self.message or "").strip().splitlines()
        reason = first[-1] if first else "no message"
        return f"{self.label} [{self.program}] {self.error_type}: {reason}"

    def __repr__(self) -> str:
        return f"FragmentFailure({self.one_line()!r})"


class FragmentsFailedError(QcmbParslError, RuntimeError):
    """Raised after every other fragment finished (and was cached) when some fragments failed."""

    def __init__(self, failures: Sequence[FragmentFailure], n_tasks: int, report: Any = None):
        self.failures = list(failures)
        self.n_tasks = n_tasks
        self.report = report  # the RunReport, with every fragment that did succeed
        detail = "; ".join(f.one_line() for f in self.failures[:5])
        more = f"; and {len(self.failures) - 5} more" if len(self.failures) > 5 else ""
        super().__init__(f"{len(self.failures)} of {n_tasks} fragments failed: {detail}{more}")
