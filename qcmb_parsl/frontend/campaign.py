"""Campaigns: many ManyBodyInput files run in one Parsl session, identical fragments computed once.

Every input is read and checked (:func:`prepare_campaign`: files, model chemistries, output paths)
before anything is written or submitted, and before a command line builds its executor. The fragments
of all inputs still to be computed are planned together, each label prefixed with its input's id
(``"dimer::<label>"``), and handed to one :meth:`~qcmb_parsl.execution.executors.FragmentExecutor.run`:
the executor answers cached fragments from the cache and computes each distinct fragment once, however
many inputs contain it.
The results are then split back per input, each input's ManyBodyResult is assembled by upstream, and
written next to a summary CSV the moment the run ends.

Molecule files (XYZ, ...) take a recipe (:class:`~qcmb_parsl.planning.molecule_files.ExpansionRecipe`):
each becomes a ManyBodyInput written into the output directory as ``NAME.input.json`` beside its result,
once the run has begun (a campaign stopped or refused before it writes nothing).

A campaign is resumable: an input whose result file exists, parses, and was computed from the same
input (its digest is stored in the result) is skipped unless ``force``; everything else is recomputed,
answering from the cache every fragment that finished before.

This module orchestrates; reading inputs and writing results and the summary CSV is
:mod:`qcmb_parsl.frontend.files`' job.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import FragmentsFailedError, InputError, OutputError, RunInterrupted
from ..execution.outcomes import FragmentFailure, RunReport, RunSummary, Source, TaskResult
from ..execution.stops import stop_before_run
from ..planning.molecule_files import ExpansionRecipe
from ..planning.plan import specifications_from_input
from ..schema import dump, fragment_results
from ..screening import Screening
from .files import (
    BSSE_TYPES,
    INPUT_SUFFIX,
    RESULT_SUFFIX,
    SUMMARY_COLUMNS,
    SUMMARY_NAME,
    InputFile,
    check_output_dir,
    check_outputs_spare_inputs,
    collect_inputs,
    finished_result,
    input_stem,
    mark_input,
    open_input,
    save_result,
    write_built_input,
    write_summary_csv,
)
from .tables import nbody_energies

if TYPE_CHECKING:  # the executors import Parsl: a refused campaign never pays for it
    from ..execution.executors import FragmentExecutor, ProgressCallback

logger = logging.getLogger(__name__)

#: Between an input's id and a fragment label in the labels a campaign submits.
LABEL_SEPARATOR = "::"


# -- campaign -------------------------------------------------------------------------------------


@dataclass
class CampaignEntry:
    """One input of a campaign: what happened to it, its counts and energies; a row of the summary CSV.

    ``status`` is ``"computed"``, ``"skipped"`` (a valid result was there; counts are those of the run
    that computed it), ``"failed"`` (some of its fragments failed, or its result could not be
    written; ``error`` says which) or ``"stopped"`` (the campaign was stopped before all of its
    fragments finished; those that did are in the cache).
    """

    input: str
    status: str
    result_file: str | None = None
    n_tasks: int = 0
    n_cached: int = 0
    n_executed: int = 0
    n_shared: int = 0
    n_failed: int = 0
    return_energy: float | None = None
    interaction_energies: dict[str, float] = field(default_factory=dict)
    max_nbody: int | None = None
    wall_time: float | None = None
    fragment_time: float | None = None
    error: str = ""

    def row(self) -> dict[str, Any]:
        """This entry as a row of :data:`~qcmb_parsl.frontend.files.SUMMARY_COLUMNS`."""
        row = {name: getattr(self, name, None) for name in SUMMARY_COLUMNS}
        for bsse in BSSE_TYPES:
            row[f"{bsse}_interaction_energy"] = self.interaction_energies.get(bsse)
        return {name: "" if value is None else value for name, value in row.items()}


@dataclass
class CampaignOutcome:
    """What a campaign did: one entry per input (in input order), the session's run summary, the CSV."""

    entries: list[CampaignEntry]
    summary: RunSummary | None
    summary_csv: Path

    @property
    def failed(self) -> list[CampaignEntry]:
        return [entry for entry in self.entries if entry.status == "failed"]


