"""Expected cost of a fragment calculation, for longest-first scheduling.

The model is deliberately simple: basis functions (ghost atoms included, they carry functions too)
raised to the method's formal scaling. Only the ordering matters for scheduling; recorded wall times
turn it into seconds where earlier runs measured some (:mod:`qcmb_parsl.execution.ordering`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import lru_cache

logger = logging.getLogger(__name__)

#: Formal scaling exponent in the number of basis functions, by method family.
SCALING: dict[str, int] = {"hf": 4, "scf": 4, "dft": 4, "mp2": 5, "ccsd": 6, "ccsd(t)": 7}

_NBF_GUESS_BY_ROW = (2, 9, 13, 18)


def method_exponent(method: str) -> int:
    """Scaling exponent of ``method``; any name not listed is treated as a DFT functional."""
    name = method.lower()
    if name in SCALING:
        return SCALING[name]
    if re.match(r"^(ri-|df-|lmp2|mp2)", name):
        return SCALING["mp2"]
    if name.startswith("ccsd(t)") or name.startswith("ccsd[t]"):
        return SCALING["ccsd(t)"]
    if name.startswith("cc"):
        return SCALING["ccsd"]
    return SCALING["dft"]


@lru_cache(maxsize=4096)
def basis_functions(symbol: str, basis: str | None) -> int:
    """Spherical basis functions of one atom of ``symbol`` in ``basis``, from PySCF's basis library."""
    element = re.sub(r"[^A-Za-z]", "", symbol).capitalize() or "H"
    if basis:
        try:
            from pyscf import gto

            shells = gto.basis.load(basis, element)
            return sum((2 * shell[0] + 1) * (len(shell[1]) - 1) for shell in shells)
        except Exception:  # noqa: BLE001 - an unknown basis only weakens the estimate
            logger.debug("basis %s unknown to PySCF for %s; guessing its size", basis, element)
    from qcelemental import periodictable

    z = periodictable.to_Z(element)
    row = 0 if z <= 2 else 1 if z <= 10 else 2 if z <= 18 else 3
    return _NBF_GUESS_BY_ROW[row]


def count_basis_functions(symbols: Iterable[str], basis: str | None) -> int:
    return sum(basis_functions(symbol, basis) for symbol in symbols)


def scaled_cost(nbf: int, method: str) -> float:
    """Relative cost of a fragment: its basis functions to the method's scaling power."""
    return float(max(nbf, 1)) ** method_exponent(method)
