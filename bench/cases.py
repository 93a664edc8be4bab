"""The calculations the benchmark runs, in one place so every measurement and the report name the same ones.

Defaults are the issue's settings. ``quick`` swaps in smaller basis sets and counts for developing the
benchmark itself; its numbers are not the benchmark's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from qcmb_parsl import FragmentTask
from qcmb_parsl.clusters import water_cluster

#: Fragments at once, and cores per fragment, for every parallel configuration: the machine's 2 cores.
WORKERS = 2
CORES_PER_WORKER = 1

BSSE_LABELS = {"cp": "CP", "nocp": "no-CP", "vmfc": "VMFC"}


@dataclass(frozen=True)
class MBECase:
    """A water-cluster many-body expansion: energy, one model chemistry, PySCF."""

    waters: int
    method: str
    basis: str
    bsse: tuple[str, ...]
    max_nbody: int = 3

    def input(self) -> dict[str, Any]:
        """ManyBodyInput (QCSchema v1) as a dict, accepted alike by upstream and qcmb_parsl."""
        return {
            "molecule": water_cluster(self.waters),
            "specification": {
                "specification": {
                    "program": "pyscf",
                    "driver": "energy",
                    "model": {"method": self.method, "basis": self.basis},
                },
                "keywords": {"bsse_type": list(self.bsse), "max_nbody": self.max_nbody},
                "driver": "energy",
            },
        }

    def describe(self) -> str:
        bsse = "+".join(BSSE_LABELS[b] for b in self.bsse)
        return f"(H2O){self.waters} MBE({self.max_nbody}) {bsse} {self.method.upper()}/{self.basis}"


def speedup_case(quick: bool = False) -> MBECase:
    """Item 1 (and the cache's first run): the issue's (H2O)6 MBE(3) CP MP2/cc-pVDZ."""
    return MBECase(6, "mp2", "sto-3g" if quick else "cc-pvdz", ("cp",))


def balance_case(quick: bool = False) -> MBECase:
    """Item 4: monomers to trimers in their own basis, so fragment costs differ ~30x.

    Without CP on purpose: CP MBE(3) of more than three waters puts every fragment in the whole
    cluster's basis, so all fragments cost about the same and the submission order cannot matter.
    """
    return MBECase(4 if quick else 5, "hf", "6-31g" if quick else "aug-cc-pvdz", ("nocp",))


@dataclass(frozen=True)
class PlanningCase:
    """Item 5: one cluster to plan; ``upstream`` also times upstream's iterate_molecules on it."""

    waters: int
    bsse: str
    upstream: bool
    target_s: float | None = None

    def mbe(self) -> MBECase:
        return MBECase(self.waters, "mp2", "cc-pvdz", (self.bsse,))


def planning_cases(quick: bool = False) -> list[PlanningCase]:
    """n = 10, 16, 20 CP against upstream; (H2O)32 CP and (H2O)64 no-CP against the issue's targets."""
    cases = [
        PlanningCase(10, "cp", True),
        PlanningCase(16, "cp", True),
        PlanningCase(20, "cp", not quick),
        PlanningCase(32, "cp", False, target_s=3.0),
    ]
    if not quick:
        cases.append(PlanningCase(64, "nocp", False, target_s=30.0))
    return cases


def overhead_count(quick: bool = False) -> int:
    """Item 2: tiny fragments per executor."""
    return 200 if quick else 1000


#: Tiny fragments run before a timed batch so that worker start-up and first-call costs are timed apart.
WARMUP_COUNT = 8


def tiny_tasks(count: int, prefix: str) -> list[FragmentTask]:
    """``count`` He-atom HF/STO-3G fragments, the cheapest real PySCF call (~40 ms, mostly QCEngine's
    and PySCF's fixed costs), each moved 1e-3 Bohr from the last so deduplication keeps them all."""
    return [
        FragmentTask(
            label=f"{prefix}-{i}",
            mc="hf/sto-3g",
            program="pyscf",
            real_fragments=(1,),
            basis_fragments=(1,),
            atomic_input={
                "molecule": {"symbols": ["He"], "geometry": [0.0, 0.0, 1e-3 * i]},
                "driver": "energy",
                "model": {"method": "hf", "basis": "sto-3g"},
            },
        )
        for i in range(count)
    ]


@dataclass(frozen=True)
class OptimizationCase:
    """Item 7: a water cluster optimized by geomeTRIC with many-body gradients, HF, PySCF."""

    waters: int
    basis: str
    bsse: str
    keywords: tuple[tuple[str, Any], ...] = (("convergence_set", "GAU_LOOSE"), ("maxiter", 40))

    def input(self) -> dict[str, Any]:
        """QCSchema v2 OptimizationInput as a dict, in upstream QCManyBody's shape."""
        return {
            "initial_molecule": water_cluster(self.waters),
            "specification": {
                "specification": {
                    "schema_name": "qcschema_many_body_specification",
                    "specification": {"program": "pyscf", "driver": "gradient",
                                      "model": {"method": "hf", "basis": self.basis}},
                    "keywords": {"bsse_type": [self.bsse], "max_nbody": 2},
                    "driver": "gradient",
                },
                "keywords": dict(self.keywords),
            },
        }

    def describe(self) -> str:
        return f"(H2O){self.waters} MBE(2) {BSSE_LABELS[self.bsse]} HF/{self.basis} gradients, geomeTRIC GAU_LOOSE"


def optimization_case(quick: bool = False) -> OptimizationCase:
    """Item 7: (H2O)3 MBE(2) CP, 12 fragments a step."""
    return OptimizationCase(3, "6-31g" if quick else "cc-pvdz", "cp")


@dataclass(frozen=True)
class FloodCase:
    """Item 10: a cluster of many small fragments (helium atoms or waters), energy, no-CP."""

    atoms: str  # "He" or "H2O"
    count: int
    program: str
    method: str
    basis: str | None
    max_nbody: int

    def input(self) -> dict[str, Any]:
        """ManyBodyInput (QCSchema v1) as a dict, accepted alike by upstream and qcmb_parsl."""
        molecule = helium_cluster(self.count) if self.atoms == "He" else water_cluster(self.count)
        model = {"method": self.method} if self.basis is None else {"method": self.method, "basis": self.basis}
        return {
            "molecule": molecule,
            "specification": {
                "specification": {"program": self.program, "driver": "energy", "model": model},
                "keywords": {"bsse_type": ["nocp"], "max_nbody": self.max_nbody},
                "driver": "energy",
            },
        }

    def describe(self) -> str:
        model = self.method if self.basis is None else f"{self.method.upper()}/{self.basis.upper()}"
        name = f"He{self.count}" if self.atoms == "He" else f"(H2O){self.count}"
        return f"{name} MBE({self.max_nbody}) no-CP {model}"


def helium_cluster(n: int, spacing_angstrom: float = 3.0) -> dict[str, Any]:
    """QCSchema molecule dict (Bohr) of ``n`` helium atoms on a cubic lattice, one fragment each."""
    side = math.ceil(round(n ** (1 / 3), 9))
    bohr = spacing_angstrom / 0.52917721067
    geometry = [bohr * float(c) for i in range(n) for c in (i % side, (i // side) % side, i // (side * side))]
    return {
        "symbols": ["He"] * n,
        "geometry": geometry,
        "fragments": [[i] for i in range(n)],
        "molecular_charge": 0.0,
        "molecular_multiplicity": 1,
        "fragment_charges": [0.0] * n,
        "fragment_multiplicities": [1] * n,
    }


def flood_cases(quick: bool = False) -> dict[str, FloodCase]:
    """Item 10: He30 MBE(2) HF/STO-3G (465 fragments), (H2O)40 MBE(3) GFN2-xTB (10,700) and
    (H2O)85 MBE(3) GFN2-xTB (102,425); smaller clusters with ``quick``."""
    return {
        "he30": FloodCase("He", 12 if quick else 30, "pyscf", "hf", "sto-3g", 2),
        "xtb": FloodCase("H2O", 10 if quick else 40, "xtb", "GFN2-xTB", None, 3),
        "xtb-1e5": FloodCase("H2O", 16 if quick else 85, "xtb", "GFN2-xTB", None, 3),
    }