def run_campaign(
    inputs: Iterable[str | os.PathLike],
    executor: FragmentExecutor,
    out_dir: str | os.PathLike,
    *,
    force: bool = False,
    progress_callback: ProgressCallback | None = None,
    recipe: ExpansionRecipe | None = None,
    screening: Screening | None = None,
) -> CampaignOutcome:
    """Run every input not finished yet in one ``executor.run``; write results and the summary CSV.

    Parameters
    ----------
    inputs
        ManyBodyInput JSON files, or directories whose ``*.json`` files are inputs; with ``recipe``,
        molecule files, or directories whose molecule files (``*.xyz``, ...) are inputs.
    executor
        Where fragments run; entered (``with``) or not, it serves the whole campaign in one session.
    out_dir
        Where ``<input>.result.json`` files and ``campaign_summary.csv`` go.
    force
        Recompute inputs whose result file is already there (cached fragments still hit).
    progress_callback
        ``callback(label, completed, total)`` once per finished fragment over the whole campaign,
        cache hits included; labels are ``"<input id>::<fragment label>"``.
    recipe
        What to compute on each molecule file's cluster, and how to cut it (the same for every file).
    screening
        Distance cutoffs applied to every input (see :mod:`qcmb_parsl.screening`); a result computed
        with other cutoffs (or none) is computed again.

    Raises
    ------
    InputError
        Naming the file, before anything is submitted or written, when an input is missing, malformed
        or invalid (its model chemistry included), or when two inputs would write the same result file.
    OutputError
        Also before anything is submitted or written, when ``out_dir`` or a result file in it cannot be
        written.
    RunInterrupted
        On SIGINT (and an unhandled SIGTERM or SIGHUP): before the run, with nothing written; during
        it, after the inputs whose fragments had all finished are written, with the summary.
    """
    with stop_before_run():
        return prepare_campaign(inputs, out_dir, force=force, recipe=recipe, screening=screening).run(
            executor, progress_callback
        )


def prepare_campaign(
    inputs: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    force: bool = False,
    recipe: ExpansionRecipe | None = None,
    screening: Screening | None = None,
) -> Campaign:
    """Read and check every input and every output path of a campaign; nothing is written or started.

    The arguments and the errors are :func:`run_campaign`'s: a command line prepares its campaign
    before it builds the executor, so that a refused input costs no executor.
    """
    start = time.perf_counter()
    paths = collect_inputs(inputs, molecules=recipe is not None)
    files = [open_input(path, recipe, Path(out_dir) / f"{input_stem(path)}{RESULT_SUFFIX}") for path in paths]
    _check_unique_ids(files)
    names = [f"{input_file.input_id}{RESULT_SUFFIX}" for input_file in files]
    names += [f"{input_file.input_id}{INPUT_SUFFIX}" for input_file in files if input_file.source is not None]
    checked_dir = check_output_dir(out_dir, [SUMMARY_NAME, *names])
    check_outputs_spare_inputs(
        [checked_dir / name for name in (SUMMARY_NAME, *names)],
        paths,
        f"output directory {str(checked_dir)!r}",
    )

    campaign = Campaign(files, checked_dir, start)
    cutoffs = None if screening is None else screening.record()
    for input_file in files:  # every input is validated before anything is planned or submitted
        result_path = checked_dir / f"{input_file.input_id}{RESULT_SUFFIX}"
        done = None if force else finished_result(result_path, input_file.digest, cutoffs)
        if done is not None:
            campaign.entries[input_file.input_id] = entry_from_result(
                input_file, result_path, done, "skipped"
            )
            logger.info("%s: result %s is there, skipping", input_file.shown, result_path)
            continue
        campaign.pending.append((input_file, input_file.prepare(screening)))
    return campaign


