"""``qcmb-parsl optimize``: an OptimizationInput file in, its OptimizationResult file and a step table out."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import qcelemental
from qcelemental.models import v2 as qcel_v2
from rich.table import Table

from ..errors import InputError
from ..execution.executors import FragmentExecutor
from ..optimization import optimize
from ..screening import Screening

KCAL_PER_HARTREE = qcelemental.constants.conversion_factor("hartree", "kcal/mol")

OPTIMIZATION_RESULT = "qcschema_optimization_result"


def optimize_file(
    path: str | os.PathLike,
    data: dict[str, Any],
    optimizer: str,
    executor: FragmentExecutor,
    screening: Screening | None = None,
) -> qcel_v2.OptimizationResult:
    """Optimize ``data``, read from ``path``; the result records the input's path and digest."""
    try:
        result = optimize(data, optimizer=optimizer, executor=executor, screening=screening)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    result.extras["qcmb_parsl"].update(input_file=str(path), input_sha256=digest)
    return result


def load_optimization_result(path: str | os.PathLike) -> qcel_v2.OptimizationResult | None:
    """The OptimizationResult in ``path``, or None when the file holds something else (a ManyBodyResult)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None  # the ManyBodyResult reader says what is wrong with the file
    if not isinstance(data, dict) or data.get("schema_name") != OPTIMIZATION_RESULT:
        return None
    try:
        return qcel_v2.OptimizationResult(**data)
    except Exception as exc:  # noqa: BLE001 - pydantic errors become one line
        from ..planning.inputs import one_line_validation_error

        raise InputError(f"{path}: {one_line_validation_error(exc, 'OptimizationResult')}") from None


def history_table(result: qcel_v2.OptimizationResult) -> Table:
    """One row per step: energy, its change, gradient norms, fragments computed and cached, wall time."""
    summary = result.extras["qcmb_parsl"]
    table = Table(
        title=f"{summary['optimizer']} optimization, {summary['n_steps']} steps ({summary['executor']})"
    )
    for column in (
        "step",
        "energy (Eh)",
        "change (kcal/mol)",
        "grad rms",
        "grad max",
        "computed",
        "cached",
        "s",
    ):
        table.add_column(column, justify="right")
    previous = None
    for step in summary["steps"]:
        change = "" if previous is None else f"{(step['energy'] - previous) * KCAL_PER_HARTREE:+.4f}"
        previous = step["energy"]
        run = step["run"]
        table.add_row(
            str(step["step"]),
            f"{step['energy']:.10f}",
            change,
            f"{step['gradient_rms']:.2e}",
            f"{step['gradient_max']:.2e}",
            str(run["n_executed"]),
            str(run["n_cached"]),
            f"{step['wall_time']:.1f}",
        )
    return table


def summary_line(result: qcel_v2.OptimizationResult) -> str:
    summary = result.extras["qcmb_parsl"]
    line = (
        f"{summary['n_steps']} steps, {summary['n_tasks']} fragments: {summary['n_executed']} computed, "
        f"{summary['n_cached']} from the cache, {summary['n_shared']} shared; final energy "
        f"{result.properties.return_energy:.10f} Eh; wall time {summary['wall_time']:.1f} s "
        f"({summary['executor']})"
    )
    screening = summary.get("screening")
    if screening:
        crossed = screening["at_final_geometry"]
        kept = ", ".join(
            f"{k['n_kept']} of {k['n_kept'] + k['n_dropped']} {n}-body"
            for n, k in screening["levels"].items()
        )
        line += (
            f"; screened: {kept} kept at the initial geometry, "
            f"{len(crossed['added']) + len(crossed['removed'])} subsystems across a cutoff at the final one"
        )
    return line


def step_summaries(result: Any) -> list[dict[str, Any]]:
    """The per-step run summaries qcmb_parsl keeps in an OptimizationResult's extras."""
    return list((result.extras or {}).get("qcmb_parsl", {}).get("steps", []))
