"""The run loop, the same for every back-end: cache, dedup, order, submit, collect, store, stop.

1. Every fragment's cache key is computed and the cache asked once for all of them; hits are answered
   at once and never reach a back-end.
2. Identical fragments (same key under different labels) are computed once and shared.
3. The rest are submitted longest first, about as many at a time as the back-end can run, so that a
   stop or a cancellation has little queued work to throw away.
4. Each result is stored in the cache the moment it arrives, before anything else happens.
5. A fragment that fails with an input error cancels the fragments of its model chemistry not yet
   submitted: the same input error would repeat in every one of them.
6. SIGINT, SIGTERM or SIGHUP stops the run at a safe point: nothing more is submitted, what runs is
   killed, the back-end is shut down, and :class:`~qcmb_parsl.errors.RunInterrupted` says what was kept.
7. The back-end's machinery is watched while the run waits (:meth:`Backend.lost`): when it is gone
   (a dead interchange), the back-end is started afresh and the fragments that were in flight are
   submitted again as lost workers, without spending their ``max_retries``; when it cannot come back,
   every fragment not finished fails as a lost worker naming what was lost, and the run ends with
   what it has.
"""

from __future__ import annotations

import json
import logging
import queue
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..cache import FragmentEntry, task_keys
from ..engines.programs import check_programs, program_versions
from ..errors import CacheError, InputError, RunInterrupted
from ..gc_pause import collector_frozen
from ..planning.plan import FragmentTask
from ..schema import convert_atomic_result
from .backends import Backend, Loss
from .jobs import JobSettings
from .lanes import LANE_ROUNDS, annotate
from .ordering import Calibration, Order, calibrate, estimate_seconds, log_plan, order_tasks
from .outcomes import (
    Evidence,
    FailureKind,
    FragmentFailure,
    RunReport,
    RunSummary,
    Source,
    TaskResult,
    return_properties_only,
)
from .progress import ProgressDisplay, ProgressMode, make_progress
from .retry import MAX_FREE_RETRIES, is_infrastructure_failure
from .stops import signals_deferred, signals_ignored, stop_on_signals

if TYPE_CHECKING:
    from ..cache import CachedFragment, FragmentCache

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]

#: Seconds between looks at the queue of finished fragments: how soon a stop signal is acted on.
_POLL = 0.25
#: Seconds a bundle of tiny fragments should last: results come back at least this often, and one
#: round trip and one engine process serve every fragment in it.
DEFAULT_BUNDLE_SECONDS = 0.5
#: Fragments per bundle at most, however tiny.
MAX_BUNDLE = 256
#: Bundles last this many times what the driver needs to give every worker a call, so it keeps ahead.
FEED_MARGIN = 2.0
#: Weight of the newest call in the driver's smoothed time per call.
DISPATCH_SMOOTHING = 0.05
#: Seconds between looks at the back-end's machinery.
WATCH_PERIOD = 0.5
#: Fresh starts of a back-end, with no fragment finishing in between, before the run gives up on it.
MAX_RESTARTS = 3