@dataclass
class Campaign:
    """The inputs of a campaign, read and checked: those to compute (with their validated computers)
    and the entries of those whose result is there already."""

    files: list[InputFile]
    out_dir: Path
    start: float
    pending: list[tuple[InputFile, Any]] = field(default_factory=list)
    entries: dict[str, CampaignEntry] = field(default_factory=dict)

    @property
    def programs(self) -> list[str]:
        """The programs the inputs still to compute run, sorted."""
        return sorted(
            {
                spec["program"]
                for _, computer in self.pending
                for spec in specifications_from_input(computer).values()
            }
        )

    def run(
        self, executor: FragmentExecutor, progress_callback: ProgressCallback | None = None
    ) -> CampaignOutcome:
        """Plan the inputs still to compute together, run them in one ``executor.run``; write what
        finished, and each input built from a molecule file once the run has begun."""
        tasks, owner, counts = [], {}, {}
        for input_file, computer in self.pending:
            planned = computer.fragment_tasks()
            counts[input_file.input_id] = len(planned)
            for task in planned:
                label = f"{input_file.input_id}{LABEL_SEPARATOR}{task.label}"
                owner[label] = (input_file.input_id, task.label)
                # The model chemistry too: an input error in one input says nothing about another's.
                tasks.append(
                    replace(task, label=label, mc=f"{input_file.input_id}{LABEL_SEPARATOR}{task.mc}")
                )

        summary = None
        stop: RunInterrupted | None = None
        report = None
        if tasks:
            logger.info("campaign: %d inputs to compute, %d fragment tasks", len(self.pending), len(tasks))
            try:
                report = executor.run(tasks, progress_callback)
            except RunInterrupted as interrupted:
                if interrupted.report is None:  # stopped before the run began: nothing to write
                    raise
                stop, report = interrupted, interrupted.report
        for input_file in self.files:  # the run began: the inputs built from molecule files repeat it
            write_built_input(input_file)
        if report is not None:
            summary = replace(
                report.summary, plan_time=sum(computer.plan_time for _, computer in self.pending)
            )
            plan_times = {input_file.input_id: computer.plan_time for input_file, computer in self.pending}
            reports = split_report(report, owner, plan_times)
            for input_file, computer in self.pending:
                part = reports.get(input_file.input_id)
                if part is None or len(part.results) < counts[input_file.input_id]:
                    self.entries[input_file.input_id] = CampaignEntry(str(input_file.path), "stopped")
                    continue
                self.entries[input_file.input_id] = _finish(
                    input_file, computer, part, self.out_dir, summary, self.start
                )

        ordered = [self.entries[input_file.input_id] for input_file in self.files]
        csv_path = write_summary_csv((entry.row() for entry in ordered), self.out_dir / SUMMARY_NAME)
        if stop is not None:
            # Inputs whose fragments had all finished are written; the rest resume from the cache.
            raise stop
        return CampaignOutcome(ordered, summary, csv_path)


def _check_unique_ids(files: Sequence[InputFile]) -> None:
    seen: dict[str, Path] = {}
    for input_file in files:
        if input_file.input_id in seen:
            raise InputError(
                f"inputs {seen[input_file.input_id]} and {input_file.shown} would both write "
                f"{input_file.input_id}{RESULT_SUFFIX}: rename one"
            )
        seen[input_file.input_id] = input_file.shown


