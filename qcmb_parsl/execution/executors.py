"""The executors users name: a runner (the run loop) composed with a back-end (where jobs run).

:class:`ParslExecutor` runs fragments as Parsl apps on a preset, a Parsl config file, a site file or
a ``parsl.Config``; :class:`SequentialExecutor` runs them one after another from this process, as the
reference path without Parsl. Both run every engine in a process of its own by default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from parsl.config import Config
from parsl.dataflow.dflow import DataFlowKernel

from ..errors import ConfigurationError
from ..planning.plan import FragmentTask
from ..presets import add_monitoring
from ..presets.loader import ConfigSource, ResolvedConfig, resolve_config
from ..resources import WorkerResources
from ._parsl import executor_capacity, executor_prefetch
from .backends import Backend, InProcessBackend
from .isolation import end_template
from .jobs import JobSettings
from .ordering import Order
from .outcomes import RunReport, RunSummary, TaskResult
from .parsl_backend import ParslBackend
from .progress import ProgressMode, check_progress
from .rundirs import check_run_dir
from .runner import DEFAULT_BUNDLE_SECONDS, ProgressCallback, Runner

if TYPE_CHECKING:
    from ..cache import FragmentCache

__all__ = [
    "FragmentExecutor",
    "ParslExecutor",
    "ProgressCallback",
    "RunReport",
    "RunSummary",
    "SequentialExecutor",
]

CacheSetting = bool | str | os.PathLike | None


class FragmentExecutor:
    """What every executor offers: run fragment tasks, serve several runs, release what it holds.

    A context manager: inside ``with``, the back-end (Parsl and its workers) stays up across runs;
    outside, each run starts and stops it.
    """

    def __init__(
        self,
        backend: Backend,
        settings: JobSettings,
        *,
        cache: CacheSetting = False,
        progress: ProgressMode = False,
        check_programs: bool = True,
        order: Order = "cost",
        bundle_seconds: float = DEFAULT_BUNDLE_SECONDS,
    ):
        if order not in ("cost", "fifo"):
            raise ConfigurationError(f"order must be 'cost' or 'fifo', got {order!r}")
        if bundle_seconds < 0:
            raise ConfigurationError(
                f"bundle_seconds must be zero (no bundles) or positive, got {bundle_seconds}"
            )
        self.backend = backend
        self.settings = settings
        self.cache = _open_cache(cache)
        self.runner = Runner(
            backend, settings, self.cache, order, check_progress(progress), check_programs, bundle_seconds
        )

    @property
    def label(self) -> str:
        return self.backend.label

    @property
    def resources(self) -> WorkerResources:
        return self.settings.resources

    @property
    def timeout_per_task(self) -> float | None:
        return self.settings.timeout

    def run(
        self, tasks: Iterable[FragmentTask], progress_callback: ProgressCallback | None = None
    ) -> RunReport:
        """Run ``tasks``: cache hits answered at once, identical fragments computed once, the rest
        submitted longest first, each result cached the moment it arrives."""
        return self.runner.run(tasks, progress_callback)

    def execute(
        self, tasks: Iterable[FragmentTask], progress_callback: ProgressCallback | None = None
    ) -> dict[str, TaskResult]:
        """Run ``tasks``; label -> TaskResult, failures included (see :meth:`run` for the summary)."""
        return self.run(tasks, progress_callback).results

    def start(self) -> None:
        if not self.backend.started:
            self.runner.cold = True
        self.backend.start()

    def shutdown(self) -> None:
        """Stop the back-end: for Parsl, executors, interchange, worker pools and their blocks."""
        self.backend.stop()

    def close(self) -> None:
        """Shut down, end this process's fragment template and close the cache."""
        self._release()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> FragmentExecutor:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release()

    def _release(self) -> None:
        """Closed means closed: the back-end stopped, and the template that ran fragments in this
        process (sequential and ``threads``) ended, unless another executor is using it."""
        try:
            self.shutdown()
        finally:
            end_template()


