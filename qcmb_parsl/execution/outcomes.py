"""Typed outcomes of fragment tasks: what came back, from where, and why it failed.

Control decisions (what to cache, what to count, what to cancel) read these fields; provenance is a
record for the user and is never read for control.
"""

from __future__ import annotations

import re
import resource
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

__all__ = [
    "Evidence",
    "FailureKind",
    "FragmentFailure",
    "RunReport",
    "RunSummary",
    "Source",
    "TaskResult",
    "return_properties_only",
]


class Source(str, Enum):
    """Where a fragment's result came from."""

    COMPUTED = "computed"
    CACHED = "cached"
    SHARED = "shared"  # an identical fragment under another label was computed in this run


class FailureKind(str, Enum):
    """Why a fragment has no result; one vocabulary for every back-end.

    ``INPUT`` and ``TIMEOUT``/``MEMORY`` repeat if retried; ``CRASHED`` and a transient ``ENGINE``
    error may not; ``LOST_WORKER`` says nothing about the fragment; ``CANCELLED`` means it was never
    allowed to finish (a stop, or its model chemistry already failed with an input error).
    """

    INPUT = "input"
    ENGINE = "engine"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    CRASHED = "crashed"
    LOST_WORKER = "lost_worker"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Evidence:
    """What the engine left behind in one attempt: enough to tell a crash from bad input."""

    exit_status: int | None = None
    signal: str | None = None
    error_type: str | None = None
    error_message: str = ""
    stdout_tail: str = ""
    stderr_tail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evidence:
        return cls(**data)

    def summary(self) -> str:
        """The most telling line: a signal, else the engine's last words, else the exit status."""
        if self.signal:
            return f"engine process killed by {self.signal}"
        for text in (self.error_message, self.stderr_tail, self.stdout_tail):
            if telling(text):
                return telling(text)
        if self.exit_status:
            return f"engine process exited with status {self.exit_status}"
        return "no message"


#: Lines of an engine message that say nothing about the failure.
_BOILERPLATE = re.compile(r"^(NoneType: None|Traceback \(most recent call last\):|File \".*|[-=*_#~.\s]+)$")
#: QCEngine's header of every error message: the failure's kind says the same.
_QCENGINE_HEADER = re.compile(r"^QCEngine [A-Za-z ]*Error:\s*")
#: QCEngine's ``error_stamp``: the input, the engine's stdout and stderr, and a traceback.
_STAMP = re.compile(
    r"INPUT:\n(?P<input>.*?)STDOUT:\n(?P<stdout>.*?)\nSTDERR:\n(?P<stderr>.*?)\nTRACEBACK:\n(?P<traceback>.*)\Z",
    re.DOTALL,
)


def engine_stamp(message: str) -> dict[str, str] | None:
    """The sections of a QCEngine error stamp (how stock harnesses report a failed executable), if
    ``message`` is one: the engine's own words are in its stdout and stderr, not in the traceback."""
    found = _STAMP.search(message)
    return None if found is None else found.groupdict()


def telling(text: str) -> str:
    """An engine message on one line: a short message whole; from a QCEngine error stamp, the first
    words of the engine's stderr, else the telling line of its stdout; from anything else long (a
    traceback, an output dump), its last line that is not boilerplate.

    The stamp's stderr is read from the top: the programs QCEngine stamps (NWChem, GAMESS, CFOUR) write
    their error first, and what follows is its echo through the MPI runtime (NWChem's "ARMCI Error:
    ..." is followed by Open MPI's MPI_ABORT notice, or by an ORTE_ERROR_LOG line of its daemon).
    """
    stamp = engine_stamp(text)
    if stamp is not None:
        first = next(iter(_telling_lines(stamp["stderr"])), "")
        return first or telling(stamp["stdout"]) or telling(stamp["traceback"])
    lines = _telling_lines(text)
    if not lines:
        return ""
    line = " ".join(lines) if len(lines) <= 3 else lines[-1]
    return _QCENGINE_HEADER.sub("", line)


def _telling_lines(text: str) -> list[str]:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return [line for line in lines if not _BOILERPLATE.match(line)]


@dataclass(frozen=True)
class FragmentFailure:
    """A fragment that did not succeed: its kind, the reason, and each attempt's evidence."""

    label: str
    program: str
    kind: FailureKind
    message: str
    error_type: str | None = None
    attempts: int = 1
    evidence: tuple[Evidence, ...] = ()

    def reason(self) -> str:
        """One line: the message, or the telling line of a multi-line engine message."""
        return telling(self.message or "") or "no message"

    def one_line(self) -> str:
        return f"{self.label} [{self.program}] {self.kind.value}: {self.reason()}"

    def full(self) -> str:
        """Every attempt's evidence, for a report or a log; several lines."""
        parts = [self.one_line()]
        for number, evidence in enumerate(self.evidence, start=1):
            parts.append(f"  attempt {number}: {evidence.summary()}")
            if evidence.exit_status is not None or evidence.signal:
                parts.append(f"    exit status {evidence.exit_status}, signal {evidence.signal}")
            for name in ("stdout_tail", "stderr_tail"):
                tail = getattr(evidence, name).strip()
                if tail:
                    parts.append(f"    {name.removesuffix('_tail')}:")
                    parts.extend(f"      {line}" for line in tail.splitlines())
        return "\n".join(parts)

    def with_label(self, label: str) -> FragmentFailure:
        return FragmentFailure(
            label, self.program, self.kind, self.message, self.error_type, self.attempts, self.evidence
        )


