"""Executors: run fragment tasks, with cache look-ups first and each result kept the moment it arrives.

Two executors share one run loop (:class:`FragmentExecutor`): :class:`ParslExecutor` submits each
fragment as a Parsl app, :class:`SequentialExecutor` calls the same worker function in this process,
one after another, as the reference path without Parsl.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import resource
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from parsl.config import Config
from parsl.dataflow.dflow import DataFlowKernel
from parsl.executors import HighThroughputExecutor

from ..cache import task_keys
from ..engines.programs import check_programs, program_versions
from ..errors import CacheError, ConfigurationError, FragmentFailure, InputError
from ..planning.plan import FragmentTask
from ..presets.loader import ConfigSource, resolve_config
from ..resources import WorkerResources, thread_environment
from .app import compute_fragment, fragment_app
from .ordering import Order, calibrate, estimate_seconds, log_plan, order_tasks
from .outcomes import TaskResult, in_schema_version
from .progress import ProgressDisplay, make_progress
from .retry import classify_exception, retry_cost

if TYPE_CHECKING:
    from ..cache import FragmentCache

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]
CacheSetting = bool | str | os.PathLike | None


@dataclass
class RunSummary:
    """Counts and times of one execution, stored in ``ManyBodyResult.extras["qcmb_parsl"]``."""

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

    @property
    def driver_time_per_task_ms(self) -> float:
        """Driver CPU (planning, keys, cache, submission, collection) per fragment task."""
        return 1000 * (self.plan_time + self.driver_cpu_time) / max(self.n_tasks, 1)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "driver_time_per_task_ms": self.driver_time_per_task_ms}


@dataclass
class RunReport:
    """Everything one execution produced; results keep the order of the tasks given."""

    results: dict[str, TaskResult]
    summary: RunSummary
    failures: list[FragmentFailure] = field(default_factory=list)


class FragmentExecutor:
    """The run loop shared by all executors: cache, submit in cost order, collect, cache again.

    Parameters
    ----------
    resources
        What each fragment may use (cores, memory, scratch): becomes QCEngine's task_config.
    max_workers
        Fragments running side by side on a node; sizes the default memory per fragment.
    cache
        ``True`` for the default cache directory, a path for another one, ``False``/``None`` for none.
    timeout_per_task
        Seconds after which a fragment is abandoned and reported as a timeout.
    progress
        ``"auto"`` (a live bar on a terminal, log lines otherwise), ``"bar"``, ``"log"`` or ``False``.
    check_programs
        Verify before submission that QCEngine finds each program on this machine. Turn off only
        when the programs exist on the compute nodes but not where the driver runs.
    order
        ``"cost"``: longest expected fragment first (default); ``"fifo"``: in planned order.
    """

    label = "sequential"

    def __init__(
        self,
        resources: WorkerResources | None = None,
        *,
        max_workers: int = 1,
        cache: CacheSetting = False,
        timeout_per_task: float | None = None,
        progress: bool | Literal["auto", "bar", "log"] = False,
        check_programs: bool = True,
        order: Order = "cost",
    ):
        if order not in ("cost", "fifo"):
            raise ConfigurationError(f"order must be 'cost' or 'fifo', got {order!r}")
        if timeout_per_task is not None and timeout_per_task <= 0:
            raise ConfigurationError(f"timeout_per_task must be positive, got {timeout_per_task}")
        self.resources = resources or WorkerResources()
        self.max_workers = max_workers
        self.timeout_per_task = timeout_per_task
        self.progress = progress
        self.check_programs = check_programs
        self.order = order
        self.cache = _open_cache(cache)

    # -- public API -----------------------------------------------------------------------------

    def execute(
        self, tasks: Iterable[FragmentTask], progress_callback: ProgressCallback | None = None
    ) -> dict[str, TaskResult]:
        """Run ``tasks``; label -> TaskResult, failures included (see :meth:`run` for the summary)."""
        return self.run(tasks, progress_callback).results

    def run(self, tasks: Iterable[FragmentTask], progress_callback: ProgressCallback | None = None) -> RunReport:
        """Run ``tasks``: cache hits answered at once, identical fragments computed once, the rest
        submitted longest first, each result cached the moment it arrives."""
        start, cpu_start = time.perf_counter(), time.thread_time()
        tasks = list(tasks)
        _check_unique_labels(tasks)
        summary = RunSummary(executor=self.label, n_tasks=len(tasks))
        if self.cache is not None:
            summary.cache_dir = str(self.cache.directory)
        if not tasks:
            return RunReport({}, summary)

        versions = self._program_versions(tasks)
        keys = task_keys(tasks, versions)
        requests = {keys[task.label]: task.atomic_input for task in tasks}
        hits = self.cache.get_many(requests) if self.cache is not None else {}
        sharing: dict[str, list[FragmentTask]] = {}
        for task in tasks:
            sharing.setdefault(keys[task.label], []).append(task)

        results: dict[str, TaskResult] = {}
        display = make_progress(self.progress, len(tasks), self.label)

        def record(result: TaskResult) -> None:
            results[result.label] = result
            display.update(result)
            if progress_callback is not None:
                progress_callback(result.label, len(results), len(tasks))

        try:
            for key, group in sharing.items():
                if key in hits:
                    for task in group:
                        record(_result_from_cache(task, hits[key], self.label))
            summary.n_cached = len(results)
            estimate_seconds(tasks, calibrate(tasks, {r.label: r.wall_time for r in results.values()}))
            leaders = order_tasks([group[0] for key, group in sharing.items() if key not in hits], self.order)
            log_plan(leaders, self.max_workers)
            summary.n_executed = len(leaders)
            if leaders:
                with self.session():
                    for task, result, result_json in self._run_pending(leaders, display):
                        key = keys[task.label]
                        if result.success and self.cache is not None:
                            self._store(task, result, result_json, key, versions)
                        record(result)
                        for twin in sharing[key][1:]:
                            record(_shared_result(twin, result))
        finally:
            display.close()

        failures = [
            FragmentFailure(task.label, task.program, r.error_type or "unknown_error", r.error or "", r.attempts)
            for task in tasks
            if not (r := results[task.label]).success
        ]
        summary.n_failed = len(failures)
        summary.n_shared = len(tasks) - summary.n_cached - summary.n_executed
        summary.wall_time = time.perf_counter() - start
        summary.driver_cpu_time = time.thread_time() - cpu_start
        summary.driver_peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ordered = {task.label: results[task.label] for task in tasks}
        return RunReport(ordered, summary, failures)

    @contextmanager
    def session(self) -> Iterator[FragmentExecutor]:
        """Resources held for a run; nothing to hold for the sequential path."""
        yield self

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()

    # -- the parts executors specialise -------------------------------------------------------------

    def _submit(self, task: FragmentTask, priority: int) -> Future:
        """Start ``task``; the future resolves to compute_fragment's envelope."""
        raise NotImplementedError

    def _attempts(self, future: Future) -> int:
        return 1

    # -- internals ----------------------------------------------------------------------------------

    def _run_pending(
        self, pending: list[FragmentTask], display: ProgressDisplay
    ) -> Iterator[tuple[FragmentTask, TaskResult, str | None]]:
        """Submit in order, handing back each result as soon as it is done, submission or not.

        Submitting 10^4 fragments takes the driver tens of seconds; fragments finishing meanwhile
        are cached right away instead of after the last submission.
        """
        finished: queue.SimpleQueue[Future] = queue.SimpleQueue()
        futures: dict[Future, FragmentTask] = {}
        for priority, task in enumerate(pending):
            future = self._submit(task, priority)
            futures[future] = task
            display.submitted()
            future.add_done_callback(finished.put)
            while not finished.empty():
                done = finished.get_nowait()
                yield (futures[done], *self._collect(futures.pop(done), done))
        while futures:
            done = finished.get()
            yield (futures[done], *self._collect(futures.pop(done), done))

    def _collect(self, task: FragmentTask, future: Future) -> tuple[TaskResult, str | None]:
        """TaskResult of a finished future, and the result's JSON text for the cache."""
        attempts = self._attempts(future)
        try:
            envelope = future.result()
        except Exception as exc:  # noqa: BLE001 - every failure is reported per fragment
            error_type, message = classify_exception(exc, self.timeout_per_task)
            return TaskResult(task.label, False, None, message, error_type, attempts=attempts), None
        result_json = envelope["result_json"]
        result = json.loads(result_json)
        provenance = {**envelope["provenance"], "executor": self.label, "attempts": attempts, "cache": "miss"}
        error = None if envelope["success"] else (result.get("error") or {})
        task_result = TaskResult(
            task.label,
            envelope["success"],
            result,
            error=None if error is None else error.get("error_message", "unknown engine failure"),
            error_type=None if error is None else error.get("error_type", "unknown_error"),
            wall_time=provenance["wall_time"],
            attempts=attempts,
            provenance=provenance,
        )
        return task_result, result_json

    def _task_config(self) -> dict[str, Any]:
        return self.resources.task_config()

    def _environment(self) -> dict[str, str]:
        return thread_environment(self.resources.cores_per_worker)

    def _program_versions(self, tasks: list[FragmentTask]) -> dict[str, str | None]:
        programs = sorted({task.program for task in tasks})
        if self.check_programs:
            check_programs(programs)
        return program_versions(programs) if self.cache is not None else {}

    def _store(
        self, task: FragmentTask, result: TaskResult, result_json: str, key: str, versions: dict[str, str | None]
    ) -> None:
        """Keep ``result`` now; a cache that cannot be written costs reruns, never this run's results."""
        try:
            self.cache.put(
                key,
                program=task.program,
                program_version=versions.get(task.program),
                atomic_input=task.atomic_input,
                result_json=result_json,
                wall_time=result.wall_time,
                provenance=result.provenance,
            )
        except CacheError as exc:
            logger.error("fragment %s not cached: %s", task.label, exc)


