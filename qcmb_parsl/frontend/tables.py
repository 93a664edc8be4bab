"""Tables of a ManyBodyResult for people: n-body total and interaction energies per BSSE treatment.

Total energies are in hartree; interaction energies in the unit asked for (kcal/mol unless told, see
:mod:`qcmb_parsl.frontend.units`). A cell left blank is explained under the table: a counterpoise
(or VMFC) total energy needs every monomer in its own basis as well, which QCManyBody computes only
when asked (``return_total_data``, or a no-CP treatment beside it, whose monomers it shares).
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..schema import dump
from .units import DEFAULT_UNIT, format_energy

BSSE_LABELS = {"cp": "CP", "nocp": "no-CP", "vmfc": "VMFC"}
#: How to fill a blank total: the option for a molecule file, the keyword in an input file.
TOTALS_HINT = "--total-energies for a molecule file, return_total_data: true in an input's keywords"


def nbody_energies(result: Any) -> dict[str, dict[int, dict[str, float | None]]]:
    """{bsse: {n: {"total": E, "interaction": IE}}} from the result's properties (Eh)."""
    props = dump(result.properties)
    table: dict[str, dict[int, dict[str, float | None]]] = {}
    prefixes = {"cp": "cp_corrected", "nocp": "nocp_corrected", "vmfc": "vmfc_corrected"}
    nfr = props.get("calcinfo_nfr") or 0
    for bsse, prefix in prefixes.items():
        for n in range(1, nfr + 1):
            total = props.get(f"{prefix}_total_energy_through_{n}_body")
            interaction = props.get(f"{prefix}_interaction_energy_through_{n}_body")
            if total is None and interaction is None:
                continue
            table.setdefault(bsse, {})[n] = {"total": total, "interaction": interaction}
    return table


def energy_table(result: Any, units: str = DEFAULT_UNIT) -> RenderableType:
    """A rich table: one row per n-body level, total (Eh) and interaction energy (``units``) per BSSE
    treatment; a line under it says why a column is blank, when one is.

    A screened result has a column more, saying per level the cutoff and how many subsystems were kept.
    """
    energies = nbody_energies(result)
    screened = screened_levels(result)
    table = Table(title="Many-body expansion" + (", screened" if screened else ""))
    table.add_column("n-body", justify="right")
    for bsse in energies:
        label = BSSE_LABELS.get(bsse, bsse)
        table.add_column(f"{label} total (Eh)", justify="right")
        table.add_column(f"{label} interaction ({units})", justify="right")
    if screened:
        table.add_column("screened (kept of all)", justify="right")
    levels = sorted({n for per_n in energies.values() for n in per_n})
    for n in levels:
        row = [str(n)]
        for per_n in energies.values():
            values = per_n.get(n, {})
            row += [format_energy(values.get("total"), "Eh"), format_energy(values.get("interaction"), units)]
        if screened:
            row.append(screened.get(n, ""))
        table.add_row(*row)
    blank = [
        BSSE_LABELS.get(bsse, bsse)
        for bsse, per_n in energies.items()
        if all(values.get("total") is None for values in per_n.values())
    ]
    if not blank:
        return table
    note = (
        f"{' and '.join(blank)} total left blank: a BSSE-corrected total energy needs every monomer in its "
        f"own basis too, computed only when asked ({TOTALS_HINT})."
    )
    return Group(table, Text(note))


def screened_levels(result: Any) -> dict[int, str]:
    """Per screened n-body level of a result, ``"≤ 8.0 Å: 25 of 28"``; empty for an unscreened one."""
    record = (result.extras or {}).get("qcmb_parsl", {}).get("screening") or {}
    marks = {}
    for level, kept in record.get("levels", {}).items():
        if kept["cutoff"] is not None:
            total = kept["n_kept"] + kept["n_dropped"]
            marks[int(level)] = f"≤ {kept['cutoff']:g} Å: {kept['n_kept']} of {total}"
    return marks


def console() -> Any:
    """The console commands print on: a terminal's width, or 160 columns into a file or a pipe."""
    from rich.console import Console

    shown = Console()
    return shown if shown.is_terminal else Console(width=160)


def run_line(run: dict[str, Any]) -> str:
    """``7 fragments: 7 computed, 0 from the cache, ...; wall time 9.7 s (local)``, and where the time
    went (:func:`where_time_went`), from a run summary (``extras["qcmb_parsl"]``)."""
    return (
        f"{run['n_tasks']} fragments: {run['n_executed']} computed, {run['n_cached']} from the cache, "
        f"{run['n_shared']} shared, {run['n_failed']} failed; wall time {run['wall_time']:.1f} s "
        f"({run['executor']}){where_time_went(run)}"
    )


def where_time_went(run: dict[str, Any]) -> str:
    """A second line: ``6.1 s start-up (...), 2.1 s computing fragments (0.9 s of engine time), 1.5 s
    the rest (...)``; nothing when no fragment was computed (every answer came from the cache)."""
    if not run.get("engine_time"):
        return ""
    workers = run.get("workers") or 0
    startup, computing = run.get("startup_time", 0.0), run.get("fragments_time", 0.0)
    rest = max(run["wall_time"] - startup - computing, 0.0)
    return (
        f"\n  {startup:.1f} s start-up (Parsl, {workers} worker{'' if workers == 1 else 's'} and their "
        f"engine templates), {computing:.1f} s computing fragments ({run['engine_time']:.1f} s of engine "
        f"time), {rest:.1f} s the rest (planning, cache, shut-down)"
    )
