"""Item 2: what each executor adds per fragment, with fragments too small to hide it.

1,000 He-atom HF/STO-3G fragments (cache off) per executor, each executor in a fresh interpreter:
sequential (in-process, no Parsl), Parsl threads and local HTEX with 2 workers of 1 core, each with the
defaults (every engine in a child of a warm template; tiny fragments bundled, about 0.5 s a call), and
variants of one setting each:

* ``-unbundled``: ``bundle_seconds=0``, a call and an engine process per fragment;
* ``-shared``: ``isolate=False``, engines in the worker's own process (bundles make no difference there);
* ``local-prefetch``: the local preset with ``prefetch_capacity=1`` (each pool holds one fragment more).

``isolation_ms`` (unbundled isolated minus shared) is what a process per fragment costs; ``bundling``
shows how much of it bundles take back.

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

EXECUTORS = (
    "sequential",
    "sequential-unbundled",
    "sequential-shared",
    "threads",
    "local",
    "local-unbundled",
    "local-shared",
    "local-prefetch",
)
#: Without isolation: the engine shares the worker's process.
SHARED_SUFFIX = "-shared"
#: Without bundles: one call and one engine process per fragment.
UNBUNDLED_SUFFIX = "-unbundled"


def _engine_seconds(report: Any) -> float:
    return sum(result.wall_time for result in report.results.values())


def _settings(name: str) -> tuple[str, dict[str, Any]]:
    """The preset (or "sequential") a configuration name stands for, and its settings."""
    settings: dict[str, Any] = {"cache": False}
    if name.endswith(SHARED_SUFFIX):
        settings["isolate"] = False
    if name.endswith(UNBUNDLED_SUFFIX):
        settings["bundle_seconds"] = 0
    if name == "local-prefetch":
        settings["prefetch_capacity"] = 1
    return name.split("-")[0], settings


def run_one(name: str, count: int) -> dict[str, Any]:
    """One executor in this process: start-up, warm-up batch, timed batch, shut-down."""
    from qcmb_parsl import ParslExecutor, SequentialExecutor

    begin = time.perf_counter()
    preset, settings = _settings(name)
    if preset == "sequential":
        executor, workers = SequentialExecutor(**settings), 1
    else:
        executor = ParslExecutor(
            preset, max_workers=WORKERS, cores_per_worker=CORES_PER_WORKER, progress=False, **settings
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
        "engine_processes": len({r.provenance.get("engine_pid") for r in timed.results.values()}),
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
        # Wall time per fragment and worker: a process per fragment (the fork, its files, the engine's
        # first-use costs in a fresh process) against none, and the defaults (bundled) against none.
        shared = results[name + SHARED_SUFFIX]["wall_s"]
        per_fragment = 1000 * results[name]["workers"] / count
        results[name]["isolation_ms"] = (results[name + UNBUNDLED_SUFFIX]["wall_s"] - shared) * per_fragment
        results[name]["isolation_bundled_ms"] = (results[name]["wall_s"] - shared) * per_fragment
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