@dataclass
class Runner:
    """One executor's way of running fragment tasks.

    Parameters
    ----------
    backend
        Where jobs run.
    settings
        How each fragment runs (resources, limits, retries, isolation).
    cache
        The fragment cache, or None.
    order
        ``"cost"``: longest expected fragment first; ``"fifo"``: as planned.
    progress
        ``"auto"``, ``"bar"``, ``"log"`` or False.
    check_programs
        Verify before submission that QCEngine finds each program where the driver runs.
    bundle_seconds
        Fragments expected to take less than half this are packed into app calls lasting about this
        long (one round trip, one engine process for all of them); 0 turns bundling off.

    ``cold`` says that the back-end's workers have computed nothing since it (re)started: the next
    run's progress display shows its start-up as a phase of its own.
    """

    backend: Backend
    settings: JobSettings
    cache: FragmentCache | None = None
    order: Order = "cost"
    progress: ProgressMode = False
    check_programs: bool = True
    bundle_seconds: float = DEFAULT_BUNDLE_SECONDS
    cold: bool = True

    def run(
        self, tasks: Iterable[FragmentTask], progress_callback: ProgressCallback | None = None
    ) -> RunReport:
        start, cpu_start = time.perf_counter(), time.thread_time()
        tasks = list(tasks)
        _check_unique_labels(tasks)
        summary = RunSummary(
            executor=self.backend.label,
            n_tasks=len(tasks),
            started=time.time(),
            workers=self.backend.capacity,
        )
        if self.cache is not None:
            summary.cache_dir = str(self.cache.directory)
        if not tasks:
            return RunReport({}, summary)

        versions = self._program_versions(tasks)
        keys = task_keys(tasks, versions)
        groups: dict[str, list[FragmentTask]] = {}
        for task in tasks:
            groups.setdefault(keys[task.label], []).append(task)
        hits = self._look_up(groups)
        run = _Run(
            self, tasks, keys, groups, versions, make_progress(self.progress, len(tasks), self.backend.label)
        )
        run.progress_callback = progress_callback
        try:
            # The tasks and keys live as long as the run: the collector's full walks skip them.
            with collector_frozen(), stop_on_signals():
                missed = [group[0] for key, group in groups.items() if key not in hits]
                while hits:  # each hit's text dropped as soon as it is recorded: 3 KB a fragment
                    key, hit = hits.popitem()
                    for task in groups[key]:
                        run.record(_cached_result(task, hit, self.backend.label))
                factors = calibrate(tasks, {r.label: r.wall_time for r in run.results.values()})
                estimate_seconds(tasks, factors)
                run.calibration = Calibration(factors)
                leaders = order_tasks(missed, self.order)
                if leaders:
                    run.execute(leaders)
        except RunInterrupted as stop:
            stop.kept, stop.total = (
                len(run.results) - sum(not r.success for r in run.results.values()),
                len(tasks),
            )
            stop.report = run.report(summary, start, cpu_start)
            stop.cached = self.cache is not None
            raise
        finally:
            run.display.close()
        return run.report(summary, start, cpu_start)

    def _program_versions(self, tasks: list[FragmentTask]) -> dict[str, str | None]:
        programs = sorted({task.program for task in tasks})
        if self.check_programs:
            check_programs(programs)
        return program_versions(programs) if self.cache is not None else {}

    def _look_up(self, groups: dict[str, list[FragmentTask]]) -> dict[str, CachedFragment]:
        if self.cache is None:
            return {}
        return self.cache.get_many({key: group[0].atomic_input for key, group in groups.items()})


