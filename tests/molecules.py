"""Small clusters and ManyBodyInputs for the tests: water dimer and trimer, Bohr geometries."""

from __future__ import annotations

from typing import Any

from qcelemental.models.v2 import Molecule

ANGSTROM = 1 / 0.52917721067

WATER_TRIMER_ANGSTROM = [
    [-1.551007, -0.114520, 0.000000],
    [-1.934259, 0.762503, 0.000000],
    [-0.599677, 0.040712, 0.000000],
    [1.350625, 0.111469, 0.000000],
    [1.680398, -0.373741, -0.758561],
    [1.680398, -0.373741, 0.758561],
    [-0.100000, 1.200000, 2.900000],
    [-0.500000, 0.400000, 3.200000],
    [0.800000, 1.100000, 3.300000],
]


def water_cluster(n: int) -> dict[str, Any]:
    """Molecule dict of the first ``n`` (<= 3) waters of the trimer, one fragment each."""
    coords = WATER_TRIMER_ANGSTROM[: 3 * n]
    return {
        "symbols": ["O", "H", "H"] * n,
        "geometry": [x * ANGSTROM for atom in coords for x in atom],
        "fragments": [[3 * i, 3 * i + 1, 3 * i + 2] for i in range(n)],
        "molecular_charge": 0.0,
        "molecular_multiplicity": 1,
        "fragment_charges": [0.0] * n,
        "fragment_multiplicities": [1] * n,
    }


def water_xyz(n: int) -> str:
    """The first ``n`` waters of the trimer as an XYZ file's text (Angstrom), as a chemist has them."""
    atoms = zip(["O", "H", "H"] * n, WATER_TRIMER_ANGSTROM[: 3 * n], strict=True)
    lines = [f"{symbol} {x:.6f} {y:.6f} {z:.6f}" for symbol, (x, y, z) in atoms]
    return "\n".join([str(3 * n), f"{n} waters", *lines]) + "\n"


def mbe_input(
    n: int = 2,
    *,
    method: str = "hf",
    basis: str = "sto-3g",
    program: str = "pyscf",
    driver: str = "energy",
    bsse_type: list[str] | None = None,
    max_nbody: int | None = None,
    levels: dict | None = None,
    specifications: dict | None = None,
    keywords: dict | None = None,
    schema_version: int = 1,
) -> dict[str, Any]:
    """ManyBodyInput dict (v1 or v2 layout) with all component results kept for provenance checks."""
    mb_keywords: dict[str, Any] = {"bsse_type": bsse_type or ["cp"]}
    if max_nbody is not None:
        mb_keywords["max_nbody"] = max_nbody
    if levels is not None:
        mb_keywords["levels"] = levels
    specs = specifications or {
        "mc": {
            "program": program,
            "model": {"method": method, "basis": basis},
            "driver": driver,
            "keywords": keywords or {},
        }
    }
    if levels is None and specifications is None:
        specs = next(iter(specs.values()))
    if schema_version == 2:
        key = "cluster_results"
    else:
        key = "component_results"
    return {
        "molecule": water_cluster(n),
        "specification": {
            "specification": specs,
            "keywords": mb_keywords,
            "driver": driver,
            "protocols": {key: "all"},
        },
    }


#: The first two waters of the trimer as a QCElemental v2 Molecule (Angstrom input, two fragments).
DIMER = Molecule.from_data(
    """
    O  -1.551007  -0.114520   0.000000
    H  -1.934259   0.762503   0.000000
    H  -0.599677   0.040712   0.000000
    --
    O   1.350625   0.111469   0.000000
    H   1.680398  -0.373741  -0.758561
    H   1.680398  -0.373741   0.758561
    """
)
#: Monomer A in the dimer basis: the counterpoise fragment shape.
GHOSTED_DIMER = DIMER.get_fragment(real=[0], ghost=[1])
