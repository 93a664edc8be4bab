"""Item 1: one MBE, upstream QCManyBody serial against qcmb_parsl on threads and on local HTEX.

Four configurations, each in a fresh interpreter (``--one NAME``):

* ``upstream-1core``: ``qcmanybody.ManyBodyComputer.from_manybodyinput``, fragments one after another,
  each on one core (QCENGINE_NCORES=1 and thread caps set before the interpreter starts);
* ``upstream-allcores``: the same with QCEngine's default, every core to each fragment (what users
  get today, as upstream passes no task_config);
* ``threads`` and ``local``: qcmb_parsl with Parsl's ThreadPoolExecutor or a local
  HighThroughputExecutor, 2 workers of 1 core, the cache on (its default) in a fresh directory.

qcmb_parsl's time is the user's: executor construction and Parsl start-up, the run (plan, cache,
fragments, assembly) and shut-down, with start-up and shut-down also reported apart. Imports are timed
for every configuration and reported apart, as a one-time cost of any script.

The qcmb_parsl configurations also rerun the input inside the same session (every fragment then comes
from the cache) and leave their cache directories for :mod:`measure_cache`.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cases import CORES_PER_WORKER, WORKERS, speedup_case
from common import ONE_CORE_ENV, emit, fragment_records, log, schedule_stats, seconds_since_process_start, spawn


@dataclass(frozen=True)
class Configuration:
    """How one column of the speedup table runs."""

    kind: str  # "upstream" or a qcmb_parsl preset name
    cores_per_fragment: str
    workers: int
    env: dict[str, str] = field(default_factory=dict)


CONFIGURATIONS = {
    "upstream-1core": Configuration("upstream", "1", 1, ONE_CORE_ENV),
    "upstream-allcores": Configuration("upstream", "all", 1),
    "threads": Configuration("threads", str(CORES_PER_WORKER), WORKERS),
    "local": Configuration("local", str(CORES_PER_WORKER), WORKERS),
}


def _nbody(molecule: Any) -> int:
    """Fragments with real atoms in a fragment molecule: its n-body level."""
    real = list(molecule.real)
    return sum(any(real[i] for i in fragment) for fragment in molecule.fragments)


def run_upstream(quick: bool) -> dict[str, Any]:
    """Upstream's serial loop, each ``qcengine.compute`` call timed from outside (upstream records none)."""
    import qcengine
    import qcmanybody
    from qcmanybody.models.v1 import ManyBodyInput

    import qcmb_parsl  # noqa: F401 - registers the "pyscf" QCEngine harness, which upstream users need too

    import_s = seconds_since_process_start()
    fragments: list[dict[str, Any]] = []
    compute = qcengine.compute

    def timed_compute(input_data: Any, program: str, *args: Any, **kwargs: Any) -> Any:
        began = time.time()
        result = compute(input_data, program, *args, **kwargs)
        fragments.append(
            {"label": f"#{len(fragments)}", "nbody": _nbody(input_data.molecule), "cost": None, "cached": False,
             "started": began, "wall_time": time.time() - began, "pid": None, "attempts": 1,
             "energy": result.properties.return_energy}
        )
        return result

    qcengine.compute = timed_compute  # upstream calls qcengine.compute through the module: patched here
    mbin = ManyBodyInput(**speedup_case(quick).input())
    run_start = time.perf_counter()
    result = qcmanybody.ManyBodyComputer.from_manybodyinput(mbin)
    run_s = time.perf_counter() - run_start
    return {
        "import_s": import_s,
        "startup_s": 0.0,
        "run_s": run_s,
        "shutdown_s": 0.0,
        "total_s": run_s,
        "n_tasks": len(fragments),
        "energy": float(result.return_result),
        "fragments": fragments,
    }


def _one_run(executor: Any, mbin: dict[str, Any]) -> tuple[float, Any, list, Any]:
    """What ``from_manybodyinput`` does, step by step, so the per-fragment report stays at hand."""
    from qcmb_parsl import ManyBodyComputer

    start = time.perf_counter()
    computer = ManyBodyComputer.prepare(mbin)
    tasks = computer.fragment_tasks()
    report = executor.run(tasks)
    if report.failures:
        raise RuntimeError(f"{len(report.failures)} fragments failed, first: {report.failures[0]}")
    result = computer.assemble(report, wall_time=time.perf_counter() - start)
    return time.perf_counter() - start, result, tasks, report