class _Run:
    """The state of one run: results so far, what is in flight, which model chemistries are doomed."""

    def __init__(
        self,
        runner: Runner,
        tasks: list[FragmentTask],
        keys: dict[str, str],
        groups: dict[str, list[FragmentTask]],
        versions: dict[str, str | None],
        display: ProgressDisplay,
    ):
        self.runner = runner
        self.backend = runner.backend
        self.tasks = tasks
        self.keys = keys
        self.groups = groups
        self.versions = versions
        self.display = display
        self.results: dict[str, TaskResult] = {}
        self.doomed: dict[str, FragmentFailure] = {}
        self.progress_callback: ProgressCallback | None = None
        self.calibration = Calibration({})
        #: The driver's time per submitted call, smoothed: what sizes bundles at scale.
        self.dispatch_seconds = 0.0
        #: Label -> times the fragment was in flight when its back-end's machinery was lost.
        self.lost_tries: dict[str, int] = {}
        self.next_look = 0.0
        self.restarts = _Restarts()

    def record(self, result: TaskResult) -> None:
        self.results[result.label] = result
        self.display.update(result)
        if self.progress_callback is not None:
            self.progress_callback(result.label, len(self.results), len(self.tasks))

    def execute(self, leaders: list[FragmentTask]) -> None:
        """Submit in order, about as many at a time as can run; collect and store as they finish."""
        owned = not self.backend.started
        log_plan(leaders, self.backend.capacity)
        if owned or self.runner.cold:
            self.runner.cold = True
            self.display.starting(self.backend.capacity)
        stopped = True
        try:
            if owned:
                self.backend.start()
            self._loop(leaders)
            stopped = False
        except RunInterrupted as stop:
            done = sum(result.success for result in self.results.values())
            logger.warning(
                "stopping on %s: %d of %d fragments done and kept; killing what runs, shutting %s down",
                signal.Signals(stop.signum).name,
                done,
                len(self.tasks),
                self.backend.label,
            )
            raise
        finally:
            if stopped or owned:
                with signals_ignored():
                    self.backend.stop(cancel=stopped)

    def _loop(self, leaders: list[FragmentTask]) -> None:
        pending = deque(leaders)
        in_flight: dict[Future, list[FragmentTask]] = {}
        finished: queue.SimpleQueue[Future] = queue.SimpleQueue()
        window = max(self.backend.window, 1)
        priority = 0
        while pending or in_flight:
            while pending and len(in_flight) < window:
                groups = self._next_call(pending, len(in_flight))
                if not groups:
                    continue
                began = time.perf_counter()
                bundle = [task for group in groups for task in group]
                job_groups = [[self.runner.settings.job(task) for task in group] for group in groups]
                jobs = annotate(job_groups) if len(groups) > 1 else job_groups[0]
                if len(bundle) == 1:
                    future = self.backend.submit(bundle[0], jobs[0], priority)
                else:
                    future = self.backend.submit_bundle(bundle, jobs, priority)
                if self.backend.asynchronous:  # else submitting is computing, not the driver's cost
                    took = time.perf_counter() - began
                    self.dispatch_seconds += DISPATCH_SMOOTHING * (took - self.dispatch_seconds)
                priority += 1
                in_flight[future] = bundle
                self.display.submitted(len(bundle))
                future.add_done_callback(finished.put)
            if not in_flight:
                continue
            try:
                done: Future | None = finished.get(timeout=_POLL)
            except queue.Empty:
                done = None
            if time.monotonic() >= self.next_look:
                self._look(pending, in_flight)
            if done is None or done not in in_flight:  # nothing, or a call of a session given up for lost
                continue
            bundle = in_flight.pop(done)
            self.runner.cold = False
            self.display.returned(len(bundle))
            self._finish_call(bundle, self._collect(bundle, done))

    def _look(self, pending: deque[FragmentTask], in_flight: dict[Future, list[FragmentTask]]) -> None:
        """Recover from machinery the back-end has lost: a fresh start and the calls in flight again,
        or, when it cannot come back, every fragment not finished failed with what was lost."""
        self.next_look = time.monotonic() + WATCH_PERIOD
        loss = self.backend.lost(len(self.results))
        if loss is None:
            return
        lost = [task for bundle in in_flight.values() for task in bundle]
        self.display.returned(len(lost))
        in_flight.clear()
        why_not = self._restart(loss, len(lost)) if loss.restart else ""
        if why_not is not None:
            for task in [*lost, *pending]:
                self._finish(task, _lost(task, loss, why_not), None)
            pending.clear()
            return
        again = []
        for task in lost:
            self.lost_tries[task.label] = tries = self.lost_tries.get(task.label, 0) + 1
            if tries > MAX_FREE_RETRIES:
                self._finish(task, _lost(task, loss, f"; lost {tries} times with its machinery"), None)
            else:
                again.append(task)
        pending.extendleft(reversed(again))

    def _restart(self, loss: Loss, in_flight: int) -> str | None:
        """Start the back-end afresh; None when it is up again, else why not (for the failures)."""
        if self.restarts.stalled(len(self.results)):
            return f"; started afresh {MAX_RESTARTS} times without a fragment finishing"
        logger.warning(
            "%s: starting %s afresh, %d fragments that were in flight submitted again",
            loss.what,
            self.backend.label,
            in_flight,
        )
        with signals_deferred():
            self.backend.stop(cancel=True)
        try:
            self.backend.start()
        except Exception as exc:  # noqa: BLE001 - the reason is every remaining fragment's failure
            logger.error("%s could not be started afresh: %s", self.backend.label, exc)
            return f"; {self.backend.label} could not be started afresh: {exc}"
        return None

    def _next_call(self, pending: deque[FragmentTask], in_flight: int) -> list[list[FragmentTask]]:
        """The groups of the next call: one group (:meth:`_next`), or, on workers with several lanes,
        up to ``LANE_ROUNDS`` groups per lane and no more fragments than the call's share of those
        pending among the workers without a call."""
        lanes = self.runner.settings.lanes_per_worker
        if lanes == 1:
            group = self._next(pending, in_flight)
            return [group] if group else []
        free = self.backend.capacity - in_flight
        share = fair_share(len(pending), free)
        groups: list[list[FragmentTask]] = []
        taken = 0
        while pending and taken < share and len(groups) < lanes * LANE_ROUNDS:
            group = self._next(pending, in_flight, lanes, share - taken)
            if group:
                groups.append(group)
                taken += len(group)
        return groups

    def _next(
        self, pending: deque[FragmentTask], in_flight: int, lanes: int = 1, most: int = MAX_BUNDLE
    ) -> list[FragmentTask]:
        """The next group of a call: one fragment, or consecutive tiny ones packed to about
        ``bundle_seconds``, no more than ``most`` nor their share of the lanes of the workers without
        a call (``in_flight`` calls occupy the others). Cancelled fragments are finished on the way
        and never submitted."""
        task = pending.popleft()
        if task.mc in self.doomed:
            self._finish(task, _cancelled(task, self.doomed[task.mc]), None)
            return []
        bundle, target = [task], self._bundle_target(len(pending))
        expected = self.calibration.seconds(task)
        if expected is None or expected >= target / 2:
            return bundle
        free = (self.backend.capacity - in_flight) * lanes
        total, limit = expected, min(MAX_BUNDLE, most, fair_share(len(pending) + 1, free))
        while pending and len(bundle) < limit:
            following = pending[0]
            seconds = self.calibration.seconds(following)
            if following.mc in self.doomed or seconds is None or total + seconds > target:
                break
            bundle.append(pending.popleft())
            total += seconds
        return bundle

    def _bundle_target(self, pending: int) -> float:
        return bundle_target(
            self.runner.bundle_seconds, self.backend.capacity, self.dispatch_seconds, pending
        )

    def _finish(self, task: FragmentTask, result: TaskResult, result_json: str | None) -> None:
        """Store, then record the fragment and its twins: a stop waits until this is done."""
        self._finish_call([task], [(result, result_json)])

    def _finish_call(self, tasks: list[FragmentTask], outcomes: list[tuple[TaskResult, str | None]]) -> None:
        """Store the successes of one call in one transaction, then record each fragment and its twins;
        a stop waits until this is done."""
        with signals_deferred():
            if self.runner.cache is not None:
                self._store(self.runner.cache, tasks, outcomes)
            for task, (result, _) in zip(tasks, outcomes, strict=True):
                whole = result.result  # stored whole above; each task keeps what it asks for
                if whole is not None and result.success and not task.keep_result:
                    result.result = return_properties_only(whole)
                self.record(result)
                for twin in self.groups[self.keys[task.label]][1:]:
                    self.record(_shared_result(twin, result, whole))
                if result.failure is not None and result.failure.kind is FailureKind.INPUT:
                    self.doomed.setdefault(task.mc, result.failure)

    def _collect(self, bundle: list[FragmentTask], future: Future) -> list[tuple[TaskResult, str | None]]:
        """TaskResult of each fragment of a finished call, and each result's JSON text for the cache."""
        infrastructure_tries = self.backend.attempts(future)
        try:
            returned = future.result()
        except Exception as exc:  # noqa: BLE001 - every failure is reported per fragment
            kind = FailureKind.LOST_WORKER if is_infrastructure_failure(exc) else FailureKind.CRASHED
            message = f"{type(exc).__name__}: {exc}"
            results: list[tuple[TaskResult, str | None]] = []
            for task in bundle:
                tries = infrastructure_tries + self.lost_tries.get(task.label, 0)
                failure = FragmentFailure(task.label, task.program, kind, message, attempts=tries)
                results.append((TaskResult(task.label, None, failure=failure, attempts=tries), None))
            return results
        envelopes = returned if isinstance(returned, list) else [returned]
        task_ids = self.backend.task_ids(future)
        return [
            self._unpack(task, envelope, infrastructure_tries, task_ids)
            for task, envelope in zip(bundle, envelopes, strict=True)
        ]

    def _unpack(
        self,
        task: FragmentTask,
        envelope: dict[str, Any],
        infrastructure_tries: int,
        task_ids: dict[str, Any],
    ) -> tuple[TaskResult, str | None]:
        lost = self.lost_tries.get(task.label, 0)
        attempts = int(envelope["provenance"]["attempts"]) + infrastructure_tries + lost - 1
        provenance = {
            **envelope["provenance"],
            "attempts": attempts,
            "executor": self.backend.label,
            **task_ids,
            "source": Source.COMPUTED.value,
            "cache": "miss",
        }
        result_json = envelope["result_json"]
        result = None if result_json is None else json.loads(result_json)
        failure = None
        if envelope["failure"] is not None:
            failure = FragmentFailure(
                task.label,
                task.program,
                FailureKind(envelope["failure"]["kind"]),
                envelope["failure"]["message"],
                envelope["failure"]["error_type"],
                attempts,
                tuple(Evidence.from_dict(e) for e in envelope["evidence"]),
            )
        else:
            self.calibration.observe(task, provenance["wall_time"])
            if envelope["evidence"]:
                _note_earlier_attempts(task, provenance, envelope["evidence"])
        task_result = TaskResult(
            task.label, result, Source.COMPUTED, failure, provenance["wall_time"], attempts, provenance
        )
        return task_result, result_json if failure is None else None

    def _store(
        self, cache: FragmentCache, tasks: list[FragmentTask], outcomes: list[tuple[TaskResult, str | None]]
    ) -> None:
        """Keep the successes now; a cache that cannot be written costs reruns, never this run's results."""
        done = {
            self.keys[task.label]: (task, result, result_json)
            for task, (result, result_json) in zip(tasks, outcomes, strict=True)
            if result.success and result_json is not None
        }
        if not done:
            return
        entries = [
            FragmentEntry(
                key,
                task.program,
                self.versions.get(task.program),
                task.atomic_input,
                result_json,
                result.wall_time,
                result.provenance,
                result.result,
            )
            for key, (task, result, result_json) in done.items()
        ]
        try:
            refused = cache.put_many(entries)
        except CacheError as exc:
            more = f" and {len(done) - 1} more of its call" if len(done) > 1 else ""
            logger.error("fragment %s%s not cached: %s", done[entries[0].key][0].label, more, exc)
            return
        # The cache keeps only a result that answers its request (records.py).
        for entry, reason in refused:
            label = done[entry.key][0].label
            logger.error("fragment %s not cached: its result does not fit its request (%s)", label, reason)

    def report(self, summary: RunSummary, start: float, cpu_start: float) -> RunReport:
        ordered = {task.label: self.results[task.label] for task in self.tasks if task.label in self.results}
        failures = [result.failure for result in ordered.values() if result.failure is not None]
        summary.count(ordered)
        summary.clock(ordered)
        summary.n_tasks = len(self.tasks)
        summary.wall_time = time.perf_counter() - start
        summary.driver_cpu_time = time.thread_time() - cpu_start
        summary.record_driver_usage()
        return RunReport(ordered, summary, failures)


