"""Expected cost of a fragment calculation, for longest-first scheduling.

The model is each method's formal scaling in what a fragment really has: ``N`` basis functions (ghost
atoms included: they carry functions too), ``o`` occupied orbitals (real electrons only) and
``v = N - o`` virtual ones. Counterpoise fragments all live in the same cluster basis, so a model
in ``N`` alone gives them one cost; their real electrons are what tells a monomer in the trimer's
basis from the trimer. Only the ordering matters for scheduling; recorded wall times turn it into
seconds per model chemistry (:mod:`qcmb_parsl.execution.ordering`).

============  ==============  =================================================================
family        cost            dominant step
============  ==============  =================================================================
GFN-xTB       N               fixed costs (QCEngine's and the library's): measured here, a water
                              trimer costs 1.5-3x a monomer through QCEngine, not the 27x of the
                              N^3 diagonalisation, which dominates only far beyond MBE fragments
HF, DFT       N^4             two-electron integrals and Fock builds
MP2           o N^4           the first quarter of the integral transformation
CCSD          o^2 v^4         the particle-particle ladder
CCSD(T)       o^3 v^4         the perturbative triples
============  ==============  =================================================================
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import lru_cache

logger = logging.getLogger(__name__)

#: Formal scaling exponent in the number of basis functions, by method family.
SCALING: dict[str, int] = {"xtb": 1, "hf": 4, "scf": 4, "dft": 4, "mp2": 5, "ccsd": 6, "ccsd(t)": 7}

#: Exponents of (occupied, virtual, all) orbitals in each family's formal cost.
_FORMAL: dict[int, tuple[int, int, int]] = {
    1: (0, 0, 1),
    4: (0, 0, 4),
    5: (1, 0, 4),
    6: (2, 4, 0),
    7: (3, 4, 0),
}

_NBF_GUESS_BY_ROW = (2, 9, 13, 18)


def method_exponent(method: str) -> int:
    """Scaling exponent of ``method``; any name not listed is treated as a DFT functional."""
    name = method.lower()
    if name in SCALING:
        return SCALING[name]
    if re.match(r"^gfn\d?-?xtb$", name):
        return SCALING["xtb"]
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


def electrons(symbols: Iterable[str]) -> int:
    """Electrons of neutral atoms of ``symbols`` (a fragment's charge is added by the caller)."""
    from qcelemental import periodictable

    return sum(periodictable.to_Z(re.sub(r"[^A-Za-z]", "", symbol).capitalize() or "H") for symbol in symbols)


def formal_cost(method: str, nbf: int, occupied: int) -> float:
    """Relative cost of a fragment with ``nbf`` basis functions and ``occupied`` occupied orbitals."""
    n = float(max(nbf, 1))
    o = float(min(max(occupied, 1), n))
    v = max(n - o, 1.0)
    o_power, v_power, n_power = _FORMAL[method_exponent(method)]
    return o**o_power * v**v_power * n**n_power
