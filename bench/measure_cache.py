"""Item 3: a rerun answered from the fragment cache, against the first run of the same input; and what
checking each hit costs against a bare read of the same records.

Two reruns of item 1's input with the same cache directory: inside the first run's session (a notebook
user running the cell again) and in a fresh interpreter (a user running the script again: imports,
Parsl start-up, keys, look-ups and assembly, no fragment computed). Each ratio compares like with like:
in-session rerun over the first run's ``run_s``; fresh-process rerun over the first run's total (start-up
and shut-down included) and over the whole process (imports included).

The first runs are item 1's qcmb_parsl runs when :mod:`run` passes them in (``primed``): repeating a
several-minute calculation only to fill a cache would double the benchmark's longest part. Run alone,
this module makes its own first run with the same code (``measure_speedup.py --one``).

The cost of a hit's checks (:func:`measure_hits`, in a fresh interpreter): 10^4 records of a 6-atom
fragment (the water dimer, HF/STO-3G, computed once by the project's PySCF harness and stored translated
by a step per record, which leaves its energy and gradient as they are) are looked up with
``FragmentCache.get_many`` (every check: the record's key, the digest of its result text, the request
digest, the result's own atoms, ghosts and geometry, the return value's type and shape) and read bare
(the same rows fetched from SQLite and each record's two JSON lines parsed, nothing checked). CPU seconds,
the least of alternated repetitions (the one other processes disturbed least).
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from common import emit, log, spawn

CONFIGS = ("threads", "local")
#: Records looked up per measurement, and alternated repetitions of the two look-ups.
HITS, HITS_QUICK, REPEATS = 10_000, 1_000, 7


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


def measure_hits(quick: bool) -> dict[str, Any]:
    """The cost of a checked hit against a bare read, for energies and gradients, in a fresh interpreter."""
    log("cache: checked hits against bare reads")
    return spawn("measure_cache.py", ["--hits"] + (["--quick"] if quick else []))


def _translated(atomic_input: dict[str, Any], result: dict[str, Any], step: float) -> tuple[dict, dict]:
    """The request and its result moved by ``step`` Bohr along x: the same energy and gradient."""
    request = copy.deepcopy(atomic_input)
    geometry = request["molecule"]["geometry"]
    for i in range(0, len(geometry), 3):
        geometry[i] += step
    moved = copy.deepcopy(result)
    moved["molecule"]["geometry"] = [list(geometry[i : i + 3]) for i in range(0, len(geometry), 3)]
    moved["input_data"]["molecule"]["geometry"] = moved["molecule"]["geometry"]
    return request, moved


def _bare_read(cache: Any, keys: list[str]) -> int:
    """The rows of ``keys`` fetched and each record's header and result parsed, nothing checked: what a
    look-up cannot skip."""
    from qcmb_parsl.cache._diskcache import fetch, select_rows

    parsed = 0
    for row in select_rows(cache._cache, keys):
        header, _, result = fetch(cache._cache, row).partition("\n")
        json.loads(header)
        json.loads(result)
        parsed += 1
    return parsed


def run_hits(quick: bool) -> dict[str, Any]:
    """This process: fill a fresh cache per driver, then time both look-ups alternately."""
    import qcengine

    import qcmb_parsl  # noqa: F401 - registers the PySCF harness
    from qcmb_parsl.cache import FragmentCache, fragment_key
    from qcmb_parsl.clusters import water_cluster
    from qcmb_parsl.engines.programs import program_versions

    n_hits = HITS_QUICK if quick else HITS
    version = program_versions(["pyscf"])["pyscf"]
    molecule = water_cluster(2)
    results: dict[str, Any] = {"fragment": "(H2O)2 (6 atoms), HF/STO-3G", "n_hits": n_hits, "drivers": {}}
    for driver in ("energy", "gradient"):
        spec = {"driver": driver, "model": {"method": "hf", "basis": "sto-3g"}, "keywords": {}}
        atomic_input = {"molecule": molecule, "specification": spec}
        result = qcengine.compute(atomic_input, "pyscf", raise_error=True, return_dict=True)
        with tempfile.TemporaryDirectory() as directory, FragmentCache(directory) as cache:
            requests = {}
            for i in range(n_hits):
                request, moved = _translated(atomic_input, result, 1e-3 * i)
                key = fragment_key("pyscf", version, request)
                cache.put(key, program="pyscf", program_version=version, atomic_input=request,
                          result_json=json.dumps(moved), wall_time=0.1, provenance={})
                requests[key] = request
            keys = list(requests)
            bare, checked = [], []
            for _ in range(REPEATS):
                start = time.process_time()
                assert _bare_read(cache, keys) == n_hits
                bare.append(time.process_time() - start)
                start = time.process_time()
                assert len(cache.get_many(requests)) == n_hits
                checked.append(time.process_time() - start)
        results["drivers"][driver] = {
            "bare_s": min(bare),
            "checked_s": min(checked),
            "ratio": min(checked) / min(bare),
        }
        log(f"cache hits, {driver}: {results['drivers'][driver]}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller basis, for developing the benchmark")
    parser.add_argument("--hits", action="store_true", help="only the cost of checked hits, in this process")
    args = parser.parse_args()
    if args.hits:
        emit(run_hits(args.quick))
        return
    with tempfile.TemporaryDirectory() as workdir:
        emit(measure(args.quick, Path(workdir)))


if __name__ == "__main__":
    main()
