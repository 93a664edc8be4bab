"""What the runner needs of an execution technology, and the in-process one.

A back-end starts and stops, says how many fragments it can run at once, submits a job with its
priority, says how many times Parsl (or nothing) had to try it, and says when part of its machinery
is gone for good. Everything else (cache, ordering, progress, stopping, recovering) is the runner's,
the same for every back-end.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ..planning.plan import FragmentTask
from .app import compute_bundle, compute_fragment
from .isolation.client import allow_running, cancel_running


@dataclass(frozen=True)
class Loss:
    """Part of a back-end's machinery gone for good.

    ``what`` says it in a few words for the user; ``restart`` says whether a fresh start of the
    back-end may bring it back (a dead interchange: yes; blocks that never serve: no).
    """

    what: str
    restart: bool


class Backend(ABC):
    """Where fragment jobs run. Futures resolve to :func:`compute_fragment` envelopes, or raise when
    the infrastructure (not the engine) failed."""

    label: str
    #: Whether ``submit`` returns before the job runs (the time it takes is then the driver's cost).
    asynchronous: bool = True

    @abstractmethod
    def start(self) -> None:
        """Acquire what running needs (workers, blocks); a no-op when already started."""

    @abstractmethod
    def stop(self, *, cancel: bool = False) -> None:
        """Release everything. ``cancel``: kill what runs and drop what is queued, instead of
        letting it finish."""

    @property
    @abstractmethod
    def started(self) -> bool: ...

    @property
    @abstractmethod
    def capacity(self) -> int:
        """Fragments that can run at once (every worker of every block)."""

    @property
    def window(self) -> int:
        """Fragments the runner keeps submitted: what can run, plus what the back-end holds ready."""
        return self.capacity

    @abstractmethod
    def submit(self, task: FragmentTask, job: dict[str, Any], priority: int) -> Future:
        """Start ``job`` (the worker's view of ``task``); lower ``priority`` runs first where the
        back-end orders its queue."""

    @abstractmethod
    def submit_bundle(self, tasks: list[FragmentTask], jobs: list[dict[str, Any]], priority: int) -> Future:
        """Start several tiny jobs as one call; the future resolves to their envelopes, in order."""

    def attempts(self, future: Future) -> int:
        """How many times the infrastructure ran the job (1 unless a lost worker was retried)."""
        return 1

    def task_ids(self, future: Future) -> dict[str, Any]:
        """How the infrastructure's own records name the job, for each fragment's provenance; none here."""
        return {}

    def lost(self, finished: int) -> Loss | None:
        """What of the machinery is gone for good, if anything. Asked a few times a second while the
        run waits, so it looks and never asks anything that could block. ``finished``: fragments
        finished so far in the run."""
        return None


class InProcessBackend(Backend):
    """One fragment at a time, in this process's thread (its engine in a child process): the reference
    path, no Parsl involved. ``submit`` returns when the fragment is done."""

    label = "sequential"
    asynchronous = False

    def __init__(self) -> None:
        self._started = False

    def start(self) -> None:
        allow_running()
        self._started = True

    def stop(self, *, cancel: bool = False) -> None:
        if cancel:
            cancel_running()
        self._started = False

    @property
    def started(self) -> bool:
        return self._started

    @property
    def capacity(self) -> int:
        return 1

    def submit(self, task: FragmentTask, job: dict[str, Any], priority: int) -> Future:
        return _done(compute_fragment, job)

    def submit_bundle(self, tasks: list[FragmentTask], jobs: list[dict[str, Any]], priority: int) -> Future:
        return _done(compute_bundle, jobs)


def _done(function: Callable[[Any], Any], argument: Any) -> Future:
    """A future already resolved by calling ``function`` here and now."""
    future: Future = Future()
    try:
        future.set_result(function(argument))
    except Exception as exc:  # noqa: BLE001 - a bug on the worker side is reported per fragment, as on a worker
        future.set_exception(exc)
    return future
