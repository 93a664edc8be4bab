"""Item 10: floods of fast fragments, upstream QCManyBody serial against qcmb_parsl on local, 2 workers.

Three cases (:func:`cases.flood_cases`), each configuration in a fresh interpreter (``--one CASE CONFIG``):

* ``he30``: He30 MBE(2) no-CP HF/STO-3G, 465 fragments of a few milliseconds of engine time each;
* ``xtb``: (H2O)40 MBE(3) no-CP GFN2-xTB, 10,700 fragments;
* ``xtb-1e5``: (H2O)85 MBE(3) no-CP GFN2-xTB, 102,425 fragments, qcmb_parsl only: planned, run, cached
  in a fresh cache, assembled into upstream's ManyBodyResult, then answered again from the cache. Its
  upstream time is an extrapolation: upstream's seconds per fragment in ``xtb`` times its fragment
  count (the fragments are the same kind: water monomers, dimers and trimers), said as such.

Configurations: ``upstream`` (``qcmanybody.ManyBodyComputer.from_manybodyinput``, one core, each
``qcengine.compute`` timed from outside) and ``local`` (2 workers of 1 core, defaults: every engine in a
process of its own, tiny fragments bundled; cache off except for ``xtb-1e5``). qcmb_parsl's time is
start-up + run + shut-down; ``overhead = (run − engine / workers) / fragments`` with ``engine`` the sum
of the fragments' own ``qcengine.compute`` times (provenance). ``warm``: the same input again in the
same process (upstream: a second ``from_manybodyinput``; qcmb_parsl: the same executor, cache off), as in
a session that has computed before: no worker, template or QCEngine start. The driver's CPU time (its Parsl threads
included; the engines run in worker processes) per fragment and its peak RSS are reported per phase:
planning (prepare, fragment inputs), the run (keys, look-up, submission, collection, storing) and the
assembly; the peak RSS also at the end (after the warm run or the rerun from the cache, which holds a
second report beside the first).
"""

from __future__ import annotations

import argparse
import gc
import resource
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cases import CORES_PER_WORKER, WORKERS, flood_cases
from common import ONE_CORE_ENV, emit, log, seconds_since_process_start, spawn

