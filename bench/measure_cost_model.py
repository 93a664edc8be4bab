"""Item 7: does the cost model rank fragments as they really run? Rank correlation with measured times.

No new calculations: the fragments of item 1 ((H2O)6 MBE(3) CP, every fragment in the hexamer's
basis) and item 4 ((H2O)5 MBE(3) no-CP, each fragment in its own basis) carry their measured engine
times. For each set, Spearman's rank correlation between measured time and two estimates:

* ``basis only``: basis functions (ghosts included) to the method's power, the model before real
  electrons counted; it gives every CP fragment of one cluster basis the same cost;
* ``basis + electrons``: the planner's model (:mod:`qcmb_parsl.planning.cost`): the method's formal
  scaling in basis functions and real occupied orbitals.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from scipy.stats import spearmanr

from cases import MBECase, balance_case, speedup_case
from common import RESULTS_DIR, emit

#: Formal power in basis functions of the model before electrons counted.
_OLD_POWER = {"hf": 4, "mp2": 5, "ccsd": 6, "ccsd(t)": 7}


def _estimates(case: MBECase) -> dict[str, tuple[float, float]]:
    """label -> (basis-only estimate, the planner's estimate)."""
    from qcmb_parsl import ManyBodyComputer
    from qcmb_parsl.planning.cost import count_basis_functions

    computer = ManyBodyComputer.prepare(case.input())
    tasks = computer.fragment_tasks()
    symbols = computer.qcmb_core.molecule.symbols
    fragments = computer.qcmb_core.molecule.fragments
    power = _OLD_POWER.get(case.method, 4)
    estimates = {}
    for task in tasks:
        nbf = sum(count_basis_functions([symbols[i] for i in fragments[f - 1]], case.basis) for f in task.basis_fragments)
        estimates[task.label] = (float(nbf) ** power, task.cost)
    return estimates


def correlate(case: MBECase, fragments: list[dict[str, Any]]) -> dict[str, Any]:
    estimates = _estimates(case)
    measured = [f for f in fragments if not f["cached"] and f["label"] in estimates]
    times = [f["wall_time"] for f in measured]
    old = [estimates[f["label"]][0] for f in measured]
    new = [estimates[f["label"]][1] for f in measured]
    return {
        "case": case.describe(),
        "fragments": len(measured),
        "distinct_estimates_basis_only": len(set(old)),
        "distinct_estimates_with_electrons": len(set(new)),
        "spearman_basis_only": float(spearmanr(old, times).statistic),
        "spearman_with_electrons": float(spearmanr(new, times).statistic),
    }


def measure(speedup: dict[str, Any], balance: dict[str, Any], quick: bool) -> dict[str, Any]:
    return {
        "cp": correlate(speedup_case(quick), speedup["configs"]["local"]["fragments"]),
        "nocp": correlate(balance_case(quick), balance["cost"]["fragments"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(RESULTS_DIR / "latest.json"), help="a make bench result file")
    args = parser.parse_args()
    measured = json.loads(open(args.results).read())
    emit(measure(measured["speedup"], measured["balance"], measured["quick"]))


if __name__ == "__main__":
    main()
