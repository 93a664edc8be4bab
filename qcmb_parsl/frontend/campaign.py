"""Campaigns: many ManyBodyInput files run in one Parsl session, identical fragments computed once.

Every input is read and validated before anything is submitted. The fragments of all inputs still to
be computed are planned together, each label prefixed with its input's id (``"dimer::<label>"``), and
handed to one :meth:`~qcmb_parsl.execution.executors.FragmentExecutor.run`: the executor answers cached
fragments from the cache and computes each distinct fragment once, however many inputs contain it.
The results are then split back per input, each input's ManyBodyResult is assembled by upstream, and
written next to a summary CSV the moment the run ends.

A campaign is resumable: an input whose result file exists, parses, and was computed from the same
input (its digest is stored in the result) is skipped unless ``force``; everything else is recomputed,
answering from the cache every fragment that finished before.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import qcmanybody.models as qcmb_v1
import qcmanybody.models.v2 as qcmb_v2

from ..computer import ManyBodyComputer, ManyBodyComputerV2
from ..errors import FragmentsFailedError, InputError
from ..execution.executors import FragmentExecutor, ProgressCallback, RunReport, RunSummary
from ..execution.outcomes import FragmentFailure, Source, TaskResult
from .tables import nbody_energies

logger = logging.getLogger(__name__)

#: Suffix of a result file: ``dimer.json`` gives ``dimer.result.json``.
RESULT_SUFFIX = ".result.json"
#: Name of the campaign's summary table, written in the output directory.
SUMMARY_NAME = "campaign_summary.csv"
#: Between an input's id and a fragment label in the labels a campaign submits.
LABEL_SEPARATOR = "::"
#: BSSE treatments whose interaction energy (through the highest n-body level) the summary lists.
BSSE_TYPES = ("cp", "nocp", "vmfc")
#: Columns of the summary CSV, in order.
SUMMARY_COLUMNS = (
    "input",
    "status",
    "n_tasks",
    "n_cached",
    "n_executed",
    "n_shared",
    "n_failed",
    "return_energy",
    *(f"{bsse}_interaction_energy" for bsse in BSSE_TYPES),
    "max_nbody",
    "wall_time",
    "fragment_time",
    "result_file",
    "error",
)

_PROTOCOL = {1: "component_results", 2: "cluster_results"}
_COUNTS = ("n_tasks", "n_cached", "n_executed", "n_shared", "n_failed")
_V2_NAMES = {"qcschema_many_body_input", "qcschema_many_body_specification", "qcschema_atomic_specification"}
_V1_NAMES = {"qcschema_manybodyinput", "qcschema_manybodyspecification", "qcschema_atomicspecification"}


# -- inputs ---------------------------------------------------------------------------------------


@dataclass
class InputFile:
    """A ManyBodyInput read from disk: its JSON, schema version, id in a campaign and digest."""

    path: Path
    data: dict[str, Any]
    schema_version: int
    input_id: str
    digest: str

    @property
    def computer_class(self) -> type:
        return computer_class(self.schema_version)


def computer_class(schema_version: int) -> type:
    """The qcmb_parsl computer of a QCSchema version."""
    return ManyBodyComputerV2 if schema_version == 2 else ManyBodyComputer


def detect_schema_version(data: dict[str, Any]) -> int:
    """QCSchema version of a ManyBodyInput dict: 2 or 1.

    The first marker found decides: ``schema_version`` at the top level or in ``specification``; a
    ``schema_name`` there or on an atomic specification (``qcschema_many_body_input`` and
    ``qcschema_atomic_specification`` are v2); the protocol's name (``cluster_results`` is v2,
    ``component_results`` v1). An input without any marker is v1 when it validates as v1, else v2
    when it validates as v2, else v1 (whose validation error is then reported).
    """
    spec = data.get("specification") if isinstance(data.get("specification"), dict) else {}
    for holder in (data, spec):
        version = holder.get("schema_version")
        if version in (1, 2):
            return int(version)
    atomic = spec.get("specification")
    atomic_specs = []
    if isinstance(atomic, dict):
        atomic_specs = [atomic] if "model" in atomic else [s for s in atomic.values() if isinstance(s, dict)]
    for holder in (data, spec, *atomic_specs):
        name = holder.get("schema_name")
        if name in _V2_NAMES:
            return 2
        if name in _V1_NAMES:
            return 1
    protocols = spec.get("protocols") if isinstance(spec.get("protocols"), dict) else {}
    if "cluster_results" in protocols:
        return 2
    if "component_results" in protocols:
        return 1
    if _validates(qcmb_v1.ManyBodyInput, data) or not _validates(qcmb_v2.ManyBodyInput, data):
        return 1
    return 2


def _validates(model: type, data: dict[str, Any]) -> bool:
    try:
        model(**json.loads(json.dumps(data)))
    except Exception:  # noqa: BLE001 - pydantic v1 and v2 errors alike: it does not validate
        return False
    return True


def keep_fragment_results(data: dict[str, Any], schema_version: int) -> dict[str, Any]:
    """``data`` with the protocol keeping every fragment's AtomicResult, unless the input sets it.

    The fragments' results carry their provenance (host, process, start, wall time, cache), which
    ``qcmb-parsl report`` draws; upstream keeps them only with ``component_results: "all"`` (v1) or
    ``cluster_results: "all"`` (v2). An explicit value in the input is left as it is.
    """
    data = json.loads(json.dumps(data))
    spec = data.get("specification")
    if isinstance(spec, dict):
        protocols = spec.get("protocols")
        if protocols is None:
            protocols = spec["protocols"] = {}
        if isinstance(protocols, dict):
            protocols.setdefault(_PROTOCOL[schema_version], "all")
    return data


def input_digest(data: dict[str, Any]) -> str:
    """SHA-256 of the input's canonical JSON: a result file records it, so a changed input reruns."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read_input(
    path: str | os.PathLike, *, keep_results: bool = True, input_id: str | None = None
) -> InputFile:
    """Read a ManyBodyInput JSON file; InputError naming the file when it is missing or not JSON.

    ``keep_results`` sets the fragment-results protocol when the input leaves it out (see
    :func:`keep_fragment_results`). The input is not validated here: :meth:`prepare` does that.
    """
    path = Path(path)
    if not path.is_file():
        what = "does not exist" if not path.exists() else "is not a file"
        raise InputError(f"input file {str(path)!r} {what}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read input file {str(path)!r}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"input file {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(
            f"input file {str(path)!r} holds a JSON {type(data).__name__}, not a ManyBodyInput object"
        )
    version = detect_schema_version(data)
    if keep_results:
        data = keep_fragment_results(data, version)
    return InputFile(path, data, version, input_id or input_stem(path), input_digest(data))


def input_stem(path: str | os.PathLike) -> str:
    """``water_dimer`` for ``water_dimer.json`` (and for ``water_dimer``)."""
    name = Path(path).name
    return name[: -len(".json")] if name.lower().endswith(".json") else name


def default_result_path(input_path: str | os.PathLike) -> Path:
    """``INPUT.result.json`` next to the input."""
    path = Path(input_path)
    return path.with_name(input_stem(path) + RESULT_SUFFIX)


def prepare(input_file: InputFile) -> Any:
    """The validated computer of an input; InputError naming the file when the input is invalid."""
    try:
        return input_file.computer_class.prepare(input_file.data)
    except InputError as exc:
        raise InputError(f"{input_file.path}: {exc}") from None


def collect_inputs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Input files named or found (``*.json``, not ``*.result.json``, sorted) in the directories named."""
    found: list[Path] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            children = sorted(
                p for p in entry.glob("*.json") if p.is_file() and not p.name.endswith(RESULT_SUFFIX)
            )
            if not children:
                raise InputError(f"directory {str(entry)!r} holds no input *.json files")
            found.extend(children)
        else:
            found.append(entry)
    if not found:
        raise InputError("no input files given")
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


# -- results --------------------------------------------------------------------------------------


def load_result(path: str | os.PathLike) -> Any:
    """A ManyBodyResult (v1 or v2, by its ``schema_version``) read from JSON; InputError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"result file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"result file {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"result file {str(path)!r} holds no ManyBodyResult object")
    model = qcmb_v2.ManyBodyResult if data.get("schema_version") == 2 else qcmb_v1.ManyBodyResult
    try:
        return model(**data)
    except Exception as exc:  # noqa: BLE001 - pydantic v1 and v2 errors alike
        from ..planning.inputs import one_line_validation_error

        raise InputError(f"{path}: {one_line_validation_error(exc, 'ManyBodyResult')}") from None


def result_json(result: Any) -> str:
    """The result as indented JSON text, v1 or v2 alike."""
    text = result.model_dump_json() if hasattr(result, "model_fields") else result.json()
    return json.dumps(json.loads(text), indent=1) + "\n"


def write_result(result: Any, path: str | os.PathLike) -> Path:
    """Write the result JSON atomically (a killed campaign never leaves half a file that looks done)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(result_json(result))
    partial.replace(path)
    return path


def finished_result(path: Path, digest: str) -> Any | None:
    """The stored result of the input with ``digest``, or None when it must be computed (again)."""
    if not path.is_file():
        return None
    try:
        result = load_result(path)
    except InputError as exc:
        logger.warning("%s is not a valid result (%s): computing it again", path, exc)
        return None
    stored = (result.extras or {}).get("qcmb_parsl", {}).get("input_sha256")
    if not result.success:
        logger.warning("%s records a failed calculation: computing it again", path)
        return None
    if stored is not None and stored != digest:
        logger.warning("%s was computed from another version of its input: computing it again", path)
        return None
    return result


def mark_input(result: Any, input_file: InputFile) -> Any:
    """Record in the result which input (path and digest) it was computed from."""
    result.extras["qcmb_parsl"].update(input_file=str(input_file.path), input_sha256=input_file.digest)
    return result


# -- campaign -------------------------------------------------------------------------------------


@dataclass
class CampaignEntry:
    """One input of a campaign: what happened to it, its counts and energies; a row of the summary CSV.

    ``status`` is ``"computed"``, ``"skipped"`` (a valid result was there; counts are those of the run
    that computed it) or ``"failed"`` (some of its fragments failed; ``error`` says which).
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
        row = {name: getattr(self, name, None) for name in SUMMARY_COLUMNS}
        for bsse in BSSE_TYPES:
            row[f"{bsse}_interaction_energy"] = self.interaction_energies.get(bsse)
        return {name: "" if value is None else value for name, value in row.items()}


@dataclass
class CampaignReport:
    """What a campaign did: one entry per input (in input order), the shared run's summary, the CSV."""

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
) -> CampaignReport:
    """Run every input not finished yet in one ``executor.run``; write results and the summary CSV.

    Parameters
    ----------
    inputs
        ManyBodyInput JSON files, or directories whose ``*.json`` files are inputs.
    executor
        Where fragments run; entered (``with``) or not, it serves the whole campaign in one session.
    out_dir
        Where ``<input>.result.json`` files and ``campaign_summary.csv`` go.
    force
        Recompute inputs whose result file is already there (cached fragments still hit).
    progress_callback
        ``callback(label, completed, total)`` once per finished fragment over the whole campaign,
        cache hits included; labels are ``"<input id>::<fragment label>"``.

    Raises InputError (naming the file) before anything is submitted when an input is missing,
    malformed or invalid, or when two inputs would write the same result file.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    files = [read_input(path) for path in collect_inputs(inputs)]
    _check_unique_ids(files)

    entries: dict[str, CampaignEntry] = {}
    pending: list[tuple[InputFile, Any]] = []
    plan_times: dict[str, float] = {}
    for input_file in files:  # every input is validated before anything is planned or submitted
        result_path = out_dir / f"{input_file.input_id}{RESULT_SUFFIX}"
        done = None if force else finished_result(result_path, input_file.digest)
        if done is not None:
            entries[input_file.input_id] = entry_from_result(input_file, result_path, done, "skipped")
            logger.info("%s: result %s is there, skipping", input_file.path, result_path)
            continue
        prepare_start = time.perf_counter()
        pending.append((input_file, prepare(input_file)))
        plan_times[input_file.input_id] = time.perf_counter() - prepare_start

    tasks, owner = [], {}
    for input_file, computer in pending:
        plan_start = time.perf_counter()
        for task in computer.fragment_tasks():
            label = f"{input_file.input_id}{LABEL_SEPARATOR}{task.label}"
            owner[label] = (input_file.input_id, task.label)
            # The model chemistry too: an input error in one input says nothing about another's.
            tasks.append(replace(task, label=label, mc=f"{input_file.input_id}{LABEL_SEPARATOR}{task.mc}"))
        plan_times[input_file.input_id] += time.perf_counter() - plan_start

    summary = None
    if tasks:
        logger.info("campaign: %d inputs to compute, %d fragment tasks", len(pending), len(tasks))
        report = executor.run(tasks, progress_callback)
        summary = report.summary
        summary.plan_time = sum(plan_times.values())
        reports = split_report(report, owner)
        for input_file, computer in pending:
            sub = reports[input_file.input_id]
            sub.summary.plan_time = plan_times[input_file.input_id]
            entries[input_file.input_id] = _finish(input_file, computer, sub, out_dir, summary, start)

    ordered = [entries[input_file.input_id] for input_file in files]
    csv_path = write_summary_csv(ordered, out_dir / SUMMARY_NAME)
    return CampaignReport(ordered, summary, csv_path)


def _check_unique_ids(files: Sequence[InputFile]) -> None:
    seen: dict[str, Path] = {}
    for input_file in files:
        if input_file.input_id in seen:
            raise InputError(
                f"inputs {seen[input_file.input_id]} and {input_file.path} would both write "
                f"{input_file.input_id}{RESULT_SUFFIX}: rename one"
            )
        seen[input_file.input_id] = input_file.path


def split_report(report: RunReport, owner: dict[str, tuple[str, str]]) -> dict[str, RunReport]:
    """One RunReport per input from the report of a campaign's run, labels without their prefix.

    Each input's counts add up to the campaign's: a fragment computed once for several inputs counts
    as executed for the input whose label was submitted and as shared for the others.
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
            cache_dir=report.summary.cache_dir,
            wall_time=report.summary.wall_time,
            driver_cpu_time=report.summary.driver_cpu_time,
            driver_peak_rss_mib=report.summary.driver_peak_rss_mib,
        )
        summary.count(results)
        reports[input_id] = RunReport(results, summary, failures.get(input_id, []))
    return reports