class SequentialExecutor(FragmentExecutor):
    """One fragment after another from this process: the reference path, no Parsl involved.

    Parameters
    ----------
    resources
        What each fragment may use (cores, memory, scratch): becomes QCEngine's task_config.
    max_workers
        Fragments a node would run side by side; sizes the default memory per fragment.
    cache
        ``True`` for the default cache directory, a path for another one, ``False``/``None`` for none.
    timeout_per_task, max_retries, isolate, progress, check_programs, order, bundle_seconds
        See :class:`ParslExecutor`.
    """

    def __init__(
        self,
        resources: WorkerResources | None = None,
        *,
        max_workers: int = 1,
        cache: CacheSetting = False,
        timeout_per_task: float | None = None,
        max_retries: int = 2,
        isolate: bool = True,
        progress: ProgressMode = False,
        check_programs: bool = True,
        order: Order = "cost",
        bundle_seconds: float = DEFAULT_BUNDLE_SECONDS,
    ):
        settings = JobSettings(
            resources or WorkerResources(), max_workers, timeout_per_task, max_retries, isolate
        )
        super().__init__(
            InProcessBackend(),
            settings,
            cache=cache,
            progress=progress,
            check_programs=check_programs,
            order=order,
            bundle_seconds=bundle_seconds,
        )
        self.max_workers = max_workers


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
        ``memory_per_worker`` (GiB) is also a hard limit on each fragment's process.
    cache, cache_dir
        The fragment-result cache: on by default in the user's cache directory.
    max_retries
        Further attempts of a fragment whose failure may be transient: a crashed engine or an unknown
        engine error once, a random engine error up to this many times. A lost worker or block is
        retried without spending this budget.
    timeout_per_task
        Seconds a fragment's engine may run; then its process is killed and the fragment reported
        as a timeout.
    isolate
        Each fragment's engine in a process of its own (default). ``False`` runs engines in the
        worker's process: a little cheaper for floods of tiny fragments, but a crash takes the worker
        with it and no timeout or memory limit can be enforced.
    progress
        ``"auto"``: a live bar on a terminal, log lines otherwise; ``"bar"``, ``"log"`` or ``False``.
    check_programs
        Verify before submission that QCEngine finds each program on this machine. Turn off only
        when the programs exist on the compute nodes but not where the driver runs.
    order
        ``"cost"``: longest expected fragment first (default); ``"fifo"``: in planned order.
    bundle_seconds
        Fragments expected (from the cache's wall times, or those of the run so far) to take less than
        half this many seconds are packed into one app call lasting about this long, run one after
        another in one engine process; each is still its own result, cached and judged alone. 0 turns
        bundling off.
    lanes_per_worker
        Fragments each worker runs side by side (default 1), each still in a process of its own with
        its own result, limits, retries and cache entry: one call then carries work for every lane.
        For thousands of cores, one worker per node (``max_workers=1``) with a lane per core makes one
        call per node, which one driver can feed where it could not feed one call per core (see
        :mod:`qcmb_parsl.execution.lanes`). Needs isolated fragments.
    resource_specification
        ``callable(task) -> dict``: Parsl's per-task resource specification, for a config file or
        Config whose executor needs one (MPIExecutor: ``num_ranks``, ``ranks_per_node``, ...).
        Presets bring their own.
    **preset_options
        Further options of the preset (``partition``, ``walltime``, ...): unknown ones are an error.
        ``monitoring=True`` (every preset's option) turns on Parsl's monitoring database, SQLite in
        ``runinfo/monitoring.db``; it is added to a config file's or Config's too, unless it has its own.
        ``run_dir`` (every preset's option) puts Parsl's run directory elsewhere than the config's
        (``runinfo/`` by default), ``keep_runs`` keeps more (or fewer) than the last 10 sessions there.

    Notes
    -----
    The executor is a context manager owning its own DataFlowKernel; it may serve several
    calculations in a row and leaves no interchange, worker process or fragment template behind when
    it exits. Used outside ``with``, each calculation starts and stops Parsl itself. A run directory
    that cannot be written is refused here, before anything is computed.
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
        isolate: bool = True,
        progress: ProgressMode = "auto",
        check_programs: bool = True,
        order: Order = "cost",
        bundle_seconds: float = DEFAULT_BUNDLE_SECONDS,
        lanes_per_worker: int = 1,
        resource_specification: Callable[[FragmentTask], dict[str, Any]] | None = None,
        **preset_options: Any,
    ):
        sizing = {
            "max_workers": max_workers,
            "cores_per_worker": cores_per_worker,
            "memory_per_worker": memory_per_worker,
            "scratch_directory": scratch_directory,
        }
        self._options = {**{k: v for k, v in sizing.items() if v is not None}, **preset_options}
        self._source = config
        resolved = resolve_config(config, self._options)
        self.options = resolved.options
        self.preset = resolved.preset
        if resource_specification is None and self.preset is not None:
            resource_specification = self.preset.specification_for(self.options)
        self.max_workers = self.options.workers_per_node()
        self.max_retries = max_retries
        check_run_dir(self.options.run_dir or resolved.config.run_dir)
        backend = ParslBackend(
            resolved.label,
            _in_run_dir(
                _monitored(_config_factory(resolved, config, self._options), resolved), self.options.run_dir
            ),
            capacity=max(sum(executor_capacity(executor) for executor in resolved.config.executors), 1),
            prefetch=sum(executor_prefetch(executor) for executor in resolved.config.executors),
            resource_specification=resource_specification,
            keep_runs=self.options.keep_runs,
        )
        resources = WorkerResources(
            cores_per_worker=self.options.cores_per_worker,
            memory_per_worker=self.options.memory_per_worker,
            scratch_directory=self.options.scratch_directory,
        )
        settings = JobSettings(
            resources, self.max_workers, timeout_per_task, max_retries, isolate, lanes_per_worker
        )
        super().__init__(
            backend,
            settings,
            cache=(cache_dir or True) if cache else False,
            progress=progress,
            check_programs=check_programs,
            order=order,
            bundle_seconds=bundle_seconds,
        )

    def __repr__(self) -> str:
        return f"ParslExecutor({self._source!r}, **{self._options!r})"

    @property
    def dfk(self) -> DataFlowKernel | None:
        """The DataFlowKernel while Parsl is up, else None."""
        assert isinstance(self.backend, ParslBackend)
        return self.backend.dfk


def _config_factory(
    resolved: ResolvedConfig, source: ConfigSource, options: dict[str, Any]
) -> Callable[[], Config]:
    """A fresh Config per Parsl session: executors serve one DataFlowKernel only, so the first session
    uses the config already built (and validated) and later ones build it again."""
    first: list[Config] = [resolved.config]

    def make() -> Config:
        if first:
            return first.pop()
        if isinstance(source, Config):
            raise ConfigurationError(
                "a parsl.Config object serves one session; pass a preset or a config file"
            )
        return resolve_config(source, options).config

    return make


def _monitored(make: Callable[[], Config], resolved: ResolvedConfig) -> Callable[[], Config]:
    """``make`` with Parsl's monitoring added to a config file's or Config's when the options ask for it
    (a preset's Config has it already, as its config file would)."""
    if resolved.preset is not None or not resolved.options.monitoring:
        return make

    def monitored() -> Config:
        config = make()
        add_monitoring(config)
        return config

    return monitored


def _in_run_dir(make: Callable[[], Config], run_dir: str | None) -> Callable[[], Config]:
    """``make`` with the Config's run directory set from the ``run_dir`` option, when given."""
    if run_dir is None:
        return make

    def placed() -> Config:
        config = make()
        config.run_dir = run_dir
        return config

    return placed


def _open_cache(cache: CacheSetting) -> FragmentCache | None:
    if cache is False or cache is None:
        return None
    from ..cache import FragmentCache

    return FragmentCache(None if cache is True else cache)
