"""`make demo`: a water-cluster many-body expansion on PySCF with the local preset.

Runs the cyclic water trimer (examples/molecules/water_trimer.xyz) through every n-body level,
counterpoise-corrected and uncorrected, at MP2/aug-cc-pVDZ: every fragment a Parsl app on local worker
processes, with a live progress bar (its first phase is the workers starting) and the n-body energy
table at the end. The interaction energy lands between -14 and -17 kcal/mol, the CP and no-CP values
bracketing the basis-set limit: a CCSD(T)/CBS binding energy of -15.70 kcal/mol (Temelso, Archer and
Shields, J. Phys. Chem. A 115, 12034 (2011)), about -16.1 as an interaction energy, the monomers kept
as they are in the ring (tests/test_examples.py says why). Run it twice: the second run answers every
fragment from the cache.

    python examples/water_cluster_demo.py                         # the trimer, MP2/aug-cc-pVDZ
    python examples/water_cluster_demo.py --waters 6 --max-nbody 3 --method hf --basis 6-31g   # a ring of ice
"""

from __future__ import annotations

import argparse
import logging

from rich.console import Console

from qcmb_parsl import ManyBodyComputer, ParslExecutor
from qcmb_parsl.clusters import water_cluster
from qcmb_parsl.frontend.tables import energy_table

DEFAULTS = argparse.Namespace(waters=3, max_nbody=None, method="mp2", basis="aug-cc-pvdz")


def manybody_input(args: argparse.Namespace) -> dict:
    """A v1 ManyBodyInput dict: CP and no-CP MBE of ``args.waters`` waters (``qcmb_parsl.clusters``)."""
    keywords: dict = {"bsse_type": ["cp", "nocp"]}
    if args.max_nbody is not None:
        keywords["max_nbody"] = args.max_nbody
    return {
        "molecule": water_cluster(args.waters),
        "specification": {
            "specification": {
                "program": "pyscf",
                "driver": "energy",
                "model": {"method": args.method, "basis": args.basis},
            },
            "keywords": keywords,
            "driver": "energy",
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waters", type=int, default=DEFAULTS.waters, help="cluster size (default 3)")
    parser.add_argument("--max-nbody", type=int, default=DEFAULTS.max_nbody, help="default: every level")
    parser.add_argument("--method", default=DEFAULTS.method)
    parser.add_argument("--basis", default=DEFAULTS.basis)
    parser.add_argument("--workers", type=int, default=None, help="default: all cores")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with ParslExecutor("local", max_workers=args.workers, progress="bar") as executor:
        result = ManyBodyComputer.from_manybodyinput(manybody_input(args), executor=executor)

    console = Console()
    console.print(energy_table(result))
    run = result.extras["qcmb_parsl"]
    console.print(
        f"{run['n_tasks']} fragments: {run['n_executed']} computed, {run['n_cached']} from the cache "
        f"({run['cache_dir']}); wall time {run['wall_time']:.1f} s on the {run['executor']!r} preset, "
        f"{run['startup_time']:.1f} s of it starting the workers"
    )


if __name__ == "__main__":
    main()
