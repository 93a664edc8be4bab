"""Item 8: screened expansions — the error of each cutoff against the unscreened expansion, wall time,
a cluster too large to run unscreened, and what re-screening does to an optimization.

Configurations, each in a fresh interpreter (``--one NAME``), every run on a local HighThroughputExecutor
(2 workers of 1 core) with a fresh cache unless said otherwise:

* ``series-N``: (H2O)N MBE(3) no-CP HF/STO-3G, unscreened. Its fragments' energies give every
  subsystem's n-body increment, so the error of any screening (minus the sum of the increments it drops)
  and what it keeps are computed exactly for a grid of cutoffs and for both distance criteria, minimum
  interatomic and centroid, with the sum of the dropped increments' sizes (errors of both signs cancel;
  that sum does not, so it compares criteria without lucky cancellations). The estimated wall time of a screening is the unscreened run's summed
  fragment times of what it keeps, over the workers. Two screenings are then run for real on fresh
  caches: their wall time, and their energy against the exact error (the arithmetic's check).
* ``large``: (H2O)N (N = 64) MBE(3) no-CP HF/STO-3G, too large to run unscreened here: every dimer and
  the trimers within a tight cutoff, then within a looser one in the same session and cache (only the
  trimers the tight run lacks are computed). The tight run's error is estimated against the looser one.
* ``optimization``: (H2O)6 MBE(2) no-CP HF/STO-3G with a cutoff among its pair distances, optimized with
  the kept set frozen at the first geometry (what ``optimize`` does) and re-screened at every step.

HF/STO-3G through the project's PySCF harness: every installation has it, no-CP and CP alike. Its
many-body terms decay faster than a correlated method's (no dispersion), so the curves show the method,
not a universal rule: the how-to says to measure one's own method on a small cluster.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from cases import CORES_PER_WORKER, WORKERS
from common import emit, log, spawn

KCAL = 627.509474
MODEL = {"method": "hf", "basis": "sto-3g"}
#: Screenings of the curve: one cutoff for dimers and trimers alike, and every dimer with screened trimers.
GRID = [{2: c} for c in (3.0, 4.0, 5.0, 6.0, 8.0, 10.0)] + [{3: c} for c in (3.0, 4.0, 5.0, 6.0, 8.0)]
#: Screenings run for real in the series (wall time measured, not estimated).
MEASURED = [{2: 8.0, 3: 5.0}, {3: 4.0}]
#: The large case's tight and looser screenings.
LARGE = [{3: 5.0}, {3: 6.0}]


def series_sizes(quick: bool) -> list[int]:
    return [4, 6] if quick else [8, 12, 16]


def large_size(quick: bool) -> int:
    return 12 if quick else 64


def label_of(screening: dict[int, float]) -> str:
    return ",".join(f"{level}:{cutoff:g}" for level, cutoff in screening.items())


def mbe_input(waters: int, max_nbody: int = 3, driver: str = "energy", keep: bool = False) -> dict[str, Any]:
    from qcmb_parsl.clusters import water_cluster

    specification: dict[str, Any] = {
        "specification": {"program": "pyscf", "driver": driver, "model": MODEL},
        "keywords": {"bsse_type": ["nocp"], "max_nbody": max_nbody},
        "driver": driver,
    }
    if keep:
        specification["protocols"] = {"component_results": "all"}
    return {"molecule": water_cluster(waters), "specification": specification}


def executor(cache_dir: str) -> Any:
    from qcmb_parsl import ParslExecutor

    return ParslExecutor(
        "local", max_workers=WORKERS, cores_per_worker=CORES_PER_WORKER, cache_dir=cache_dir, progress=False
    )


def timed_run(data: dict[str, Any], cache_dir: str, screening: Any = None) -> tuple[Any, float]:
    """A run as a user runs it, from the call to the result (executor start-up and shut-down included)."""
    from qcmb_parsl import ManyBodyComputer

    start = time.perf_counter()
    with executor(cache_dir) as chosen:
        result = ManyBodyComputer.from_manybodyinput(data, executor=chosen, screening=screening)
    return result, time.perf_counter() - start


def run_series(waters: int, scratch: str) -> dict[str, Any]:
    import json

    from qcmb_parsl.screening import Screening, fragment_distances, increments, kept_subsystems

    data = mbe_input(waters, keep=True)
    log(f"screening: (H2O){waters} MBE(3) unscreened")
    reference, wall_s = timed_run(data, str(Path(scratch) / "unscreened"))
    energies, seconds = {}, {}
    for label, atomic in reference.component_results.items():
        _, real, _ = json.loads(label)
        energies[tuple(real)] = atomic.properties.return_energy
        seconds[tuple(real)] = atomic.extras["qcmb_parsl"]["wall_time"]
    found = increments(energies)
    total_e = reference.properties.nocp_corrected_total_energy
    molecule = reference.input_data.molecule
    distances = {m: fragment_distances(molecule.geometry, molecule.fragments, m) for m in ("minimum", "centroid")}

    def predicted(screening: dict[int, float], metric: str) -> dict[str, Any]:
        """What a screening keeps and its exact error, from the unscreened run's increments."""
        kept = kept_subsystems(distances[metric], Screening.from_user(screening).cutoff, 3)
        every = [s for level in kept.values() for s in level]
        return {
            "metric": metric,
            "screening": label_of(screening),
            "dimers": len(kept[2]),
            "trimers": len(kept[3]),
            "fragments": len(every),
            "error_kcal": -math.fsum(found[s] for s in set(found) - set(every)) * KCAL,
            "dropped_abs_kcal": math.fsum(abs(found[s]) for s in set(found) - set(every)) * KCAL,
            "estimated_s": sum(seconds[s] for s in every) / WORKERS,
        }

    curve = [predicted(screening, metric) for metric in ("minimum", "centroid") for screening in GRID]
    measured = []
    for screening in MEASURED:
        log(f"screening: (H2O){waters} --screen {label_of(screening)}")
        result, run_s = timed_run(data, str(Path(scratch) / label_of(screening)), screening)
        run = result.extras["qcmb_parsl"]
        measured.append({
            "screening": label_of(screening),
            "fragments": run["n_tasks"],
            "computed": run["n_executed"],
            "wall_s": run_s,
            "error_kcal": (result.properties.nocp_corrected_total_energy - total_e) * KCAL,
            "predicted": predicted(screening, "minimum"),
        })
    return {
        "waters": waters,
        "fragments": len(energies),
        "wall_s": wall_s,
        "energy": total_e,
        "interaction_kcal": reference.properties.nocp_corrected_interaction_energy * KCAL,
        "curve": curve,
        "measured": measured,
    }