class SequentialExecutor(FragmentExecutor):
    """One fragment after another in this process: the reference path, no Parsl involved."""

    label = "sequential"

    def _submit(self, task: FragmentTask, priority: int) -> Future:
        future: Future = Future()
        try:
            future.set_result(
                compute_fragment(
                    task.label, task.atomic_input, task.program, self._task_config(), self._environment(), self.max_workers
                )
            )
        except Exception as exc:  # noqa: BLE001 - becomes a failed TaskResult, as on a worker
            future.set_exception(exc)
        return future

    def _run_pending(
        self, pending: list[FragmentTask], display: ProgressDisplay
    ) -> Iterator[tuple[FragmentTask, TaskResult, str | None]]:
        """Compute and hand back one at a time, so each result is cached before the next starts."""
        for priority, task in enumerate(pending):
            display.submitted()
            yield (task, *self._collect(task, self._submit(task, priority)))


class ParslExecutor(FragmentExecutor):
    """Fragments as Parsl apps on the executors of a preset, a Parsl config file, a site file or a Config.

    Parameters
    ----------
    config
        A preset name (``"threads"``, ``"local"``, ``"slurm"``, ...), the path of a Parsl config file
        (a ``.py`` defining ``config``), the path of a QCFractal-style site ``.yaml``, or a
        ``parsl.config.Config`` (usable for one session only, as Parsl's executors are).
    max_workers, cores_per_worker, memory_per_worker, scratch_directory
        Worker sizing: workers per node, and what each fragment may use (its QCEngine task_config).
    cache, cache_dir
        The fragment-result cache: on by default in the user's cache directory.
    max_retries
        Retries of fragments that failed for a reason worth retrying (a random engine error); a lost
        worker or block is retried without spending this budget.
    timeout_per_task
        Seconds before a fragment is abandoned and reported as a timeout.
    progress
        ``"auto"``: a live bar on a terminal, log lines otherwise; ``"bar"``, ``"log"`` or ``False``.
    resource_specification
        ``callable(task) -> dict``: Parsl's per-task resource specification, for a config file or
        Config whose executor needs one (MPIExecutor: ``num_ranks``, ``ranks_per_node``, ...).
        Presets bring their own.
    **preset_options
        Further options of the preset (``partition``, ``walltime``, ...): unknown ones are an error.

    The executor is a context manager owning its own DataFlowKernel; it may serve several
    calculations in a row and leaves no interchange or worker process behind when it exits. Used
    outside ``with``, each calculation starts and stops Parsl itself.
    """

    def __init__(
        self,
        config: ConfigSource = "local",
        *,
        max_workers: int | None = None,
        cores_per_worker: int | None = None,
        memory_per_worker: float | None = None,
        scratch_directory: str | None = None,
        cache: bool = True,
        cache_dir: str | os.PathLike | None = None,
        max_retries: int = 2,
        timeout_per_task: float | None = None,
        progress: bool | Literal["auto", "bar", "log"] = "auto",
        check_programs: bool = True,
        order: Order = "cost",
        resource_specification: Callable[[FragmentTask], dict[str, Any]] | None = None,
        **preset_options: Any,
    ):
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be zero or positive, got {max_retries}")
        sizing = {
            "max_workers": max_workers,
            "cores_per_worker": cores_per_worker,
            "memory_per_worker": memory_per_worker,
            "scratch_directory": scratch_directory,
        }
        self._options = {**{k: v for k, v in sizing.items() if v is not None}, **preset_options}
        self._source = config
        resolved = resolve_config(config, self._options)
        self._config: Config | None = resolved.config
        self.options = resolved.options
        self.preset = resolved.preset
        self.label = resolved.label
        self.resource_specification = resource_specification
        if resource_specification is None and self.preset is not None and self.preset.resource_specification:
            preset, options = self.preset, self.options
            self.resource_specification = lambda task: preset.resource_specification(task, options)
        self.max_retries = max_retries
        resources = WorkerResources(
            cores_per_worker=self.options.cores_per_worker,
            memory_per_worker=self.options.memory_per_worker,
            scratch_directory=self.options.scratch_directory,
        )
        super().__init__(
            resources,
            max_workers=self.options.workers_per_node(),
            cache=(cache_dir or True) if cache else False,
            timeout_per_task=timeout_per_task,
            progress=progress,
            check_programs=check_programs,
            order=order,
        )
        self.dfk: DataFlowKernel | None = None
        self._app: Any = None
        self._prioritise = False

    def __repr__(self) -> str:
        return f"ParslExecutor({self._source!r}, **{self._options!r})"

    def __enter__(self) -> ParslExecutor:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def start(self) -> None:
        """Load a DataFlowKernel of our own (never Parsl's global one)."""
        if self.dfk is not None:
            return
        config = self._config if self._config is not None else resolve_config(self._source, self._options).config
        if isinstance(self._source, Config) and self._config is None:
            raise ConfigurationError("a parsl.Config object serves one session; pass a preset or a config file")
        self._config = None
        config.retries = self.max_retries
        if config.retry_handler is None:
            config.retry_handler = retry_cost
        _put_environment_on_path()
        # Parsl's DEBUG stream belongs in its run directory's parsl.log, not in the user's console.
        logging.getLogger("parsl").propagate = False
        self.dfk = DataFlowKernel(config)
        self._app = fragment_app(self.dfk)
        self._prioritise = all(_accepts_priority(ex) for ex in self.dfk.executors.values() if ex.label != "_parsl_internal")
        logger.info("Parsl started (%s): run directory %s", self.label, self.dfk.run_dir)

    def shutdown(self) -> None:
        """Stop Parsl: executors, interchange, worker pools and their blocks."""
        if self.dfk is None:
            return
        try:
            self.dfk.cleanup()
        finally:
            self.dfk = None
            self._app = None

    def close(self) -> None:
        self.shutdown()
        super().close()

    @contextmanager
    def session(self) -> Iterator[ParslExecutor]:
        if self.dfk is not None:
            yield self
            return
        self.start()
        try:
            yield self
        finally:
            self.shutdown()

    def _submit(self, task: FragmentTask, priority: int) -> Future:
        spec: dict[str, Any] = {}
        if self.resource_specification is not None:
            spec.update(self.resource_specification(task))
        if self._prioritise:
            spec["priority"] = priority
        return self._app(
            task.label,
            task.atomic_input,
            task.program,
            self._task_config(),
            self._environment(),
            self.max_workers,
            walltime=self.timeout_per_task,
            parsl_resource_specification=spec,
        )

    def _attempts(self, future: Future) -> int:
        record = getattr(future, "task_record", None) or {}
        return int(record.get("try_id", 0)) + 1


