"""Item 8: what the driver spends per fragment, and where, at 4·10^4 fragments.

Two parts, each in a fresh interpreter:

* ``plan``: (H2O)64 MBE(3) no-CP MP2/cc-pVDZ, 43,744 fragments: validation and planning, cache keys,
  one batched cache look-up (an empty cache: every key a miss), and the job of every fragment;
* ``run``: tiny He fragments on the local preset (2 workers, defaults: isolated, bundled), at two
  sizes: the driver process's CPU time (its Parsl threads included, the workers not) per fragment for
  submission, collection, storing and progress. Two sizes show whether anything grows faster than the
  fragment count.

Driver cost per fragment at scale = the plan part over its fragments + the run part per fragment.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

from cases import CORES_PER_WORKER, WORKERS, MBECase, tiny_tasks
from common import emit, log, spawn

SCALE_CASE = MBECase(64, "mp2", "cc-pvdz", ("nocp",))
RUN_SIZES = (1000, 3000)


def plan_part() -> dict[str, Any]:
    from qcmb_parsl import ManyBodyComputer
    from qcmb_parsl.cache import FragmentCache, task_keys
    from qcmb_parsl.engines.programs import program_versions
    from qcmb_parsl.execution.jobs import JobSettings
    from qcmb_parsl.resources import WorkerResources

    timings: dict[str, float] = {}
    begin = time.perf_counter()
    tasks = ManyBodyComputer.prepare(SCALE_CASE.input()).fragment_tasks()
    timings["plan_s"] = time.perf_counter() - begin
    begin = time.perf_counter()
    keys = task_keys(tasks, program_versions(["pyscf"]))
    timings["keys_s"] = time.perf_counter() - begin
    with tempfile.TemporaryDirectory() as directory, FragmentCache(directory) as cache:
        begin = time.perf_counter()
        cache.get_many({keys[task.label]: task.atomic_input for task in tasks})
        timings["look_up_s"] = time.perf_counter() - begin
    settings = JobSettings(WorkerResources(), WORKERS)
    begin = time.perf_counter()
    for task in tasks:
        settings.job(task)
    timings["jobs_s"] = time.perf_counter() - begin
    return {"fragments": len(tasks), **timings, "per_fragment_ms": 1000 * sum(timings.values()) / len(tasks)}


def run_part(count: int) -> dict[str, Any]:
    from qcmb_parsl import ParslExecutor

    with ParslExecutor(
        "local", max_workers=WORKERS, cores_per_worker=CORES_PER_WORKER, cache=False, progress=False
    ) as executor:
        executor.run(tiny_tasks(16, "warmup"))
        cpu, wall = time.process_time(), time.perf_counter()
        report = executor.run(tiny_tasks(count, "tiny"))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if report.summary.n_failed:
        raise RuntimeError(f"{report.summary.n_failed} tiny fragments failed")
    calls = len({r.provenance.get("engine_pid") for r in report.results.values()})
    return {"fragments": count, "driver_cpu_s": cpu, "wall_s": wall, "engine_processes": calls,
            "per_fragment_ms": 1000 * cpu / count}


def measure(quick: bool) -> dict[str, Any]:
    log(f"driver: planning {SCALE_CASE.describe()}")
    plan = spawn("measure_driver.py", ["--part", "plan"])
    runs = []
    for count in RUN_SIZES[:1] if quick else RUN_SIZES:
        log(f"driver: {count} tiny fragments on local")
        runs.append(spawn("measure_driver.py", ["--part", "run", "--count", str(count)]))
    return {"plan": plan, "runs": runs, "per_fragment_ms": plan["per_fragment_ms"] + runs[-1]["per_fragment_ms"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run size")
    parser.add_argument("--part", choices=("plan", "run"), help="one part in this process")
    parser.add_argument("--count", type=int, default=RUN_SIZES[0], help="fragments (with --part run)")
    args = parser.parse_args()
    if args.part == "plan":
        emit(plan_part())
    elif args.part == "run":
        emit(run_part(args.count))
    else:
        emit(measure(args.quick))


if __name__ == "__main__":
    main()
