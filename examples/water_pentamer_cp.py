"""Water pentamer, counterpoise-corrected MBE(3): PySCF by default, Psi4 where it is installed.

The pentamer is five waters of a hexagonal ring of ice (``qcmb_parsl.clusters``: every water
hydrogen-bonded, the ring open where the sixth would be); ``--waters 3`` is the cyclic trimer of
examples/molecules/water_trimer.xyz.

    python examples/water_pentamer_cp.py                    # (H2O)5 CP MBE(3), HF/6-31G on PySCF
    python examples/water_pentamer_cp.py --program psi4     # the same on Psi4, if installed
    python examples/water_pentamer_cp.py --waters 3 --max-nbody 2 --basis sto-3g --preset threads  # seconds

Every fragment is a Parsl app (the ``local`` preset: worker processes on this machine); finished
fragments go to the fragment cache, so a second run answers them all from there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import qcengine
from rich.console import Console

from qcmb_parsl import ManyBodyComputer, ParslExecutor
from qcmb_parsl.clusters import water_cluster
from qcmb_parsl.frontend.files import write_result
from qcmb_parsl.frontend.tables import energy_table
from qcmb_parsl.frontend.units import convert


def manybody_input(waters: int, max_nbody: int, program: str, method: str, basis: str) -> dict:
    """A v1 ManyBodyInput dict: CP-corrected MBE of a water cluster, every fragment result kept."""
    return {
        "molecule": water_cluster(waters),
        "specification": {
            "specification": {
                "program": program, "driver": "energy", "model": {"method": method, "basis": basis}
            },
            "keywords": {"bsse_type": ["cp"], "max_nbody": max_nbody},
            "driver": "energy",
            # keep each fragment's AtomicResult (and its provenance) for `qcmb-parsl report`
            "protocols": {"component_results": "all"},
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waters", type=int, default=5, help="cluster size (default 5)")
    parser.add_argument("--max-nbody", type=int, default=3, help="highest n-body level (default 3)")
    parser.add_argument("--program", choices=("pyscf", "psi4"), default="pyscf",
                        help="engine (default pyscf)")
    parser.add_argument("--method", default="hf")
    parser.add_argument("--basis", default="6-31g")
    parser.add_argument("--preset", default="local", help="executor preset (default local)")
    parser.add_argument("--workers", type=int, default=None, help="fragments at once (default: all cores)")
    parser.add_argument("--out", type=Path, help="also write the ManyBodyResult JSON here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    if not qcengine.get_program(args.program, check=False).found():
        print(f"{args.program} is not installed here; try --program pyscf", file=sys.stderr)
        return 2

    mbin = manybody_input(args.waters, args.max_nbody, args.program, args.method, args.basis)
    progress = False if args.quiet else "auto"
    with ParslExecutor(args.preset, max_workers=args.workers, progress=progress) as executor:
        result = ManyBodyComputer.from_manybodyinput(mbin, executor=executor)

    console = Console()
    console.print(energy_table(result))
    run = result.extras["qcmb_parsl"]
    cp_ie = result.properties.cp_corrected_interaction_energy
    console.print(
        f"(H2O){args.waters} CP MBE({args.max_nbody}) {args.method}/{args.basis} on {args.program}: "
        f"interaction energy {cp_ie:.8f} Eh ({convert(cp_ie, 'kcal/mol'):.3f} kcal/mol)"
    )
    console.print(
        f"{run['n_tasks']} fragments: {run['n_executed']} computed, {run['n_cached']} from the cache; "
        f"wall time {run['wall_time']:.1f} s ({run['executor']})"
    )
    if args.out:
        console.print(f"result: {write_result(result, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
