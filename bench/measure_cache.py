"""Item 3: a rerun answered from the fragment cache, against the first run of the same input.

Two reruns of item 1's input with the same cache directory: inside the first run's session (a notebook
user running the cell again) and in a fresh interpreter (a user running the script again: imports,
Parsl start-up, keys, look-ups and assembly, no fragment computed). Each ratio compares like with like:
in-session rerun over the first run's ``run_s``; fresh-process rerun over the first run's total (start-up
and shut-down included) and over the whole process (imports included).

The first runs are item 1's qcmb_parsl runs when :mod:`run` passes them in (``primed``): repeating a
several-minute calculation only to fill a cache would double the benchmark's longest part. Run alone,
this module makes its own first run with the same code (``measure_speedup.py --one``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from common import emit, log, spawn

CONFIGS = ("threads", "local")


def _first_run(name: str, cache_dir: Path, quick: bool) -> dict[str, Any]:
    args = ["--one", name, "--cache-dir", str(cache_dir), "--rerun"] + (["--quick"] if quick else [])
    return spawn("measure_speedup.py", args)


def measure(quick: bool, workdir: Path, primed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Reruns of each qcmb_parsl configuration; ``primed``: item 1's results, whose caches are now full."""
    results = {}
    for name in CONFIGS:
        cache_dir = workdir / f"cache-{name}"
        if primed is None:
            log(f"cache: first run on {name}")
            first = _first_run(name, cache_dir, quick)
        else:
            first = primed[name]
        log(f"cache: rerun on {name} in a fresh process")
        args = ["--one", name, "--cache-dir", str(cache_dir)] + (["--quick"] if quick else [])
        second = spawn("measure_speedup.py", args)
        summary = second["summary"]
        results[name] = {
            "n_tasks": summary["n_tasks"],
            "n_cached": summary["n_cached"],
            "first_total_s": first["total_s"],
            "first_run_s": first["run_s"],
            "first_process_s": first["process_s"],
            "rerun_in_session_s": first["rerun_in_session_s"],
            "rerun_fresh_startup_s": second["startup_s"],
            "rerun_fresh_run_s": second["run_s"],
            "rerun_fresh_shutdown_s": second["shutdown_s"],
            "rerun_fresh_total_s": second["total_s"],
            "rerun_fresh_process_s": second["process_s"],
            "rerun_fresh_import_s": second["import_s"],
            "ratio_in_session": first["rerun_in_session_s"] / first["run_s"],
            "ratio_fresh_total": second["total_s"] / first["total_s"],
            "ratio_fresh_process": second["process_s"] / first["process_s"],
            "energy_matches": abs(second["energy"] - first["energy"]) < 1e-10,
            "package": second["package"],
            "load_before": second["load_before"],
            "load_after": second["load_after"],
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller basis, for developing the benchmark")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        emit(measure(args.quick, Path(workdir)))


if __name__ == "__main__":
    main()
