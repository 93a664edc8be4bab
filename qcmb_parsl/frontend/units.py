"""Energy units people read results in: one choice for tables, pictures and the command line.

Interaction energies are shown in :data:`DEFAULT_UNIT` unless asked otherwise (``--units``); total
energies stay in hartree whatever the choice, since a total energy in kcal/mol is a six-digit number
nobody compares. Conversion factors are QCElemental's (CODATA 2014, as QCManyBody uses).
"""

from __future__ import annotations

import qcelemental

#: Units by the name people write them in, and how many of each make a hartree.
UNITS = {
    name: qcelemental.constants.conversion_factor("hartree", name) for name in ("kcal/mol", "kJ/mol")
} | {"Eh": 1.0}
DEFAULT_UNIT = "kcal/mol"
#: Decimals that keep a tenth of a cal/mol (or its equivalent) visible.
DECIMALS = {"kcal/mol": 4, "kJ/mol": 4, "Eh": 8}


def unit_name(text: str) -> str:
    """The unit ``text`` names, spelt as in :data:`UNITS` (``kcal/mol``, ``kJ/mol``, ``Eh``); case and a
    ``hartree`` for ``Eh`` are forgiven. ValueError naming the choices otherwise (argparse's ``type``)."""
    spelt = {name.lower(): name for name in UNITS} | {"hartree": "Eh"}
    try:
        return spelt[text.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown energy unit {text!r}: choose {', '.join(UNITS)}") from None


def convert(hartree: float, unit: str) -> float:
    """``hartree`` (Eh) in ``unit``."""
    return hartree * UNITS[unit]


def format_energy(hartree: float | None, unit: str) -> str:
    """``hartree`` in ``unit`` with the unit's decimals; empty for None."""
    return "" if hartree is None else f"{convert(hartree, unit):.{DECIMALS[unit]}f}"
