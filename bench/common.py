"""What every measurement shares: where results go, fresh interpreters per configuration, load readings.

Each configuration runs in its own interpreter so that imports, BLAS and OpenMP thread pools, QCEngine's
one-time host probe and Parsl's processes never carry over from one configuration into the next. The
child prints one JSON line on stdout; everything else it says goes to stderr and passes through.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
#: Parsl's run directories and the benchmark's cache directories; inside the git-ignored results folder.
WORK_DIR = RESULTS_DIR / "work"

#: Thread caps for a configuration meant to use one core per fragment from the first import on:
#: OpenBLAS sizes its thread pool when numpy loads, so setting these later in a process is too late.
ONE_CORE_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "QCENGINE_NCORES": "1",
}


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: on a shared 2-core machine, the context of every number."""
    return [round(x, 2) for x in os.getloadavg()]


def log(message: str) -> None:
    """Progress on stderr, so stdout stays one JSON line for the parent."""
    print(f"[bench {time.strftime('%H:%M:%S')} load {load_average()[0]:.2f}] {message}", file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    """The child's answer: one JSON line on stdout."""
    print(json.dumps(result), flush=True)


def package_hash() -> str:
    """Digest of qcmb_parsl's source: others commit to the package while a benchmark runs, and rows
    measured on different code (or, through ``water_cluster``, on different molecules) must not be
    compared silently."""
    digest = hashlib.sha256()
    for path in sorted((REPO_DIR / "qcmb_parsl").rglob("*.py")):
        digest.update(path.relative_to(REPO_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def spawn(script: str, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``bench/<script> args`` in a fresh interpreter and return its JSON answer.

    Adds ``process_s`` (interpreter start to exit, imports included, as a user's script would take),
    the load average before and after, and the package's source digest, ``changed`` if it differed
    after the run from before it.
    """
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(BENCH_DIR / script), *args]
    load_before, source_before = load_average(), package_hash()
    start = time.perf_counter()
    # cwd: Parsl writes its runinfo/ into the working directory; keep it out of the repository's root.
    done = subprocess.run(
        command, cwd=WORK_DIR, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, text=True, check=False
    )
    process_s = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:])} exited with {done.returncode}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    source = source_before if package_hash() == source_before else "changed"
    result.update(process_s=process_s, load_before=load_before, load_after=load_average(), package=source)
    return result


def seconds_since_process_start() -> float:
    """Interpreter start-up plus imports so far: the one-time cost every script pays before working."""
    import psutil

    return time.time() - psutil.Process().create_time()


def fragment_records(tasks: list[Any], report: Any) -> list[dict[str, Any]]:
    """Per fragment: n-body level, estimated cost, and when, where and how long it ran (provenance)."""
    records = []
    for task in tasks:
        result = report.results[task.label]
        provenance = result.provenance
        records.append(
            {
                "label": task.label,
                "nbody": task.nbody,
                "cost": task.cost,
                "cached": result.cached,
                "started": provenance.get("started"),
                "wall_time": result.wall_time,
                "pid": provenance.get("pid"),
                "attempts": result.attempts,
                "energy": result.result["properties"]["return_energy"] if result.success else None,
            }
        )
    return records


def schedule_stats(records: list[dict[str, Any]], workers: int) -> dict[str, float]:
    """Makespan (first start to last end, from provenance) against its lower bound max(sum/n, longest).

    ``retried`` counts fragments that needed another attempt (a worker process died under them, as
    when another user's test kills Parsl workers on this shared machine): their lost attempts are in
    no fragment's time, so such a run's numbers are disturbed and flagged, not silently kept.
    """
    ran = [r for r in records if not r["cached"]]
    starts = [r["started"] for r in ran]
    ends = [r["started"] + r["wall_time"] for r in ran]
    total = sum(r["wall_time"] for r in ran)
    longest = max(r["wall_time"] for r in ran)
    makespan = max(ends) - min(starts)
    bound = max(total / workers, longest)
    return {
        "makespan_s": makespan,
        "engine_sum_s": total,
        "longest_s": longest,
        "lower_bound_s": bound,
        "load_balance": makespan / bound,
        "retried": sum(1 for r in ran if r.get("attempts", 1) > 1),
    }