@dataclass(slots=True)
class TaskResult:
    """One fragment's outcome: the AtomicResult as QCSchema JSON, or the failure, plus where and how long.

    ``result`` is the engine's output dict (an ``AtomicResult``, or the ``FailedOperation`` of a failure
    when the engine got that far); models are built from it only at assembly, in the schema version
    the caller asked for. Of a successful fragment whose task does not keep its result
    (:attr:`~qcmb_parsl.planning.plan.FragmentTask.keep_result`) it is
    ``{"properties": {...}}`` with the return energy, gradient and Hessian the engine gave
    (:func:`return_properties_only`), the same in either schema version.
    """

    label: str
    result: dict[str, Any] | None
    source: Source = Source.COMPUTED
    failure: FragmentFailure | None = None
    wall_time: float = 0.0
    attempts: int = 1
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.failure is None

    @property
    def cached(self) -> bool:
        return self.source is Source.CACHED

    @property
    def shared(self) -> bool:
        return self.source is Source.SHARED

    @property
    def error(self) -> str | None:
        return None if self.failure is None else self.failure.message

    @property
    def error_type(self) -> str | None:
        return None if self.failure is None else self.failure.kind.value


#: The properties upstream's ``analyze`` reads of a fragment (``ManyBodyComputer.from_manybodyinput``).
RETURN_PROPERTIES = ("return_energy", "return_gradient", "return_hessian")


def return_properties_only(result: dict[str, Any]) -> dict[str, Any]:
    """An AtomicResult dict cut down to the return properties it has (not None)."""
    properties = result.get("properties") or {}
    return {
        "properties": {
            name: properties[name] for name in RETURN_PROPERTIES if properties.get(name) is not None
        }
    }


@dataclass
class RunSummary:
    """Counts and times of one execution, stored in ``ManyBodyResult.extras["qcmb_parsl"]``.

    Where the wall time went: ``started`` is the run's start (epoch seconds); ``startup_time`` the
    seconds until the first computed fragment's engine began (starting Parsl, its workers and their
    engine templates, when the run had to); ``fragments_time`` the seconds from then until the last
    computed fragment ended; ``engine_time`` the engines' own seconds summed over every computed
    fragment (the chemistry, on however many workers). ``workers`` is how many fragments could run
    at once.
    """

    executor: str
    n_tasks: int = 0
    n_cached: int = 0
    n_executed: int = 0
    n_shared: int = 0
    n_failed: int = 0
    wall_time: float = 0.0
    cache_dir: str | None = None
    plan_time: float = 0.0
    driver_cpu_time: float = 0.0
    driver_peak_rss_mib: float = 0.0
    started: float = 0.0
    workers: int = 0
    startup_time: float = 0.0
    fragments_time: float = 0.0
    engine_time: float = 0.0

    @property
    def driver_time_per_task_ms(self) -> float:
        """Driver CPU (planning, keys, cache, submission, collection) per fragment task."""
        return 1000 * (self.plan_time + self.driver_cpu_time) / max(self.n_tasks, 1)

    def count(self, results: dict[str, TaskResult]) -> None:
        """Fill the counts from typed outcomes: computed, cached, shared, failed."""
        self.n_tasks = len(results)
        self.n_cached = sum(r.source is Source.CACHED for r in results.values())
        self.n_shared = sum(r.source is Source.SHARED for r in results.values())
        self.n_executed = self.n_tasks - self.n_cached - self.n_shared
        self.n_failed = sum(not r.success for r in results.values())

    def clock(self, results: dict[str, TaskResult]) -> None:
        """Fill the start-up, fragments and engine times from the computed fragments' provenance."""
        spans = [
            (float(r.provenance["started"]), float(r.provenance["started"]) + r.wall_time)
            for r in results.values()
            if r.source is Source.COMPUTED and r.provenance.get("started") is not None
        ]
        if not spans or not self.started:
            return
        first, last = min(begin for begin, _ in spans), max(end for _, end in spans)
        self.startup_time = max(first - self.started, 0.0)
        self.fragments_time = last - first
        self.engine_time = sum(
            r.wall_time for r in results.values() if r.source is Source.COMPUTED and r.success
        )

    def record_driver_usage(self) -> None:
        self.driver_peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "driver_time_per_task_ms": self.driver_time_per_task_ms}


@dataclass
class RunReport:
    """Everything one execution produced; results keep the order of the tasks given."""

    results: dict[str, TaskResult]
    summary: RunSummary
    failures: list[FragmentFailure] = field(default_factory=list)