def run_large(waters: int, scratch: str) -> dict[str, Any]:
    data = mbe_input(waters)
    runs = []
    cache = str(Path(scratch) / "cache")
    for screening in LARGE:
        log(f"screening: (H2O){waters} MBE(3) --screen {label_of(screening)}")
        result, run_s = timed_run(data, cache, screening)
        run = result.extras["qcmb_parsl"]
        levels = run["screening"]["levels"]
        runs.append({
            "screening": label_of(screening),
            "dimers": levels["2"]["n_kept"],
            "trimers": levels["3"]["n_kept"],
            "trimers_all": levels["3"]["n_kept"] + levels["3"]["n_dropped"],
            "fragments": run["n_tasks"],
            "computed": run["n_executed"],
            "cached": run["n_cached"],
            "wall_s": run_s,
            "energy": result.properties.nocp_corrected_total_energy,
            "three_body_kcal": result.properties.nocp_corrected_3_body_contribution_to_energy * KCAL,
        })
    return {"waters": waters, "runs": runs}


def run_optimization(scratch: str) -> dict[str, Any]:
    """The same optimization with the kept set frozen (``optimize``) and re-screened at every step."""
    from qcmb_parsl import OptimizationFailed, optimize
    from qcmb_parsl.computer import ManyBodyComputerV2
    from qcmb_parsl.optimization.geometric_driver import GeometricOptimizer
    from qcmb_parsl.optimization.inputs import gradient_specification, optimization_input, step_input
    from qcmb_parsl.screening import fragment_distances

    mbin = mbe_input(6, max_nbody=2)
    molecule = mbin["molecule"]
    pairs = fragment_distances(np.reshape(molecule["geometry"], (-1, 3)), molecule["fragments"])
    cutoff = round(float(np.median(pairs[np.triu_indices(len(pairs), 1)])), 1)
    specification = {**mbin["specification"], "schema_name": "qcschema_many_body_specification"}
    data = {
        "initial_molecule": molecule,
        "specification": {"specification": specification, "keywords": {"maxiter": 150}},
    }
    screening = {2: cutoff}
    out: dict[str, Any] = {"cutoff": cutoff}
    with executor(str(Path(scratch) / "frozen")) as chosen:
        log(f"screening: optimization, kept set frozen, cutoff {cutoff} Å")
        start = time.perf_counter()
        try:
            result = optimize(data, executor=chosen, screening=screening)
            summary = result.extras["qcmb_parsl"]
            crossed = summary["screening"]["at_final_geometry"]
            out["frozen"] = {
                "converged": True,
                "steps": summary["n_steps"],
                "energy": result.properties.return_energy,
                "crossed_at_end": len(crossed["added"]) + len(crossed["removed"]),
            }
        except OptimizationFailed as failed:
            out["frozen"] = {"converged": False, "reason": str(failed)}
        out["frozen"]["wall_s"] = time.perf_counter() - start

    with executor(str(Path(scratch) / "rescreened")) as chosen:
        log(f"screening: optimization, re-screened every step, cutoff {cutoff} Å")
        model = optimization_input(data, "geometric")
        spec = gradient_specification(model)
        steps: list[dict[str, Any]] = []
        state: dict[str, Any] = {}

        def gradient(coords: np.ndarray) -> tuple[float, np.ndarray]:
            computer = ManyBodyComputerV2.prepare(step_input(model, spec, coords), screening)
            step = computer.run(chosen)
            selection = computer.qcmb_core.selection
            record = {"energy": step.properties.return_energy, "kept": len(selection.kept[2]), "jump": None}
            previous = state.get("selection")
            if previous is not None and previous.kept != selection.kept:
                # The same geometry with the previous step's kept set: the energy the optimizer expected.
                old = ManyBodyComputerV2.prepare(step_input(model, spec, coords), previous).run(chosen)
                record["jump"] = step.properties.return_energy - old.properties.return_energy
            state["selection"] = selection
            steps.append(record)
            return step.properties.return_energy, np.asarray(step.return_result)

        start = time.perf_counter()
        optimizer = GeometricOptimizer(model.initial_molecule, model.specification.keywords)
        try:
            optimizer.run(gradient)
            converged = True
        except OptimizationFailed:
            converged = False
        jumps = [abs(s["jump"]) for s in steps if s["jump"] is not None]
        out["rescreened"] = {
            "converged": converged,
            "steps": len(steps),
            "energy": steps[-1]["energy"],
            "changes": len(jumps),
            "max_jump_kcal": max(jumps, default=0.0) * KCAL,
            "wall_s": time.perf_counter() - start,
        }
    return out


def measure(quick: bool, workdir: Path | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"model": "HF/STO-3G", "series": [], "grid": [label_of(s) for s in GRID]}
    quick_args = ["--quick"] if quick else []
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        for waters in series_sizes(quick):
            out["series"].append(spawn("measure_screening.py", ["--one", f"series-{waters}", "--dir", scratch]))
        out["large"] = spawn("measure_screening.py", ["--one", "large", "--dir", scratch, *quick_args])
        out["optimization"] = spawn("measure_screening.py", ["--one", "optimization", "--dir", scratch])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small clusters, for developing the benchmark")
    parser.add_argument("--one", help="series-N, large or optimization: run one configuration in this process")
    parser.add_argument("--dir", help="scratch directory for caches")
    args = parser.parse_args()
    if args.one is None:
        emit(measure(args.quick))
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        if args.one.startswith("series-"):
            emit(run_series(int(args.one.removeprefix("series-")), scratch))
        elif args.one == "large":
            emit(run_large(large_size(args.quick), scratch))
        else:
            emit(run_optimization(scratch))


if __name__ == "__main__":
    main()
