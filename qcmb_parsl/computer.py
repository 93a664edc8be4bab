"""``ManyBodyComputer`` with an ``executor``: upstream's computer, fragments run elsewhere.

Upstream builds the core and validates the input (``from_manybodyinput(..., build_tasks=False)``);
this module plans the fragments, hands them to an executor, and gives the results back to upstream's
``analyze`` and ``get_results``, so the ManyBodyResult is upstream's own, field for field.

With ``screening`` (:mod:`qcmb_parsl.screening`) the core is upstream's with the dropped subsystems
taken out (:class:`~qcmb_parsl.planning._qcmanybody.ScreenedCore`): fewer fragments are planned, and
the n-body sums run over the kept ones. Without it nothing differs from upstream's path.

:meth:`ParallelComputerMixin.run` is the one path from a validated input to its result: the API's
``from_manybodyinput`` and the command line's ``run`` both go through it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import qcmanybody
import qcmanybody.v2

from .engines.checks import check_specifications
from .engines.programs import program_versions
from .errors import FragmentsFailedError, InputError
from .execution.stops import stop_before_run
from .planning._qcmanybody import ScreenedCore
from .planning.inputs import check_manybody_input, normalize_input, one_line_validation_error
from .planning.plan import FragmentTask, iterate_labels, plan_tasks, specifications_from_input
from .schema import SchemaVersion, atomic_result_model, keeps_fragment_results
from .screening.cutoffs import Screening, ScreeningSpec, as_screening
from .screening.subsystems import Selection

if TYPE_CHECKING:
    from .execution.executors import FragmentExecutor, ProgressCallback, RunReport
    from .execution.shortcuts import ExecutorConfig

logger = logging.getLogger(__name__)

FailurePolicy = Literal["raise", "return"]


class ParallelComputerMixin:
    """What the v1 and v2 computers add to upstream's: the executor and the assembly of its results.

    ``plan_time`` is the driver's planning time of this input (validation and fragment tasks), in
    seconds; :meth:`run` puts it into the run's summary.
    """

    schema_version: ClassVar[SchemaVersion]
    if TYPE_CHECKING:  # upstream's (qcmb_core, get_results), or set on instances (plan_time): declared
        # here for type checkers only, as upstream's pydantic models would make annotations fields
        plan_time: float
        qcmb_core: Any
        input_data: Any

        def get_results(self, external_results: dict[str, Any], component_results: dict[str, Any]) -> Any: ...

    @classmethod
    def from_manybodyinput(
        cls,
        input_model: Any,
        build_tasks: bool = True,
        *,
        executor: FragmentExecutor | None = None,
        parallel: bool = False,
        n_workers: int | None = None,
        executor_config: ExecutorConfig | None = None,
        progress_callback: ProgressCallback | None = None,
        on_failure: FailurePolicy = "raise",
        screening: ScreeningSpec = None,
    ) -> Any:
        """Run the many-body expansion of ``input_model`` and return upstream's ManyBodyResult.

        Parameters
        ----------
        input_model
            A ManyBodyInput of this computer's schema version, or its dict / JSON form.
        build_tasks
            As upstream: ``False`` returns the validated computer without running anything.
        executor
            Where fragments run: a :class:`~qcmb_parsl.ParslExecutor`, or ``None`` for the sequential
            in-process reference path.
        parallel, n_workers, executor_config
            Shortcuts for a local HighThroughputExecutor (all cores unless ``n_workers``), sized and
            tuned by :class:`~qcmb_parsl.ExecutorConfig`.
        progress_callback
            ``callback(label, completed, total)`` once per finished fragment, cache hits included.
        on_failure
            ``"raise"`` (default): after every other fragment finished and was cached, raise one
            :class:`~qcmb_parsl.errors.FragmentsFailedError` naming each failure. ``"return"``: return
            the :class:`~qcmb_parsl.execution.executors.RunReport` of what succeeded and failed instead.
        screening
            n-body level -> distance cutoff in Ångström, e.g. ``{2: 8.0, 3: 6.0}``: an n-body subsystem is
            computed and summed only when every two of its fragments come within the cutoff (minimum
            interatomic distance); levels without one take the next lower level's. ``None`` (default):
            the complete expansion, exactly upstream's. The result says what was kept in
            ``extras["qcmb_parsl"]["screening"]``.

        Raises
        ------
        RunInterrupted
            On SIGINT (and an unhandled SIGTERM or SIGHUP) in the main thread, from the moment the call
            begins: before the run loop (``report`` None, nothing computed) as during it.
        """
        start = time.perf_counter()
        with stop_before_run():
            computer = cls.prepare(input_model, screening)
            if not build_tasks:
                return computer

            # Parsl is imported here, when something is to run: a refused input never pays for it.
            from .execution.shortcuts import choose_executor

            chosen, owned = choose_executor(executor, parallel, n_workers, executor_config)
            try:
                return computer.run(chosen, progress_callback, on_failure=on_failure, start=start)
            finally:
                if owned:
                    chosen.close()

    @classmethod
    def prepare(cls, input_model: Any, screening: ScreeningSpec = None) -> Any:
        """Validated computer with upstream's core, nothing run: ``from_manybodyinput(build_tasks=False)``.

        ``screening`` as in :meth:`from_manybodyinput`, or a :class:`~qcmb_parsl.screening.Selection`
        made before (an optimization's, kept for every step). Raises
        :class:`~qcmb_parsl.errors.InputError` (one line) for an input upstream refuses, and for a model
        chemistry its program cannot run (:mod:`qcmb_parsl.engines.checks`): a mistyped method, basis set
        or keyword fails here, before any executor starts, not in every fragment.
        """
        start = time.perf_counter()
        screen = as_screening(screening)
        input_model = normalize_input(input_model, cls.schema_version)
        check_manybody_input(input_model)
        try:
            computer = super().from_manybodyinput(input_model, build_tasks=False)  # type: ignore[misc]
        except (ValueError, TypeError, AssertionError) as exc:  # pydantic errors are ValueErrors
            raise InputError(one_line_validation_error(exc, "ManyBodyInput")) from None
        if screen is not None:
            computer.qcmb_core = screened_core(computer.qcmb_core, screen)
        check_specifications(
            specifications_from_input(computer),
            input_model.molecule.symbols,
            input_model.specification.keywords.bsse_type,
        )
        computer.plan_time = time.perf_counter() - start
        return computer

    def run(
        self,
        executor: FragmentExecutor,
        progress_callback: ProgressCallback | None = None,
        *,
        on_failure: FailurePolicy = "raise",
        start: float | None = None,
    ) -> Any:
        """Plan the fragments, run them on ``executor`` and assemble upstream's ManyBodyResult.

        ``on_failure`` as in :meth:`from_manybodyinput`; ``start`` (a :func:`time.perf_counter`
        reading) is when the calculation began, for the result's ``wall_time``: by default, now.
        """
        start = time.perf_counter() if start is None else start
        with stop_before_run():  # planning 10^5 fragments takes half a minute: a stop then is a stop too
            tasks = self.fragment_tasks()
            report = executor.run(tasks, progress_callback)
        report = replace(report, summary=replace(report.summary, plan_time=self.plan_time))
        if report.failures:
            if on_failure == "return":
                return report
            raise FragmentsFailedError(report.failures, len(tasks), report)
        return self.assemble(report, wall_time=time.perf_counter() - start)

    def fragment_tasks(self) -> list[FragmentTask]:
        """Every fragment task of this expansion, in upstream's order; the time counts as planning."""
        start = time.perf_counter()
        tasks = plan_tasks(
            self.qcmb_core,
            specifications_from_input(self),
            self.schema_version,
            keeps_fragment_results(self.input_data, self.schema_version),
        )
        self.plan_time = getattr(self, "plan_time", 0.0) + time.perf_counter() - start
        return tasks

    def cache_keys(self) -> dict[str, str]:
        """label -> fragment-cache key of every fragment, as executors compute them.

        ``FragmentCache(dir).entries(computer.cache_keys().values())`` lists what the cache holds
        of this input; ``.invalidate(keys=...)`` drops it.
        """
        from .cache import task_keys

        tasks = self.fragment_tasks()
        return task_keys(tasks, program_versions(sorted({task.program for task in tasks})))

    def assemble(self, report: RunReport, wall_time: float | None = None) -> Any:
        """Upstream's analyze and get_results over the fragments' AtomicResults, in upstream's order.

        The run's summary goes into ``extras["qcmb_parsl"]``, with ``wall_time`` from input to result.
        Each fragment's AtomicResult is validated only where the input's protocol keeps them: otherwise
        upstream's result drops them, and only their properties are read (at 10^5 fragments the
        AtomicResults took most of the assembly).
        """
        component_results = {}
        component_properties = {}
        keep = keeps_fragment_results(self.input_data, self.schema_version)
        atomic_model = atomic_result_model(self.schema_version)
        for _, label, _, _ in iterate_labels(self.qcmb_core):
            task_result = report.results[label]
            data = dict(task_result.result or {})
            if keep:
                data["extras"] = {**(data.get("extras") or {}), "qcmb_parsl": task_result.provenance}
                component_results[label] = atomic_model(**data)
            component_properties[label] = return_properties(data.get("properties") or {})
        analyzed = self.qcmb_core.analyze(component_properties)
        analyzed["nbody_number"] = len(component_properties)
        result = self.get_results(external_results=analyzed, component_results=component_results)
        summary = report.summary.as_dict()
        if wall_time is not None:
            summary["wall_time"] = wall_time
        if isinstance(self.qcmb_core, ScreenedCore):
            summary["screening"] = self.qcmb_core.selection.record()
        result.extras["qcmb_parsl"] = summary
        return result


def return_properties(properties: Mapping[str, Any]) -> dict[str, Any]:
    """A fragment's energy, gradient and Hessian for upstream's ``analyze``, from its AtomicResult's
    ``properties`` dict, as QCElemental's properties model gives them (a float, an (natom, 3) and a
    (3 natom, 3 natom) float array) without validating a model per fragment."""
    values: dict[str, Any] = {}
    if (energy := properties.get("return_energy")) is not None:
        values["energy"] = float(energy)
    if (gradient := properties.get("return_gradient")) is not None:
        values["gradient"] = np.asarray(gradient, dtype=float).reshape(-1, 3)
    if (hessian := properties.get("return_hessian")) is not None:
        hessian = np.asarray(hessian, dtype=float)
        side = math.isqrt(hessian.size)
        values["hessian"] = hessian.reshape(side, side)
    return values


def screened_core(core: Any, screen: Screening | Selection) -> ScreenedCore:
    """Upstream's ``core`` keeping what ``screen`` (a Screening or a Selection) keeps of its molecule.

    Refused, one line, where screening does not compose: an expansion of the supersystem alone
    (``supersystem_ie_only``), and a model chemistry of n-body levels above 1 left with nothing to
    compute (VMFC computes a level's subsystems only, in their own basis).
    """
    if core.supersystem_ie_only:
        raise InputError("screening needs the n-body levels that supersystem_ie_only skips: leave one out")
    screened = ScreenedCore(core, screen.select(core.molecule, core.max_nbody))
    for mc, compute_dict in screened.compute_map.items():
        levels = [n for n in core.nbodies_per_mc_level[mc] if n != "supersystem"]
        if max(levels, default=1) > 1 and not any(compute_dict["all"].values()):
            raise InputError(
                f"screening drops every calculation of model chemistry {mc!r} (levels "
                f"{core.nbodies_per_mc_level[mc]}): loosen its cutoff or lower max_nbody"
            )
    return screened


class ManyBodyComputer(ParallelComputerMixin, qcmanybody.ManyBodyComputer):
    """QCSchema v1 computer: ``qcmanybody.ManyBodyComputer`` whose fragments run on an executor."""

    schema_version: ClassVar[SchemaVersion] = 1


class ManyBodyComputerV2(ParallelComputerMixin, qcmanybody.v2.ManyBodyComputer):
    """QCSchema v2 computer: ``qcmanybody.v2.ManyBodyComputer`` whose fragments run on an executor."""

    schema_version: ClassVar[SchemaVersion] = 2


def computer_class(schema_version: int) -> type[ManyBodyComputer] | type[ManyBodyComputerV2]:
    """The qcmb_parsl computer of a QCSchema version."""
    return ManyBodyComputerV2 if schema_version == 2 else ManyBodyComputer
