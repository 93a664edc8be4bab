"""Item 7: a many-body geometry optimization, geomeTRIC on upstream's serial gradients against qcmb_parsl.

Two configurations, each in a fresh interpreter (``--one NAME``):

* ``upstream-serial``: geomeTRIC's custom-engine interface answered by ``qcmanybody.v2.ManyBodyComputer``
  (fragments one after another in this process, one core each): what a user can do today, since
  QCEngine's ``compute_procedure`` does not take a ManyBodySpecification;
* ``local``: ``qcmb_parsl.optimize`` on a local HighThroughputExecutor, 2 workers of 1 core, the cache on
  in a fresh directory; then the same optimization again in the same session, every fragment a cache
  hit: the cost of replaying an optimization up to the step where it was stopped.

Times are the user's, from the call to the result (for ``local``: executor start-up and shut-down included).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from cases import CORES_PER_WORKER, WORKERS, optimization_case
from common import ONE_CORE_ENV, emit, log, spawn

CONFIGURATIONS = {"upstream-serial": ONE_CORE_ENV, "local": {}}


def run_upstream(quick: bool) -> dict[str, Any]:
    """geomeTRIC driving upstream's serial many-body gradients through its custom engine."""
    import geometric.engine
    import geometric.internal
    import geometric.molecule
    import geometric.nifty
    import geometric.optimize
    import qcmanybody.v2
    from qcelemental.models.v2 import Molecule
    from qcmanybody.models.v2 import ManyBodyInput

    import qcmb_parsl  # noqa: F401 - registers the "pyscf" QCEngine harness, which upstream users need too

    data = optimization_case(quick).input()
    molecule = Molecule(**data["initial_molecule"])
    spec = data["specification"]["specification"]
    energies: list[float] = []

    class Upstream(geometric.engine.Engine):
        def calc_new(self, coords: np.ndarray, dirname: str) -> dict[str, Any]:
            step = Molecule(**{**molecule.model_dump(), "geometry": coords.reshape(-1, 3)})
            result = qcmanybody.v2.ManyBodyComputer.from_manybodyinput(ManyBodyInput(molecule=step, specification=spec))
            energies.append(result.properties.return_energy)
            return {"energy": energies[-1], "gradient": np.asarray(result.return_result).ravel()}

    built = geometric.molecule.Molecule()
    built.elem = list(molecule.symbols)
    built.xyzs = [np.asarray(molecule.geometry).reshape(-1, 3) * geometric.nifty.bohr2ang]
    built.build_bonds()
    start = time.perf_counter()
    engine = Upstream(built)
    coordinates = geometric.internal.DelocalizedInternalCoordinates(built, build=True, connect=False, addcart=False)
    params = geometric.optimize.OptParams(**data["specification"]["keywords"])
    with tempfile.TemporaryDirectory() as scratch:
        geometric.optimize.Optimize(np.asarray(molecule.geometry).ravel(), built, coordinates, engine, scratch, params)
    total_s = time.perf_counter() - start
    return {"total_s": total_s, "n_steps": len(energies), "energy": energies[-1], "per_step_s": total_s / len(energies)}


def run_qcmb_parsl(quick: bool, cache_dir: str) -> dict[str, Any]:
    """qcmb_parsl.optimize as a user runs it, then again in the same session from the cache."""
    from qcmb_parsl import ParslExecutor, optimize

    data = optimization_case(quick).input()
    start = time.perf_counter()
    with ParslExecutor(
        "local", max_workers=WORKERS, cores_per_worker=CORES_PER_WORKER, cache_dir=cache_dir, progress=False
    ) as executor:
        started = time.perf_counter()
        result = optimize(data, executor=executor)
        first_s = time.perf_counter() - started
        replay_start = time.perf_counter()
        replay = optimize(data, executor=executor)
        replay_s = time.perf_counter() - replay_start
    total_s = time.perf_counter() - start - replay_s
    summary = result.extras["qcmb_parsl"]
    steps = summary["steps"]
    return {
        "total_s": total_s,
        "startup_s": started - start,
        "optimize_s": first_s,
        "n_steps": summary["n_steps"],
        "energy": result.properties.return_energy,
        "per_step_s": sum(s["wall_time"] for s in steps[1:]) / max(len(steps) - 1, 1),
        "first_step_s": steps[0]["wall_time"],
        "fragments_per_step": steps[0]["run"]["n_tasks"],
        "replay_s": replay_s,
        "replay_cached": replay.extras["qcmb_parsl"]["n_cached"],
        "replay_n_tasks": replay.extras["qcmb_parsl"]["n_tasks"],
    }


def measure(quick: bool, workdir: Path | None = None) -> dict[str, Any]:
    case = optimization_case(quick)
    configs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        for name, env in CONFIGURATIONS.items():
            log(f"optimization: {name} on {case.describe()}")
            args = ["--one", name] + (["--quick"] if quick else [])
            if name == "local":
                args += ["--cache-dir", str(Path(scratch) / "cache")]
            configs[name] = spawn("measure_optimization.py", args, env=env)
            log(f"optimization: {name} {configs[name]['n_steps']} steps in {configs[name]['total_s']:.1f} s")
    serial = configs["upstream-serial"]
    for result in configs.values():
        result["speedup"] = serial["total_s"] / result["total_s"]
    return {
        "case": case.describe(),
        "configs": configs,
        "energy_spread": abs(configs["local"]["energy"] - serial["energy"]),
        "same_steps": configs["local"]["n_steps"] == serial["n_steps"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller basis, for developing the benchmark")
    parser.add_argument("--one", choices=sorted(CONFIGURATIONS), help="run one configuration in this process")
    parser.add_argument("--cache-dir", help="fragment cache directory (local)")
    args = parser.parse_args()
    if args.one is None:
        emit(measure(args.quick))
    elif args.one == "upstream-serial":
        emit(run_upstream(args.quick))
    else:
        emit(run_qcmb_parsl(args.quick, args.cache_dir))


if __name__ == "__main__":
    main()