def run_qcmb_parsl(preset: str, quick: bool, cache_dir: str, rerun: bool) -> dict[str, Any]:
    """qcmb_parsl as a user runs it: ``with ParslExecutor(...)`` around the calculation."""
    from qcmb_parsl import ParslExecutor

    import_s = seconds_since_process_start()
    mbin = speedup_case(quick).input()
    begin = time.perf_counter()
    with ParslExecutor(
        preset, max_workers=WORKERS, cores_per_worker=CORES_PER_WORKER, cache_dir=cache_dir, progress=False
    ) as executor:
        started = time.perf_counter()
        run_s, result, tasks, report = _one_run(executor, mbin)
        rerun_s = _one_run(executor, mbin)[0] if rerun else None
        stopping = time.perf_counter()
    end = time.perf_counter()
    startup_s, shutdown_s = started - begin, end - stopping
    records = fragment_records(tasks, report)
    return {
        "import_s": import_s,
        "startup_s": startup_s,
        "run_s": run_s,
        "shutdown_s": shutdown_s,
        "total_s": startup_s + run_s + shutdown_s,
        "rerun_in_session_s": rerun_s,
        "n_tasks": len(tasks),
        "energy": float(result.return_result),
        "summary": result.extras["qcmb_parsl"],
        "schedule": schedule_stats(records, WORKERS) if report.summary.n_executed else None,
        "fragments": records,
    }


def _per_level(fragments: list[dict[str, Any]]) -> dict[int, float]:
    """Mean engine seconds per n-body level: where parallel runs lose time per fragment."""
    levels: dict[int, list[float]] = {}
    for fragment in fragments:
        if not fragment["cached"]:
            levels.setdefault(fragment["nbody"], []).append(fragment["wall_time"])
    return {n: sum(times) / len(times) for n, times in sorted(levels.items())}


def measure(quick: bool, workdir: Path) -> dict[str, Any]:
    """All four configurations, one after another, and the speedups against both upstream baselines."""
    case = speedup_case(quick)
    configs: dict[str, Any] = {}
    for name, config in CONFIGURATIONS.items():
        log(f"speedup: {name} on {case.describe()}")
        args = ["--one", name] + (["--quick"] if quick else [])
        if config.kind != "upstream":
            args += ["--cache-dir", str(workdir / f"cache-{name}"), "--rerun"]
        result = spawn("measure_speedup.py", args, env=config.env)
        result.update(cores_per_fragment=config.cores_per_fragment, workers=config.workers)
        result["engine_per_level_s"] = _per_level(result["fragments"])
        configs[name] = result
        log(f"speedup: {name} total {result['total_s']:.1f} s")
    serial, all_cores = configs["upstream-1core"], configs["upstream-allcores"]
    for result in configs.values():
        result["speedup_vs_1core"] = serial["total_s"] / result["total_s"]
        result["speedup_vs_allcores"] = all_cores["total_s"] / result["total_s"]
        result["speedup_vs_1core_process"] = serial["process_s"] / result["process_s"]
        result["engine_sum_s"] = sum(f["wall_time"] for f in result["fragments"] if not f["cached"])
    energies = [r["energy"] for r in configs.values()]
    return {
        "case": case.describe(),
        "configs": configs,
        "energy_spread": max(energies) - min(energies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller basis, for developing the benchmark")
    parser.add_argument("--one", choices=sorted(CONFIGURATIONS), help="run one configuration in this process")
    parser.add_argument("--cache-dir", help="fragment cache directory (qcmb_parsl configurations)")
    parser.add_argument("--rerun", action="store_true", help="run the input again in the same session")
    args = parser.parse_args()
    if args.one is None:
        import tempfile

        with tempfile.TemporaryDirectory() as workdir:
            emit(measure(args.quick, Path(workdir)))
        return
    kind = CONFIGURATIONS[args.one].kind
    if kind == "upstream":
        emit(run_upstream(args.quick))
    else:
        emit(run_qcmb_parsl(kind, args.quick, args.cache_dir, args.rerun))


if __name__ == "__main__":
    main()
