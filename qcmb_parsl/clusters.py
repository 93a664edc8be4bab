"""Hydrogen-bonded water clusters of any size for demos, benchmarks and tests.

Waters sit on a box lattice: chains along x with O–O 2.9 Angstrom, each water donating one
hydrogen bond straight to the next along its chain and a bent one to the neighbouring chain; layers
3.1 Angstrom apart alternate their orientation so that their dipoles are antiparallel. The result
is deterministic, bound (negative interaction energies), and no two fragments come closer than an
H-bond (~1.94 Angstrom).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

BOHR_PER_ANGSTROM = 1 / 0.52917721067
_OH = 0.9572
_HOH = math.radians(104.52)
_MONOMER = np.array([[0.0, 0.0, 0.0], [_OH, 0.0, 0.0], [_OH * math.cos(_HOH), _OH * math.sin(_HOH), 0.0]])
_FLIPPED = _MONOMER * np.array([-1.0, -1.0, 1.0])
_SPACING = np.array([2.9, 3.0, 3.1])


def water_cluster(n: int, with_charges: bool = True) -> dict[str, Any]:
    """QCSchema molecule dict (Bohr) of ``n`` waters, one fragment each.

    ``with_charges=False`` leaves out fragment charges and multiplicities, as many user inputs do.
    """
    side = math.ceil(round(n ** (1 / 3), 9))
    coords = []
    for i in range(n):
        index = np.array([i % side, (i // side) % side, i // (side * side)])
        monomer = _FLIPPED if index[2] % 2 else _MONOMER
        coords.append(monomer + index * _SPACING)
    molecule: dict[str, Any] = {
        "symbols": ["O", "H", "H"] * n,
        "geometry": (np.vstack(coords) * BOHR_PER_ANGSTROM).ravel().tolist(),
        "fragments": [[3 * i, 3 * i + 1, 3 * i + 2] for i in range(n)],
        "molecular_charge": 0.0,
        "molecular_multiplicity": 1,
    }
    if with_charges:
        molecule["fragment_charges"] = [0.0] * n
        molecule["fragment_multiplicities"] = [1] * n
    return molecule
