"""Item 2: what each executor adds per fragment, with fragments too small to hide it.

1,000 He-atom HF/STO-3G fragments (cache off) per executor, each executor in a fresh interpreter:
sequential (in-process, no Parsl), Parsl threads and local HTEX with 2 workers of 1 core, and one
experiment: ``local-prefetch``, the local preset's Config with HTEX ``prefetch_capacity=2`` (passed as a
``parsl.Config``), to see how much of HTEX's cost is each worker idling for a task round trip.

Every executor runs each engine in a child of a warm template by default; ``sequential-shared`` and
``local-shared`` run with ``isolate=False`` (the engine in the worker's own process), and the
difference is what isolation costs per fragment (``isolation_ms``).

Definition: ``overhead = (wall - engine / workers) / count``, where ``wall`` is the run loop
(``executor.run``: keys, deduplication, ordering, submission, collection) and ``engine`` the sum of the
fragments' own ``qcengine.compute`` times from provenance. So it is the wall time per fragment that no
engine work explains, with perfect parallelism credited.

Before the timed batch a few fragments warm the executor up (HTEX worker processes starting and
importing PySCF, QCEngine's one-time host probe), timed apart; ``amortised`` spreads start-up, warm-up
and shut-down over the batch as well: what a user with 1,000 such fragments waits for per fragment.

Threads share one interpreter, so each thread's engine time includes waits for the GIL held by the
other: ``engine`` grows and ``overhead`` by this definition hides that loss. ``vs_sequential_engine``
uses the sequential run's uncontended engine time per fragment instead and shows it.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from cases import CORES_PER_WORKER, WARMUP_COUNT, WORKERS, overhead_count, tiny_tasks
from common import emit, log, spawn

EXECUTORS = ("sequential", "threads", "local", "local-prefetch", "sequential-shared", "local-shared")
#: Without isolation: the engine shares the worker's process.
SHARED_SUFFIX = "-shared"


def _engine_seconds(report: Any) -> float:
    return sum(result.wall_time for result in report.results.values())


def _config_source(name: str) -> Any:
    """A preset name, or for ``local-prefetch`` the local preset's Config with tasks queued at each pool."""
    if name != "local-prefetch":
        return name.removesuffix(SHARED_SUFFIX)
    from qcmb_parsl.presets import build_preset

    config, _ = build_preset("local", max_workers=WORKERS, cores_per_worker=CORES_PER_WORKER)
    config.executors[0].prefetch_capacity = WORKERS
    return config


def run_one(name: str, count: int) -> dict[str, Any]:
    """One executor in this process: start-up, warm-up batch, timed batch, shut-down."""
    from qcmb_parsl import ParslExecutor, SequentialExecutor

    begin = time.perf_counter()
    isolate = not name.endswith(SHARED_SUFFIX)
    if name.startswith("sequential"):
        executor, workers = SequentialExecutor(cache=False, isolate=isolate), 1
    else:
        executor = ParslExecutor(
            _config_source(name),
            max_workers=WORKERS,
            cores_per_worker=CORES_PER_WORKER,
            cache=False,
            progress=False,
            isolate=isolate,
        )
        executor.start()
        workers = WORKERS
    startup_s = time.perf_counter() - begin
    warm = executor.run(tiny_tasks(WARMUP_COUNT, "warmup"))
    timed = executor.run(tiny_tasks(count, "tiny"))
    stopping = time.perf_counter()
    executor.close()
    shutdown_s = time.perf_counter() - stopping

    wall, engine = timed.summary.wall_time, _engine_seconds(timed)
    warm_engine = _engine_seconds(warm)
    failed = timed.summary.n_failed + warm.summary.n_failed
    if failed:
        raise RuntimeError(f"{failed} tiny fragments failed on {name}")
    waited = startup_s + warm.summary.wall_time + wall + shutdown_s
    return {
        "workers": workers,
        "count": count,
        "startup_s": startup_s,
        "warmup_s": warm.summary.wall_time,
        "shutdown_s": shutdown_s,
        "wall_s": wall,
        "engine_s": engine,
        "engine_per_fragment_ms": 1000 * engine / count,
        "overhead_ms": 1000 * (wall - engine / workers) / count,
        "amortised_ms": 1000 * (waited - (engine + warm_engine) / workers) / count,
        "driver_time_per_task_ms": timed.summary.driver_time_per_task_ms,
        "worker_pids": len({r.provenance.get("pid") for r in timed.results.values()}),
        "retried": sum(1 for r in timed.results.values() if r.attempts > 1),
    }


def measure(quick: bool) -> dict[str, Any]:
    count = overhead_count(quick)
    results: dict[str, Any] = {}
    for name in EXECUTORS:
        log(f"overhead: {count} tiny fragments on {name}")
        results[name] = spawn("measure_overhead.py", ["--one", name, "--count", str(count)])
        log(f"overhead: {name} {results[name]['overhead_ms']:.2f} ms per fragment")
    sequential_engine = results["sequential"]["engine_s"]
    for result in results.values():
        ideal = sequential_engine / result["workers"]
        result["vs_sequential_engine_ms"] = 1000 * (result["wall_s"] - ideal) / count
    for name in ("sequential", "local"):
        # Wall time per fragment, isolated minus shared: the fork, the files and the engine's first-use costs.
        shared = results[name + SHARED_SUFFIX]
        results[name]["isolation_ms"] = 1000 * (results[name]["wall_s"] - shared["wall_s"]) / count * results[name]["workers"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 fragments instead of 1,000")
    parser.add_argument("--one", choices=EXECUTORS, help="measure one executor in this process")
    parser.add_argument("--count", type=int, help="fragments in the timed batch (with --one)")
    args = parser.parse_args()
    if args.one:
        emit(run_one(args.one, args.count or overhead_count(args.quick)))
    else:
        emit(measure(args.quick))


if __name__ == "__main__":
    main()