def _finish(
    input_file: InputFile, computer: Any, report: RunReport, out_dir: Path, campaign: RunSummary, start: float
) -> CampaignEntry:
    """Assemble and write one input's result, or record why it cannot be."""
    result = None
    if report.failures:
        error = str(FragmentsFailedError(report.failures, report.summary.n_tasks))
    else:
        try:
            result = computer.assemble(report, wall_time=time.perf_counter() - start)
        except Exception as exc:  # noqa: BLE001 - one input's assembly must not lose the others' results
            error = f"assembly failed: {type(exc).__name__}: {exc}".splitlines()[0]
    if result is None:
        logger.error("%s: %s", input_file.path, error)
        counts = {name: getattr(report.summary, name) for name in _COUNTS}
        fragment_time = _fragment_time(report.results.values())
        return CampaignEntry(
            str(input_file.path), "failed", **counts, fragment_time=fragment_time, error=error
        )
    result.extras["qcmb_parsl"]["campaign"] = campaign.as_dict()
    mark_input(result, input_file)
    result_path = write_result(result, out_dir / f"{input_file.input_id}{RESULT_SUFFIX}")
    return entry_from_result(input_file, result_path, result, "computed")


def _fragment_time(results: Iterable[TaskResult]) -> float:
    """Seconds the fragments computed for this input took (cached and shared ones excluded)."""
    return sum(r.wall_time for r in results if r.success and r.source is Source.COMPUTED)


