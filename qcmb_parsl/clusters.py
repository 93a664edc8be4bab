"""Hydrogen-bonded water clusters of any size for demos, benchmarks and tests.

Every cluster is one a chemist would recognise, and the same for a given ``n`` on every machine:

- ``n = 2``: the water dimer of the S22 set, no. 2 (CCSD(T)/cc-pVQZ geometry; Jurečka, Šponer, Černý
  and Hobza, Phys. Chem. Chem. Phys. 8, 1985 (2006), doi:10.1039/B600027D),
  ``examples/molecules/water_dimer.xyz``.
- ``n = 3``: the cyclic trimer, two free hydrogens on one side of the ring and one on the other,
  optimized at MP2/aug-cc-pVDZ with this package (``qcmb-parsl optimize``,
  ``examples/molecules/water_trimer.optimization.json``), not taken from a paper; its O–O distances
  are the 2.80 Å Xantheas and Dunning found at MP2 (J. Chem. Phys. 98, 8037 (1993),
  doi:10.1063/1.464558); ``examples/molecules/water_trimer.xyz``.
- any other ``n``: the ``n`` waters nearest the centre of a hexagonal ring of cubic ice (ice Ic,
  O–O 2.76 Å, each water donating two and accepting two hydrogen bonds). The hydrogens are ordered
  antiferroelectrically, so that a large cluster carries no macroscopic dipole. Every cut (the tests
  try 1 to 100 waters) is one hydrogen-bonded cluster whose closest two waters are a hydrogen bond
  apart (H···O 1.80 Å).

Monomers in the ice cut have the gas-phase geometry (O–H 0.9572 Å, H–O–H 104.52°), their hydrogens
symmetric about the two O···O directions they donate along.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np

BOHR_PER_ANGSTROM = 1 / 0.52917721067

#: S22 water dimer, Angstrom (donor first).
WATER_DIMER = np.array(
    [
        [-1.551007, -0.114520, 0.000000],
        [-1.934259, 0.762503, 0.000000],
        [-0.599677, 0.040712, 0.000000],
        [1.350625, 0.111469, 0.000000],
        [1.680398, -0.373741, -0.758561],
        [1.680398, -0.373741, 0.758561],
    ]
)
#: Cyclic water trimer, MP2/aug-cc-pVDZ minimum, Angstrom (each water donates to the next).
WATER_TRIMER = np.array(
    [
        [-0.081630, 1.613659, -0.018468],
        [-0.795793, 0.956896, 0.100197],
        [-0.228974, 2.276550, 0.666202],
        [-1.356592, -0.878398, 0.036446],
        [-0.416987, -1.150329, 0.025675],
        [-1.772829, -1.430218, 0.708885],
        [1.438221, -0.735261, -0.017977],
        [1.205076, 0.214378, -0.035873],
        [1.996669, -0.870042, -0.792978],
    ]
)

_OO = 2.76  # O–O distance of ice at low temperature, Angstrom
_OH = 0.9572
_HOH = math.radians(104.52)
#: The four hydrogen-bond directions of a site of the first diamond sublattice (the second's are opposite).
_BONDS = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / math.sqrt(3)


def water_cluster(n: int, with_charges: bool = True) -> dict[str, Any]:
    """QCSchema molecule dict (Bohr) of ``n`` hydrogen-bonded waters, one fragment each.

    ``with_charges=False`` leaves out fragment charges and multiplicities, as many user inputs do.
    """
    if n < 1:
        raise ValueError(f"a water cluster needs at least one water, got {n}")
    if n == 2:
        coords = WATER_DIMER
    elif n == 3:
        coords = WATER_TRIMER
    else:
        coords = _ice_cut(n)
    molecule: dict[str, Any] = {
        "symbols": ["O", "H", "H"] * n,
        "geometry": (coords * BOHR_PER_ANGSTROM).ravel().tolist(),
        "fragments": [[3 * i, 3 * i + 1, 3 * i + 2] for i in range(n)],
        "molecular_charge": 0.0,
        "molecular_multiplicity": 1,
    }
    if with_charges:
        molecule["fragment_charges"] = [0.0] * n
        molecule["fragment_multiplicities"] = [1] * n
    return molecule


def _ice_cut(n: int) -> np.ndarray:
    """The ``n`` waters (O, H, H rows, Angstrom) of the ice lattice nearest the centre of one ring."""
    reach = math.ceil((3 * n / (32 * math.pi)) ** (1 / 3)) + 1  # cells around the centre, with a margin
    oxygens, donations = _ice_lattice(reach)
    distance = np.round(np.linalg.norm(oxygens, axis=1), 6)
    order = np.lexsort((np.arange(len(oxygens)), distance))[:n]  # nearest first, ties in lattice order
    return np.array([atom for i in order for atom in _water(oxygens[i], donations[i])])


@cache
def _ice_lattice(reach: int) -> tuple[np.ndarray, np.ndarray]:
    """Oxygen sites (Angstrom) of cubic ice within ``reach`` cells of a chair ring's centre, and the
    two unit vectors along which each site donates.

    The diamond lattice has two sublattices: ``A`` sites (an fcc lattice) bond along :data:`_BONDS`,
    ``B`` sites along the opposite directions. ``A`` sites donate along bonds 0 and 1 in every other
    layer along y and along bonds 2 and 3 in the layers between. A ``B`` site then receives along one
    of bonds 0 and 2 (from the ``A`` layer below it) and one of bonds 1 and 3 (from the layer above),
    and donates along the two others: every bond holds one hydrogen, every water donates two and
    accepts two (the ice rules), and the dipoles of neighbouring layers cancel.
    """
    cell = 4 * _OO / math.sqrt(3)
    # The centre of the chair ring A(0,0,0) B(1,1,1) A(2,2,0) B(1,3,-1) A(0,2,-2) B(-1,1,-1), in cell/4.
    centre = np.array([0.5, 1.5, -0.5])
    fcc = np.array([[0, 0, 0], [0, 2, 2], [2, 0, 2], [2, 2, 0]])
    oxygens, donations = [], []
    span = range(-reach, reach + 1)
    for i, j, k in ((i, j, k) for i in span for j in span for k in span):
        for site in fcc + 4 * np.array([i, j, k]):
            even = (site[1] // 2) % 2 == 0
            oxygens += [site - centre, site + 1 - centre]
            donations += [
                _BONDS[[0, 1]] if even else _BONDS[[2, 3]],
                -(_BONDS[[1, 2]] if even else _BONDS[[0, 3]]),
            ]
    return np.array(oxygens) * cell / 4, np.array(donations)


def _water(oxygen: np.ndarray, donations: np.ndarray) -> list[np.ndarray]:
    """O, H, H of a gas-phase water at ``oxygen`` whose hydrogens straddle its two donor directions."""
    bisector = donations[0] + donations[1]
    bisector /= np.linalg.norm(bisector)
    spread = donations[0] - donations[1]
    spread /= np.linalg.norm(spread)
    half = _HOH / 2
    return [
        oxygen,
        oxygen + _OH * (math.cos(half) * bisector + math.sin(half) * spread),
        oxygen + _OH * (math.cos(half) * bisector - math.sin(half) * spread),
    ]