def bundle_target(bundle_seconds: float, capacity: int, dispatch_seconds: float, pending: int) -> float:
    """Seconds a bundle should last: ``bundle_seconds``, or longer while the driver could not feed
    every worker one call at a time.

    One call costs the driver ``dispatch_seconds``, so it starts at most ``1 / dispatch_seconds``
    calls a second; ``capacity`` workers each wanting a new call every ``t`` seconds need
    ``t >= capacity * dispatch_seconds``. With 10^4 workers and a millisecond per call that is 10 s:
    then fragments of a few seconds travel a few to a call. Near the end of a run (fewer ``pending``
    fragments than two per worker) bundles go back to ``bundle_seconds``, so that the last fragments
    spread over every worker.
    """
    if not bundle_seconds or pending < 2 * capacity:
        return bundle_seconds
    return max(bundle_seconds, FEED_MARGIN * capacity * dispatch_seconds)


def fair_share(remaining: int, free_workers: int) -> int:
    """Most fragments one call may take of the ``remaining`` ones: a call for every worker without one
    while there are fragments to share, so that a small run uses every worker (six tiny fragments on
    two idle workers travel in two calls of three, never in one of six)."""
    return max(-(-remaining // max(free_workers, 1)), 1)


def _check_unique_labels(tasks: list[FragmentTask]) -> None:
    seen: set[str] = set()
    for task in tasks:
        if task.label in seen:
            raise InputError(f"fragment label {task.label} appears twice in the task list")
        seen.add(task.label)


def _cancelled(task: FragmentTask, cause: FragmentFailure) -> TaskResult:
    """A fragment not run because its model chemistry already failed with an input error."""
    message = f"not run: model chemistry {task.mc!r} has an input error ({cause.label}: {cause.reason()})"
    return TaskResult(
        task.label, None, failure=FragmentFailure(task.label, task.program, FailureKind.CANCELLED, message)
    )


def _lost(task: FragmentTask, loss: Loss, why_not: str) -> TaskResult:
    """A fragment not finished because the back-end's machinery was lost and did not come back."""
    failure = FragmentFailure(
        task.label, task.program, FailureKind.LOST_WORKER, f"not run: {loss.what}{why_not}"
    )
    return TaskResult(task.label, None, failure=failure)


def _note_earlier_attempts(
    task: FragmentTask, provenance: dict[str, Any], evidence: list[dict[str, Any]]
) -> None:
    """A fragment that failed before it succeeded keeps each failed attempt's evidence, and says so."""
    provenance["earlier_attempts"] = evidence
    logger.info(
        "fragment %s succeeded on attempt %d after: %s",
        task.label,
        provenance["attempts"],
        "; ".join(Evidence.from_dict(attempt).summary() for attempt in evidence),
    )


class _Restarts:
    """How many fresh starts of the back-end came in a row with no fragment finishing in between."""

    def __init__(self) -> None:
        self._results = -1
        self._in_a_row = 0

    def stalled(self, results: int) -> bool:
        """Count a fresh start at ``results`` finished fragments; True when one too many came in a row."""
        self._in_a_row = self._in_a_row + 1 if results == self._results else 1
        self._results = results
        return self._in_a_row > MAX_RESTARTS


def _kept(task: FragmentTask, whole: dict[str, Any] | None, success: bool) -> dict[str, Any] | None:
    """What the run keeps of a fragment's result dict for ``task``: only the return properties of a
    success whose task does not keep its result, else all of it in the task's schema version (a
    failure's FailedOperation is evidence)."""
    if whole is None:
        return None
    if success and not task.keep_result:
        return return_properties_only(whole)
    return convert_atomic_result(whole, task.schema_version)


def _shared_result(task: FragmentTask, computed: TaskResult, whole: dict[str, Any] | None) -> TaskResult:
    """The outcome of an identical fragment computed under another label (another input, say), from the
    computed one's ``whole`` result dict."""
    result = _kept(task, whole, computed.success)
    provenance = {**computed.provenance, "source": Source.SHARED.value, "shared_with": computed.label}
    failure = None if computed.failure is None else computed.failure.with_label(task.label)
    return replace(
        computed,
        label=task.label,
        result=result,
        source=Source.SHARED,
        failure=failure,
        provenance=provenance,
    )


def _cached_result(task: FragmentTask, hit: Any, executor: str) -> TaskResult:
    provenance = {**hit.provenance, "source": Source.CACHED.value, "cache": "hit", "executor": executor}
    return TaskResult(
        task.label,
        _kept(task, json.loads(hit.result_json), success=True),
        Source.CACHED,
        wall_time=hit.wall_time,
        attempts=0,
        provenance=provenance,
    )
