"""Item 4: load balance of cost-ordered against first-in-first-out submission, on uneven fragments.

The case (see :func:`cases.balance_case`) runs on a local HTEX with 2 single-core workers, cache off,
once per order, each in a fresh interpreter. A warm-up batch of tiny fragments first starts both
worker processes and pays their imports, so that the timed run measures the order and not start-up.

``load_balance = makespan / max(sum / workers, longest)``, makespan from provenance (first start to
last end), fragment times from provenance ``wall_time``: 1.0 is a perfect schedule for these times.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from cases import CORES_PER_WORKER, WARMUP_COUNT, WORKERS, balance_case, tiny_tasks
from common import emit, fragment_records, log, schedule_stats, spawn

ORDERS = ("cost", "fifo")


def run_one(order: str, quick: bool) -> dict[str, Any]:
    """One order in this process: start, warm both workers, run the case, return its schedule."""
    from qcmb_parsl import ManyBodyComputer, ParslExecutor

    computer = ManyBodyComputer.prepare(balance_case(quick).input())
    tasks = computer.fragment_tasks()
    with ParslExecutor(
        "local", max_workers=WORKERS, cores_per_worker=CORES_PER_WORKER, cache=False, order=order, progress=False
    ) as executor:
        warm = executor.run(tiny_tasks(WARMUP_COUNT * WORKERS, "warmup"))
        start = time.perf_counter()
        report = executor.run(tasks)
        wall = time.perf_counter() - start
    if report.failures:
        raise RuntimeError(f"{len(report.failures)} fragments failed, first: {report.failures[0]}")
    records = fragment_records(tasks, report)
    started = sorted(records, key=lambda r: r["started"])
    return {
        "order": order,
        "n_tasks": len(tasks),
        "run_s": wall,
        "warmup_s": warm.summary.wall_time,
        "warm_workers": len({r.provenance.get("pid") for r in warm.results.values()}),
        "workers_used": len({r["pid"] for r in records}),
        "started_nbody": [r["nbody"] for r in started],
        **schedule_stats(records, WORKERS),
        "fragments": records,
    }


def measure(quick: bool) -> dict[str, Any]:
    case = balance_case(quick)
    results: dict[str, Any] = {"case": case.describe(), "workers": WORKERS}
    for order in ORDERS:
        log(f"balance: order={order} on {case.describe()}")
        results[order] = spawn("measure_balance.py", ["--one", order] + (["--quick"] if quick else []))
        log(f"balance: order={order} load balance {results[order]['load_balance']:.3f}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller case, for developing the benchmark")
    parser.add_argument("--one", choices=ORDERS, help="run one order in this process")
    args = parser.parse_args()
    emit(run_one(args.one, args.quick) if args.one else measure(args.quick))


if __name__ == "__main__":
    main()
