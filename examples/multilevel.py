"""Multi-level MBE: CCSD(T) for the monomers, MP2 for the pairs, HF for the trimer of a water trimer.

    python examples/multilevel.py                          # CP, 6-31G, local worker processes
    python examples/multilevel.py --basis sto-3g --preset threads   # seconds

QCManyBody's ``levels`` keyword names a model chemistry per n-body level; each is a specification of
its own. qcmb_parsl plans the fragments of every level at once (no barrier between levels) and runs
them side by side, the expensive CCSD(T) monomers first.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from qcmanybody.utils import delabeler
from rich.console import Console

from qcmb_parsl import ManyBodyComputer, ParslExecutor
from qcmb_parsl.clusters import water_cluster
from qcmb_parsl.frontend.tables import energy_table

LEVELS = {1: "ccsd(t)", 2: "mp2", 3: "hf"}


def manybody_input(basis: str, bsse: str, program: str = "pyscf") -> dict:
    """A v1 ManyBodyInput: one specification per model chemistry, ``levels`` mapping n-body to each."""
    specifications = {
        method: {"program": program, "driver": "energy", "model": {"method": method, "basis": basis}}
        for method in LEVELS.values()
    }
    return {
        "molecule": water_cluster(3),
        "specification": {
            "specification": specifications,
            # total energies too: without them CP needs no monomer in its own basis, so no CCSD(T) at all
            "keywords": {"bsse_type": [bsse], "levels": LEVELS, "return_total_data": True},
            "driver": "energy",
            "protocols": {"component_results": "all"},
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--basis", default="6-31g", help="basis set of every level (default 6-31g)")
    parser.add_argument("--bsse", choices=("cp", "nocp", "vmfc"), default="cp",
                        help="BSSE treatment (default cp)")
    parser.add_argument("--preset", default="local", help="executor preset (default local)")
    parser.add_argument("--workers", type=int, default=None, help="fragments at once (default: all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    mbin = manybody_input(args.basis, args.bsse)
    progress = False if args.quiet else "auto"
    with ParslExecutor(args.preset, max_workers=args.workers, progress=progress) as executor:
        result = ManyBodyComputer.from_manybodyinput(mbin, executor=executor)

    console = Console()
    console.print(energy_table(result))
    per_model = Counter(delabeler(label)[0] for label in result.component_results)
    for n, method in LEVELS.items():
        console.print(f"{n}-body level: {method}/{args.basis}, {per_model[method]} fragment calculations")
    run = result.extras["qcmb_parsl"]
    interaction = getattr(result.properties, f"{args.bsse}_corrected_interaction_energy")
    console.print(
        f"{run['n_tasks']} fragments: {run['n_executed']} computed, {run['n_cached']} from the cache; "
        f"wall time {run['wall_time']:.1f} s ({run['executor']})"
    )
    console.print(
        f"total energy {result.return_result:.8f} Eh, {args.bsse} interaction energy {interaction:.8f} Eh"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
