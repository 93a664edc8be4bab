"""The optimization loop: the optimizer asks for a gradient, a whole many-body expansion answers it.

Each geometry the optimizer visits is one step: its ManyBodyInput is planned by upstream's core and our
planner, and every fragment of it goes to the executor in one run, so the fragments of a step run side
by side and each is cached the moment it arrives. The executor stays up from the first step to the
last. Upstream's ``analyze`` and ``get_results`` assemble the step's ManyBodyResult, whose total energy
and gradient go back to the optimizer; the steps become upstream's ``OptimizationResult``.

A screened optimization (``screening=``) decides its kept subsystems at the first geometry and keeps
them for every step: the energy the optimizer minimizes is then one smooth function, whose derivative
is the screened gradient. Re-screening each step would make the energy jump by the increments of the
subsystems that cross a cutoff (and the gradient by their gradients), which an optimizer reads as a
bad step.

Resuming is replaying: the optimizer's own state is not saved. Started again from the same input, it
asks for the same first geometry, gets the same numbers back from the cache, and so takes the same
steps, every fragment of them a cache hit, until it reaches the step that was cut short, where only
the missing fragments are computed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from qcelemental.models import v2 as qcel_v2

from ..computer import ManyBodyComputerV2
from ..errors import FragmentsFailedError
from ..execution.executors import FragmentExecutor
from ..execution.outcomes import RunReport
from ..execution.progress import logger as progress_log
from ..execution.shortcuts import ExecutorConfig, choose_executor
from ..execution.stops import stop_before_run
from ..screening import Selection
from ..screening.cutoffs import ScreeningSpec
from .inputs import check_optimizer, gradient_specification, optimization_input, step_input

logger = logging.getLogger(__name__)

ROUTINE = "qcmb_parsl.optimize"


@dataclass
class FragmentTiming:
    """When and where one fragment of a step ran (for a cache hit: when it was first computed)."""

    label: str
    source: str
    started: float | None
    wall_time: float
    worker: str


@dataclass
class StepRecord:
    """One step of an optimization: its energy, gradient norms, and how its fragments were obtained.

    ``gradient_rms`` and ``gradient_max`` are over the atoms' gradient vector lengths (Eh/a0), as
    geomeTRIC measures convergence without constraints; ``started`` is epoch seconds. ``run`` is the
    step's run summary (the ManyBodyResult's ``extras["qcmb_parsl"]``).
    """

    step: int
    energy: float
    gradient_rms: float
    gradient_max: float
    started: float
    wall_time: float
    run: dict[str, Any]
    fragments: list[FragmentTiming] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def optimize(
    opt_input: Any,
    optimizer: str = "geometric",
    executor: FragmentExecutor | None = None,
    *,
    parallel: bool = False,
    n_workers: int | None = None,
    executor_config: ExecutorConfig | None = None,
    screening: ScreeningSpec = None,
) -> qcel_v2.OptimizationResult:
    """Optimize the geometry of a cluster with many-body gradients; upstream's ``OptimizationResult``.

    Parameters
    ----------
    opt_input
        A QCSchema v2 ``OptimizationInput`` (model, dict or JSON text) whose ``specification.specification``
        is a ``ManyBodySpecification``; ``specification.keywords`` are the optimizer's, ``specification.
        protocols.trajectory_results`` chooses which steps' ManyBodyResults are kept, and the many-body
        protocols (``cluster_results``) apply to each of them.
    optimizer
        ``"geometric"`` (default). ``"optking"`` is refused with the reason.
    executor, parallel, n_workers, executor_config
        Where fragments run, as for :meth:`qcmb_parsl.ManyBodyComputer.from_manybodyinput`: a
        :class:`~qcmb_parsl.ParslExecutor` (its cache makes the optimization resumable), or ``None`` for
        the sequential in-process path.
    screening
        Distance cutoffs by n-body level, as for :meth:`qcmb_parsl.ManyBodyComputer.from_manybodyinput`;
        the subsystems they keep at the initial geometry are kept for every step (recorded in
        ``extras["qcmb_parsl"]["screening"]``).

    Notes
    -----
    Everything is checked before anything is submitted: one-line ConfigurationError or InputError.
    A step whose fragments fail raises :class:`~qcmb_parsl.errors.FragmentsFailedError` (every other
    fragment is cached); an optimizer that does not converge raises
    :class:`~qcmb_parsl.errors.OptimizationFailed`. The run summary of every step is in
    ``extras["qcmb_parsl"]["steps"]``.
    """
    with stop_before_run():  # a stop before the first step's run loop is a stop of the optimization
        return _optimize(opt_input, optimizer, executor, parallel, n_workers, executor_config, screening)


def _optimize(
    opt_input: Any,
    optimizer: str,
    executor: FragmentExecutor | None,
    parallel: bool,
    n_workers: int | None,
    executor_config: ExecutorConfig | None,
    screening: ScreeningSpec,
) -> qcel_v2.OptimizationResult:
    start, started = time.perf_counter(), time.time()
    optimizer = check_optimizer(optimizer)
    # Imported here, not with the package: geomeTRIC's imports take ~1.5 s, which every worker and
    # engine process would pay on ``import qcmb_parsl``.
    from . import geometric_driver

    model = optimization_input(opt_input, optimizer)
    specification = gradient_specification(model)
    # Upstream's and our checks of the first step's ManyBodyInput, before the optimizer or executor starts.
    first = ManyBodyComputerV2.prepare(
        step_input(model, specification, model.initial_molecule.geometry), screening
    )
    selection = getattr(first.qcmb_core, "selection", None)
    geomopt = geometric_driver.GeometricOptimizer(model.initial_molecule, model.specification.keywords)

    chosen, owned = choose_executor(executor, parallel, n_workers, executor_config)
    steps: list[StepRecord] = []
    results: list[Any] = []

    def gradient(coords: np.ndarray) -> tuple[float, np.ndarray]:
        result, record = _step(chosen, model, specification, coords, len(steps) + 1, selection)
        previous = steps[-1].energy if steps else None
        steps.append(record)
        results.append(result)
        _log_step(record, previous)
        return result.properties.return_energy, np.asarray(result.return_result)

    keep_up = not chosen.backend.started
    try:
        if keep_up:
            chosen.start()
        stdout = geomopt.run(gradient)
    finally:
        if keep_up:
            chosen.shutdown()
        if owned:
            chosen.close()
    optimizer_info = (geometric_driver.NAME, geometric_driver.VERSION)
    result = _result(
        model, results, steps, stdout, optimizer_info, chosen.label, started, time.perf_counter() - start
    )
    if selection is not None:
        result.extras["qcmb_parsl"]["screening"] = {
            **selection.record(),
            "kept_at": "initial geometry",
            "at_final_geometry": _reselected(selection, result.final_molecule),
        }
    return result


def _reselected(selection: Selection, molecule: qcel_v2.Molecule) -> dict[str, list[list[int]]]:
    """What the cutoffs would keep at the final geometry that the optimization did not, and the reverse.

    Subsystems that crossed a cutoff while the kept set was frozen; a warning names how many, since
    optimizing again from the final geometry would give the energy of the cutoffs' own set there.
    """
    final = selection.screening.select(molecule, selection.max_nbody)
    before = set(selection.all_kept(selection.kept))
    after = set(final.all_kept(final.kept))
    change = {
        "added": [list(s) for s in sorted(after - before, key=lambda s: (len(s), s))],
        "removed": [list(s) for s in sorted(before - after, key=lambda s: (len(s), s))],
    }
    if change["added"] or change["removed"]:
        logger.warning(
            "%d subsystems crossed a screening cutoff during the optimization (%d now within, %d beyond); "
            "the kept set of the initial geometry was used throughout: optimize again from the final "
            "geometry for the cutoffs' own set there",
            len(change["added"]) + len(change["removed"]),
            len(change["added"]),
            len(change["removed"]),
        )
    return change


def _step(
    executor: FragmentExecutor,
    model: qcel_v2.OptimizationInput,
    specification: dict[str, Any],
    coords: np.ndarray,
    number: int,
    selection: Selection | None,
) -> tuple[Any, StepRecord]:
    """One step: every fragment of the geometry's expansion (or of ``selection``) in one run, then
    upstream's assembly."""
    start, started = time.perf_counter(), time.time()
    computer = ManyBodyComputerV2.prepare(step_input(model, specification, coords), selection)
    tasks = computer.fragment_tasks()
    plan_time = time.perf_counter() - start
    progress_log.info("step %d: %d fragments", number, len(tasks))
    report = executor.run(tasks)
    report.summary.plan_time = plan_time
    if report.failures:
        logger.error("optimization stopped at step %d: fragments failed", number)
        raise FragmentsFailedError(report.failures, len(tasks), report)
    wall_time = time.perf_counter() - start
    result = computer.assemble(report, wall_time=wall_time)
    norms = np.linalg.norm(np.asarray(result.return_result).reshape(-1, 3), axis=1)
    record = StepRecord(
        step=number,
        energy=float(result.properties.return_energy),
        gradient_rms=float(np.sqrt(np.mean(norms**2))),
        gradient_max=float(norms.max()),
        started=started,
        wall_time=wall_time,
        run=dict(result.extras["qcmb_parsl"]),
        fragments=_timings(report),
    )
    return result, record


