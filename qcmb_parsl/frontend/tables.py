"""Tables of a ManyBodyResult for people: n-body total and interaction energies per BSSE treatment."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from ..schema import dump

BSSE_LABELS = {"cp": "CP", "nocp": "no-CP", "vmfc": "VMFC"}


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


def energy_table(result: Any) -> Table:
    """A rich table: one row per n-body level, total and interaction energy per BSSE treatment.

    A screened result has a column more, saying per level the cutoff and how many subsystems were kept.
    """
    energies = nbody_energies(result)
    screened = screened_levels(result)
    table = Table(title="Many-body expansion (Eh)" + (", screened" if screened else ""))
    table.add_column("n-body", justify="right")
    for bsse in energies:
        label = BSSE_LABELS.get(bsse, bsse)
        table.add_column(f"{label} total", justify="right")
        table.add_column(f"{label} interaction", justify="right")
    if screened:
        table.add_column("screened (kept of all)", justify="right")
    levels = sorted({n for per_n in energies.values() for n in per_n})
    for n in levels:
        row = [str(n)]
        for per_n in energies.values():
            values = per_n.get(n, {})
            row += [_fmt(values.get("total")), _fmt(values.get("interaction"))]
        if screened:
            row.append(screened.get(n, ""))
        table.add_row(*row)
    return table


def screened_levels(result: Any) -> dict[int, str]:
    """Per screened n-body level of a result, ``"≤ 8.0 Å: 25 of 28"``; empty for an unscreened one."""
    record = (result.extras or {}).get("qcmb_parsl", {}).get("screening") or {}
    marks = {}
    for level, kept in record.get("levels", {}).items():
        if kept["cutoff"] is not None:
            total = kept["n_kept"] + kept["n_dropped"]
            marks[int(level)] = f"≤ {kept['cutoff']:g} Å: {kept['n_kept']} of {total}"
    return marks


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.8f}"
