"""Item 5: how long planning takes and how much memory it needs, against upstream's fragment loop.

"Plan and submit" here is everything the driver does before the first fragment is handed to an
executor: ``prepare`` (upstream's validation and core), ``fragment_tasks`` (every fragment's QCSchema
input and cost), the cache key of every fragment (with the program version it includes) and the
submission order. Upstream's counterpart is ``from_manybodyinput(build_tasks=False)`` plus its
``iterate_molecules`` loop, which builds a validated Molecule per fragment (it then also validates an
AtomicInput per fragment, not counted here).

Each case and each side runs in a fresh interpreter, so peak RSS (``ru_maxrss``) belongs to that case;
``peak_rss_delta_mib`` is the growth over the interpreter with everything imported. ``cold`` times are
the first pass in the process, as a user meets them (PySCF's import and basis parsing for the cost
model included); ``warm_s`` repeats fragment_tasks and keys in the same process, to show what is one-time.
"""

from __future__ import annotations

import argparse
import resource
import time
from typing import Any

from cases import planning_cases
from common import emit, log, spawn


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def plan_qcmb_parsl(mbin: dict[str, Any]) -> dict[str, Any]:
    from qcmb_parsl import ManyBodyComputer
    from qcmb_parsl.cache import fragment_key
    from qcmb_parsl.engines.programs import program_version
    from qcmb_parsl.execution.ordering import order_tasks

    baseline = _peak_rss_mib()
    t0 = time.perf_counter()
    computer = ManyBodyComputer.prepare(mbin)
    t1 = time.perf_counter()
    tasks = computer.fragment_tasks()
    t2 = time.perf_counter()
    version = program_version("pyscf")
    keys = [fragment_key(task.program, version, task.atomic_input) for task in tasks]
    t3 = time.perf_counter()
    order_tasks(tasks, "cost")
    t4 = time.perf_counter()
    peak = _peak_rss_mib()
    n_tasks, n_keys = len(tasks), len(set(keys))
    del tasks, keys
    w0 = time.perf_counter()
    again = computer.fragment_tasks()
    [fragment_key(task.program, version, task.atomic_input) for task in again]
    warm_s = time.perf_counter() - w0
    return {
        "n_tasks": n_tasks,
        "distinct_keys": n_keys,
        "prepare_s": t1 - t0,
        "tasks_s": t2 - t1,
        "keys_s": t3 - t2,
        "order_s": t4 - t3,
        "total_s": t4 - t0,
        "warm_s": warm_s,
        "peak_rss_mib": peak,
        "peak_rss_delta_mib": peak - baseline,
    }


def plan_upstream(mbin: dict[str, Any]) -> dict[str, Any]:
    import qcmanybody
    from qcmanybody.models.v1 import ManyBodyInput

    import qcmb_parsl  # noqa: F401 - same imports as the qcmb_parsl side, so RSS baselines compare

    baseline = _peak_rss_mib()
    t0 = time.perf_counter()
    computer = qcmanybody.ManyBodyComputer.from_manybodyinput(ManyBodyInput(**mbin), build_tasks=False)
    t1 = time.perf_counter()
    n_tasks = sum(1 for _ in computer.qcmb_core.iterate_molecules())
    t2 = time.perf_counter()
    peak = _peak_rss_mib()
    return {
        "n_tasks": n_tasks,
        "prepare_s": t1 - t0,
        "molecules_s": t2 - t1,
        "total_s": t2 - t0,
        "peak_rss_mib": peak,
        "peak_rss_delta_mib": peak - baseline,
    }


def measure(quick: bool) -> dict[str, Any]:
    rows = []
    for case in planning_cases(quick):
        args = ["--waters", str(case.waters), "--bsse", case.bsse]
        log(f"planning: {case.mbe().describe()}")
        row: dict[str, Any] = {"case": case.mbe().describe(), "target_s": case.target_s}
        row["qcmb_parsl"] = spawn("measure_planning.py", ["--one", "qcmb_parsl", *args])
        if case.upstream:
            row["upstream"] = spawn("measure_planning.py", ["--one", "upstream", *args])
        rows.append(row)
        log(f"planning: {row['qcmb_parsl']['n_tasks']} tasks in {row['qcmb_parsl']['total_s']:.2f} s")
    return {"cases": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="leave out the largest cases")
    parser.add_argument("--one", choices=("qcmb_parsl", "upstream"), help="plan one case in this process")
    parser.add_argument("--waters", type=int, help="cluster size (with --one)")
    parser.add_argument("--bsse", choices=("cp", "nocp"), help="BSSE treatment (with --one)")
    args = parser.parse_args()
    if args.one is None:
        emit(measure(args.quick))
        return
    from cases import MBECase

    mbin = MBECase(args.waters, "mp2", "cc-pvdz", (args.bsse,)).input()
    emit(plan_qcmb_parsl(mbin) if args.one == "qcmb_parsl" else plan_upstream(mbin))


if __name__ == "__main__":
    main()