def _timings(report: RunReport) -> list[FragmentTiming]:
    timings = []
    for label, task_result in report.results.items():
        provenance = task_result.provenance
        worker = f"{provenance.get('hostname', '?')}:{provenance.get('pid', '?')}"
        started = provenance.get("started")
        timings.append(
            FragmentTiming(
                label,
                task_result.source.value,
                None if started is None else float(started),
                float(task_result.wall_time),
                worker,
            )
        )
    return timings


def _log_step(record: StepRecord, previous: float | None) -> None:
    run = record.run
    change = "" if previous is None else f" (change {record.energy - previous:+.3e})"
    progress_log.info(
        "step %d: energy %.10f Eh%s, gradient rms %.3e max %.3e Eh/a0; %d fragments: %d computed, "
        "%d from the cache, %d shared; %.1f s",
        record.step,
        record.energy,
        change,
        record.gradient_rms,
        record.gradient_max,
        run["n_tasks"],
        run["n_executed"],
        run["n_cached"],
        run["n_shared"],
        record.wall_time,
    )


def _result(
    model: qcel_v2.OptimizationInput,
    results: list[Any],
    steps: list[StepRecord],
    stdout: str,
    optimizer: tuple[str, str],
    executor: str,
    started: float,
    wall_time: float,
) -> qcel_v2.OptimizationResult:
    """Upstream's OptimizationResult, shaped as QCEngine's procedures shape it; ``optimizer`` is its
    (name, version)."""
    name, version = optimizer
    final = results[-1]
    final_molecule = final.input_data.molecule
    summary = {
        "optimizer": name,
        "optimizer_version": version,
        "executor": executor,
        "n_steps": len(steps),
        "started": started,
        "wall_time": wall_time,
        **{
            name: sum(step.run[name] for step in steps)
            for name in ("n_tasks", "n_executed", "n_cached", "n_shared")
        },
        "steps": [step.as_dict() for step in steps],
    }
    return qcel_v2.OptimizationResult(
        input_data=model,
        final_molecule=final_molecule,
        trajectory_results=results,
        trajectory_properties=[result.properties for result in results],
        properties={
            "nuclear_repulsion_energy": final_molecule.nuclear_repulsion_energy(),
            "return_energy": final.properties.return_energy,
            "return_gradient": final.return_result,
            "optimization_iterations": len(results),
        },
        stdout=stdout,
        provenance={"creator": name, "version": version, "routine": ROUTINE},
        extras={"qcmb_parsl": summary},
    )
