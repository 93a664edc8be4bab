"""``qcmb-parsl presets`` as tables: every preset in one, and one preset's options in another.

The rows are :mod:`qcmb_parsl.presets.describe`'s, the same the presets reference page is built from.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..presets import get_preset
from ..presets.describe import option_rows, ordered_presets


def presets_table() -> Table:
    """One row per preset: its name, what it is for, what it needs."""
    table = Table(title="Executor presets", title_justify="left")
    for column in ("preset", "for", "needs"):
        table.add_column(column, overflow="fold")
    for preset in ordered_presets():
        table.add_row(preset.name, preset.purpose or preset.summary, preset.needs)
    return table


def preset_view(name: str) -> Group:
    """Preset ``name``: what it is, is for and needs, then a row per option (type, default, meaning)."""
    preset = get_preset(name)
    lines = Text.assemble(
        (preset.name, "bold"),
        f": {preset.summary}\n",
        ("for:   ", "bold"),
        f"{preset.purpose or preset.summary}\n",
        ("needs: ", "bold"),
        preset.needs,
    )
    table = Table(title=f"Options of {name}", title_justify="left")
    table.add_column("option", no_wrap=True)
    table.add_column("type")
    table.add_column("default")
    table.add_column("meaning", overflow="fold")
    for row in option_rows(name):
        table.add_row(row.name, row.type, row.default, row.description)
    return Group(lines, table)