def _accepts_priority(executor: Any) -> bool:
    """HTEX orders by ``priority``; MPIExecutor and others reject unknown resource keys."""
    return type(executor) is HighThroughputExecutor


def _put_environment_on_path() -> None:
    """Parsl starts interchange.py and worker pools by name: this Python's bin must be on PATH."""
    bin_dir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + path


def _open_cache(cache: CacheSetting) -> FragmentCache | None:
    if cache is False or cache is None:
        return None
    from ..cache import FragmentCache

    return FragmentCache(None if cache is True else cache)


def _check_unique_labels(tasks: list[FragmentTask]) -> None:
    seen: set[str] = set()
    for task in tasks:
        if task.label in seen:
            raise InputError(f"fragment label {task.label} appears twice in the task list")
        seen.add(task.label)


def _shared_result(task: FragmentTask, computed: TaskResult) -> TaskResult:
    """The result of an identical fragment computed under another label (another input, say)."""
    result = None if computed.result is None else in_schema_version(computed.result, task.schema_version)
    provenance = {**computed.provenance, "shared_with": computed.label}
    return replace(computed, label=task.label, result=result, provenance=provenance)


def _result_from_cache(task: FragmentTask, hit: Any, executor: str) -> TaskResult:
    provenance = {**hit.provenance, "cache": "hit", "executor": executor}
    return TaskResult(
        task.label,
        True,
        in_schema_version(json.loads(hit.result_json), task.schema_version),
        wall_time=hit.wall_time,
        attempts=0,
        cached=True,
        provenance=provenance,
    )
