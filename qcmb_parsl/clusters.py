"""Water clusters of any size for demos, benchmarks and tests: ManyBodyInput molecules in one call.

Monomers (experimental geometry) sit on a cubic lattice 3.4 Angstrom apart (closest atoms of
neighbours ~1.6-1.7 Angstrom), each turned by its own
deterministic rotation, so an n-water cluster is the same everywhere and no two fragments coincide.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

BOHR_PER_ANGSTROM = 1 / 0.52917721067
_OH = 0.9572
_HOH = math.radians(104.52)
_MONOMER = np.array(
    [
        [0.0, 0.0, 0.0],
        [_OH, 0.0, 0.0],
        [_OH * math.cos(_HOH), _OH * math.sin(_HOH), 0.0],
    ]
)


def _rotation(index: int) -> np.ndarray:
    a, b, c = (0.7 * index + 0.3, 1.3 * index + 0.5, 0.4 * index + 1.1)
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def water_cluster(n: int, spacing: float = 3.4, with_charges: bool = True) -> dict[str, Any]:
    """QCSchema molecule dict (Bohr) of ``n`` waters, one fragment each.

    ``with_charges=False`` leaves out fragment charges and multiplicities, as many user inputs do.
    """
    side = math.ceil(n ** (1 / 3))
    coords = []
    for i in range(n):
        site = np.array([i % side, (i // side) % side, i // (side * side)], dtype=float) * spacing
        coords.append(_MONOMER @ _rotation(i).T + site)
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
