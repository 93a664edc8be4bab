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
    """A rich table: one row per n-body level, total and interaction energy per BSSE treatment."""
    energies = nbody_energies(result)
    table = Table(title="Many-body expansion (Eh)")
    table.add_column("n-body", justify="right")
    for bsse in energies:
        label = BSSE_LABELS.get(bsse, bsse)
        table.add_column(f"{label} total", justify="right")
        table.add_column(f"{label} interaction", justify="right")
    levels = sorted({n for per_n in energies.values() for n in per_n})
    for n in levels:
        row = [str(n)]
        for per_n in energies.values():
            values = per_n.get(n, {})
            row += [_fmt(values.get("total")), _fmt(values.get("interaction"))]
        table.add_row(*row)
    return table


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.8f}"