def entry_from_result(input_file: InputFile, result_path: Path, result: Any, status: str) -> CampaignEntry:
    """The summary row of an input from its ManyBodyResult (counts from ``extras["qcmb_parsl"]``)."""
    run = (result.extras or {}).get("qcmb_parsl", {})
    properties = _properties(result)
    fragment_time = None
    components = getattr(result, "component_results", None) or getattr(result, "cluster_results", None) or {}
    if components:
        fragment_time = sum(
            (c.extras or {}).get("qcmb_parsl", {}).get("wall_time", 0.0)
            for c in components.values()
            if (c.extras or {}).get("qcmb_parsl", {}).get("cache") == "miss"
            and "shared_with" not in (c.extras or {}).get("qcmb_parsl", {})
        )
    return CampaignEntry(
        input=str(input_file.path),
        status=status,
        result_file=str(result_path),
        **{name: int(run.get(name, 0)) for name in _COUNTS},
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


def _properties(result: Any) -> dict[str, Any]:
    props = result.properties
    return props.model_dump() if hasattr(props, "model_fields") else props.dict()


def write_summary_csv(entries: Sequence[CampaignEntry], path: str | os.PathLike) -> Path:
    """The campaign's summary table: one row per input, energies in Eh, times in seconds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        for entry in entries:
            writer.writerow(entry.row())
    partial.replace(path)
    return path
