"""`make bench`: every measurement side by side in one run on this machine, then the tables.

Order matters on a shared machine: the parallel-ceiling probe brackets item 1, whose speedups depend
on it; item 3 reuses item 1's filled caches; the simulation (item 6) needs items 1, 2 and 4; item 7 (a
geometry optimization), item 10 (recovering from a killed interchange), item 12 (screened expansions)
and item 13 (a refused typo from the shell) stand alone; item 11 (floods of fast fragments, 10^5 of them
at the end) comes last, as the longest. Writes
``bench/results/latest.json`` (raw numbers, every fragment's provenance included) and ``docs/bench.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from typing import Any

import measure_balance
import measure_cache
import measure_ceiling
import measure_cost_model
import measure_driver
import measure_floods
import measure_optimization
import measure_overhead
import measure_planning
import measure_screening
import measure_refusal
import measure_recovery
import measure_speedup
import report
import simulate
from common import REPO_DIR, RESULTS_DIR, WORK_DIR, load_average, log
from machine import git_state, machine_info


def run(quick: bool) -> dict[str, Any]:
    started = time.perf_counter()
    results: dict[str, Any] = {"quick": quick, "machine": machine_info(), "durations_s": {}}
    workdir = WORK_DIR / "caches"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)

    def step(name: str, measurement: Any, *args: Any) -> None:
        begin = time.perf_counter()
        results[name] = measurement(*args)
        results["durations_s"][name] = time.perf_counter() - begin

    try:
        step("ceiling_before", measure_ceiling.measure)
        step("speedup", measure_speedup.measure, quick, workdir)
        step("ceiling_after", measure_ceiling.measure)
        primed = {name: results["speedup"]["configs"][name] for name in measure_cache.CONFIGS}
        step("cache", measure_cache.measure, quick, workdir, primed)
        step("cache_hits", measure_cache.measure_hits, quick)
        step("overhead", measure_overhead.measure, quick)
        step("balance", measure_balance.measure, quick)
        step("planning", measure_planning.measure, quick)
        step("simulation", simulate.measure, results["speedup"], results["balance"], results["overhead"], quick)
        step("optimization", measure_optimization.measure, quick, workdir)
        step("cost_model", measure_cost_model.measure, results["speedup"], results["balance"], quick)
        step("driver", measure_driver.measure, quick)
        step("screening", measure_screening.measure, quick, workdir)
        step("refusal", measure_refusal.measure, quick)
        step("recovery", measure_recovery.measure, quick)
        step("floods", measure_floods.measure, quick)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["load_average_end"] = load_average()
    results["git_end"] = git_state()
    results["total_s"] = time.perf_counter() - started
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller bases and counts, for developing the benchmark")
    args = parser.parse_args()
    results = run(args.quick)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "latest.json").write_text(json.dumps(results, indent=1))
    tables = report.all_tables(results)
    (REPO_DIR / "docs").mkdir(exist_ok=True)
    (REPO_DIR / "docs" / "bench.md").write_text(report.markdown(results, tables))
    report.print_tables(tables)
    log(f"done in {results['total_s'] / 60:.1f} min: bench/results/latest.json, docs/bench.md")


if __name__ == "__main__":
    main()
