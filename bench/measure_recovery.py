"""Item 10: what recovering from a SIGKILLed interchange costs, against stopping and running again.

In a fresh interpreter, the local preset (2 workers, defaults) is started and warmed with tiny He
fragments; then, ``REPEATS`` times, its interchange is SIGKILLed and the run's own recovery steps are
timed: the watch seeing the loss (``lost``), the lost session ended (``stop``), a fresh one started
(``start``), and its first tiny fragments back (``first``: a block, its pools and their templates
starting). Their sum is what a recovering run loses on top of the fragments that were in flight.

The alternative, a stop and the same command again, costs at least a cold start: ``rerun`` is a fresh
interpreter that imports the package, starts the local preset and computes the same tiny fragments
(its ``process_s``), without the time until someone notices and reruns it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from cases import CORES_PER_WORKER, WORKERS, tiny_tasks
from common import emit, log, spawn

REPEATS = 3
FIRST = 4


def _interchanges() -> list[Any]:
    import psutil

    return [p for p in psutil.Process().children(recursive=True) if "HTEX interchange" in " ".join(p.cmdline())]


def recovery_part(repeats: int) -> dict[str, Any]:
    from qcmb_parsl import ParslExecutor

    rounds = []
    with ParslExecutor(
        "local", max_workers=WORKERS, cores_per_worker=CORES_PER_WORKER, cache=False, progress=False
    ) as executor:
        executor.run(tiny_tasks(16, "warmup"))
        backend = executor.backend
        for number in range(repeats):
            for interchange in _interchanges():
                interchange.kill()
            killed = time.perf_counter()
            while backend.lost(0) is None:
                time.sleep(0.005)
            seen = time.perf_counter()
            backend.stop(cancel=True)
            stopped = time.perf_counter()
            backend.start()
            started = time.perf_counter()
            report = executor.run(tiny_tasks(FIRST, f"after-{number}"))
            done = time.perf_counter()
            if report.summary.n_failed:
                raise RuntimeError(f"{report.summary.n_failed} fragments failed after a recovery")
            rounds.append({
                "lost_s": seen - killed, "stop_s": stopped - seen, "start_s": started - stopped,
                "first_s": done - started, "total_s": done - killed,
            })
    return {"rounds": rounds, **{key: statistics.median(r[key] for r in rounds) for key in rounds[0]}}


def rerun_part() -> dict[str, Any]:
    from qcmb_parsl import ParslExecutor

    with ParslExecutor(
        "local", max_workers=WORKERS, cores_per_worker=CORES_PER_WORKER, cache=False, progress=False
    ) as executor:
        report = executor.run(tiny_tasks(FIRST, "rerun"))
    return {"failed": report.summary.n_failed}


def measure(quick: bool) -> dict[str, Any]:
    repeats = 1 if quick else REPEATS
    log(f"recovery: the local preset's interchange SIGKILLed {repeats} times")
    recovery = spawn("measure_recovery.py", ["--part", "recovery", "--repeats", str(repeats)])
    reruns = []
    for _ in range(repeats):
        log("recovery: a cold start of the same command instead")
        reruns.append(spawn("measure_recovery.py", ["--part", "rerun"])["process_s"])
    return {"recovery": recovery, "rerun_s": statistics.median(reruns), "reruns_s": reruns}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat")
    parser.add_argument("--part", choices=("recovery", "rerun"), help="one part in this process")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="interchanges killed (with --part recovery)")
    args = parser.parse_args()
    if args.part == "recovery":
        emit(recovery_part(args.repeats))
    elif args.part == "rerun":
        emit(rerun_part())
    else:
        emit(measure(args.quick))


if __name__ == "__main__":
    main()