def split_report(
    report: RunReport, owner: dict[str, tuple[str, str]], plan_times: dict[str, float]
) -> dict[str, RunReport]:
    """One RunReport per input from the report of a campaign's run, labels without their prefix.

    Each input's counts add up to the campaign's: a fragment computed once for several inputs counts
    as executed for the input whose label was submitted and as shared for the others. Each input's
    summary carries its own planning time (``plan_times`` by input id).
    """
    parts: dict[str, dict[str, TaskResult]] = {}
    for label, task_result in report.results.items():
        input_id, original = owner[label]
        parts.setdefault(input_id, {})[original] = replace(task_result, label=original)
    failures: dict[str, list[FragmentFailure]] = {}
    for failure in report.failures:
        input_id, original = owner[failure.label]
        failures.setdefault(input_id, []).append(failure.with_label(original))
    reports = {}
    for input_id, results in parts.items():
        summary = RunSummary(
            executor=report.summary.executor,
            wall_time=report.summary.wall_time,
            cache_dir=report.summary.cache_dir,
            plan_time=plan_times[input_id],
            driver_cpu_time=report.summary.driver_cpu_time,
            driver_peak_rss_mib=report.summary.driver_peak_rss_mib,
            started=report.summary.started,
            workers=report.summary.workers,
        )
        summary.count(results)
        summary.clock(results)
        reports[input_id] = RunReport(results, summary, failures.get(input_id, []))
    return reports


def _finish(
    input_file: InputFile, computer: Any, report: RunReport, out_dir: Path, campaign: RunSummary, start: float
) -> CampaignEntry:
    """Assemble and write one input's result, or record why it cannot be."""
    if report.failures:
        return _failed(input_file, report, str(FragmentsFailedError(report.failures, report.summary.n_tasks)))
    try:
        result = computer.assemble(report, wall_time=time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - one input's assembly must not lose the others' results
        return _failed(input_file, report, f"assembly failed: {type(exc).__name__}: {exc}".splitlines()[0])
    result.extras["qcmb_parsl"]["campaign"] = campaign.as_dict()
    mark_input(result, input_file)
    try:
        result_path = save_result(result, out_dir / f"{input_file.input_id}{RESULT_SUFFIX}")
    except OutputError as exc:
        return _failed(input_file, report, str(exc))
    return entry_from_result(input_file, result_path, result, "computed")


def _failed(input_file: InputFile, report: RunReport, error: str) -> CampaignEntry:
    logger.error("%s: %s", input_file.shown, error)
    summary = report.summary
    return CampaignEntry(
        str(input_file.shown),
        "failed",
        n_tasks=summary.n_tasks,
        n_cached=summary.n_cached,
        n_executed=summary.n_executed,
        n_shared=summary.n_shared,
        n_failed=summary.n_failed,
        fragment_time=_fragment_time(report.results.values()),
        error=error,
    )


def _fragment_time(results: Iterable[TaskResult]) -> float:
    """Seconds the fragments computed for this input took (cached and shared ones excluded)."""
    return sum(r.wall_time for r in results if r.success and r.source is Source.COMPUTED)


def entry_from_result(input_file: InputFile, result_path: Path, result: Any, status: str) -> CampaignEntry:
    """The summary row of an input from its ManyBodyResult (counts from ``extras["qcmb_parsl"]``)."""
    run = (result.extras or {}).get("qcmb_parsl", {})
    properties = dump(result.properties)
    fragment_time = None
    provenances = [(c.extras or {}).get("qcmb_parsl", {}) for c in fragment_results(result).values()]
    if provenances:
        fragment_time = sum(
            p.get("wall_time", 0.0)
            for p in provenances
            if p.get("cache") == "miss" and "shared_with" not in p
        )
    return CampaignEntry(
        input=str(input_file.shown),
        status=status,
        result_file=str(result_path),
        n_tasks=int(run.get("n_tasks", 0)),
        n_cached=int(run.get("n_cached", 0)),
        n_executed=int(run.get("n_executed", 0)),
        n_shared=int(run.get("n_shared", 0)),
        n_failed=int(run.get("n_failed", 0)),
        return_energy=properties.get("return_energy"),
        interaction_energies={
            bsse: value
            for bsse in BSSE_TYPES
            if (value := properties.get(f"{bsse}_corrected_interaction_energy")) is not None
        },
        max_nbody=max((n for per_n in nbody_energies(result).values() for n in per_n), default=None),
        wall_time=run.get("wall_time"),
        fragment_time=fragment_time,
    )