CONFIGS = ("upstream", "local")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def collections_counted(counts: dict[str, float]) -> Iterator[None]:
    """The garbage collections this thread runs inside the block: how many of each generation and their
    CPU seconds (``gc.callbacks``; a collection runs in whichever thread allocates when it is due)."""
    thread, began = threading.get_ident(), [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if threading.get_ident() != thread:
            return
        if phase == "start":
            began[0] = time.thread_time()
            return
        counts[f"gen{info['generation']}"] = counts.get(f"gen{info['generation']}", 0) + 1
        counts["cpu_s"] = counts.get("cpu_s", 0.0) + time.thread_time() - began[0]

    gc.callbacks.append(callback)
    try:
        yield
    finally:
        gc.callbacks.remove(callback)


def run_upstream(case_name: str, quick: bool) -> dict[str, Any]:
    """Upstream's serial loop; each ``qcengine.compute`` call timed from outside (upstream records none)."""
    import qcengine
    import qcmanybody
    from qcmanybody.models.v1 import ManyBodyInput

    import qcmb_parsl  # noqa: F401 - registers the "pyscf" and "xtb" harnesses, which upstream users need too

    case = flood_cases(quick)[case_name]
    import_s = seconds_since_process_start()
    times: list[float] = []
    compute = qcengine.compute

    def timed_compute(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        result = compute(*args, **kwargs)
        times.append(time.perf_counter() - began)
        return result

    qcengine.compute = timed_compute  # upstream calls qcengine.compute through the module: patched here
    mbin = ManyBodyInput(**case.input())
    totals = []
    for _ in range(2 if case_name != "xtb" else 1):  # the 10^4 case is long enough to be warm
        times.clear()
        began = time.perf_counter()
        result = qcmanybody.ManyBodyComputer.from_manybodyinput(mbin)
        totals.append(time.perf_counter() - began)
    return {
        "case": case.describe(), "fragments": len(times), "import_s": import_s, "total_s": totals[0],
        "warm_total_s": totals[-1], "engine_s": sum(times), "per_fragment_ms": 1000 * totals[-1] / len(times),
        # Warm samples only: the first call in a process pays QCEngine's host probe.
        "engine_samples_s": [round(t, 5) for t in times[1:2001]],
        "energy": result.properties.return_energy,
    }


def run_local(case_name: str, quick: bool) -> dict[str, Any]:
    """qcmb_parsl on local, phase by phase, as ``ManyBodyComputer.run`` goes."""
    from qcmb_parsl import ManyBodyComputer, ParslExecutor

    case = flood_cases(quick)[case_name]
    import_s = seconds_since_process_start()
    cached = case_name == "xtb-1e5"
    with tempfile.TemporaryDirectory(prefix="qcmb-floods-") as directory:
        cpu0, began = time.process_time(), time.perf_counter()
        computer = ManyBodyComputer.prepare(case.input())
        tasks = computer.fragment_tasks()
        plan_s, plan_cpu = time.perf_counter() - began, time.process_time() - cpu0
        rss_planned = _peak_rss_mib()
        executor = ParslExecutor(
            "local", max_workers=WORKERS, cores_per_worker=CORES_PER_WORKER, progress=False,
            cache=cached, cache_dir=directory,  # ParslExecutor's cache is a switch: the directory is cache_dir
        )
        began = time.perf_counter()
        executor.start()
        startup_s = time.perf_counter() - began
        cpu1, began = time.process_time(), time.perf_counter()
        run_collections: dict[str, float] = {}
        with collections_counted(run_collections):
            report = executor.run(tasks)
        run_s, run_cpu = time.perf_counter() - began, time.process_time() - cpu1
        cpu2, began = time.process_time(), time.perf_counter()
        result = computer.assemble(report)
        assemble_s, assemble_cpu = time.perf_counter() - began, time.process_time() - cpu2
        rss_assembled = _peak_rss_mib()
        rerun_s, warm_s = None, None
        if not cached:  # the same again in this session: workers and their templates warm
            began = time.perf_counter()
            again = ManyBodyComputer.prepare(case.input())
            computer.assemble(executor.run(again.fragment_tasks()))
            warm_s = time.perf_counter() - began
        if cached:
            began = time.perf_counter()
            again = executor.run(computer.fragment_tasks())
            rerun_s = time.perf_counter() - began
            if again.summary.n_cached != len(tasks):
                raise RuntimeError(f"rerun answered {again.summary.n_cached} of {len(tasks)} from the cache")
        began = time.perf_counter()
        executor.close()
        shutdown_s = time.perf_counter() - began
    if report.failures:
        raise RuntimeError(f"{len(report.failures)} fragments failed: {report.failures[0].one_line()}")
    count = len(tasks)
    engine_s = sum(r.wall_time for r in report.results.values())
    driver_cpu = plan_cpu + run_cpu + assemble_cpu
    return {
        "case": case.describe(), "fragments": count, "workers": WORKERS, "import_s": import_s,
        "plan_s": plan_s, "startup_s": startup_s, "run_s": run_s, "assemble_s": assemble_s,
        "shutdown_s": shutdown_s, "total_s": plan_s + startup_s + run_s + assemble_s + shutdown_s,
        "warm_total_s": warm_s,
        "engine_s": engine_s, "overhead_ms": 1000 * (run_s - engine_s / WORKERS) / count,
        "driver_cpu_ms": {"plan": 1000 * plan_cpu / count, "run": 1000 * run_cpu / count,
                          "assemble": 1000 * assemble_cpu / count, "total": 1000 * driver_cpu / count},
        "run_gc": {**run_collections, "ms_per_fragment": 1000 * run_collections.get("cpu_s", 0.0) / count},
        "peak_rss_mib": {"planned": rss_planned, "assembled": rss_assembled, "end": _peak_rss_mib()},
        "calls": len({r.provenance.get("parsl_task_id") for r in report.results.values()}),
        "rerun_from_cache_s": rerun_s, "energy": result.properties.return_energy,
        "retried": sum(1 for r in report.results.values() if r.attempts > 1),
    }


def measure(quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in flood_cases(quick):
        results[name] = {}
        for config in CONFIGS if name != "xtb-1e5" else ("local",):
            log(f"floods: {name} on {config}")
            env = ONE_CORE_ENV if config == "upstream" else None
            results[name][config] = spawn("measure_floods.py", ["--one", name, config, *(["--quick"] * quick)], env)
        local, upstream = results[name]["local"], results[name].get("upstream")
        if upstream is not None:
            local["speedup"] = upstream["total_s"] / local["total_s"]
            local["speedup_warm"] = upstream["warm_total_s"] / local["warm_total_s"]
            local["energy_difference"] = abs(local["energy"] - upstream["energy"])
    scale, measured = results["xtb-1e5"]["local"], results["xtb"]["upstream"]
    scale["upstream_extrapolated_s"] = measured["total_s"] / measured["fragments"] * scale["fragments"]
    scale["speedup_vs_extrapolated"] = scale["upstream_extrapolated_s"] / scale["total_s"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller clusters, for developing the benchmark")
    parser.add_argument("--one", nargs=2, metavar=("CASE", "CONFIG"), help="one case and configuration here")
    args = parser.parse_args()
    if args.one:
        case_name, config = args.one
        emit((run_upstream if config == "upstream" else run_local)(case_name, args.quick))
    else:
        emit(measure(args.quick))


if __name__ == "__main__":
    main()
