"""Item 9: what a typo costs: ``qcmb-parsl run`` refusing a mistyped model chemistry, from the shell.

A mistyped basis or method is refused before Parsl, an engine or any file is touched; the user waits for
the interpreter, the imports the check needs (QCElemental and QCEngine to read the input, PySCF to know
its methods and basis sets) and the check. Each command runs as a user's shell runs it, the console
script in a fresh process, alternated over the cases; wall and CPU seconds (user + system of the child),
medians. ``--help`` is the floor every command pays; ``python -c pass`` the interpreter's own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import emit, load_average, log, package_hash

#: Fresh processes per case.
REPEATS, REPEATS_QUICK = 7, 3


def _xyz() -> str:
    """The water dimer as a chemist's XYZ file (Angstrom)."""
    from qcmb_parsl.clusters import BOHR_PER_ANGSTROM, water_cluster

    molecule = water_cluster(2)
    rows = [molecule["geometry"][i : i + 3] for i in range(0, len(molecule["geometry"]), 3)]
    lines = [
        f"{s} {x / BOHR_PER_ANGSTROM:.6f} {y / BOHR_PER_ANGSTROM:.6f} {z / BOHR_PER_ANGSTROM:.6f}"
        for s, (x, y, z) in zip(molecule["symbols"], rows, strict=True)
    ]
    return "\n".join(["6", "water dimer", *lines]) + "\n"


def _input_json() -> dict[str, Any]:
    """The same dimer as a ManyBodyInput (v2) whose method is mistyped."""
    from qcmb_parsl.clusters import water_cluster

    spec = {"program": "pyscf", "driver": "energy", "model": {"method": "hff", "basis": "sto-3g"}}
    return {
        "schema_version": 2,
        "molecule": water_cluster(2),
        "specification": {"specification": spec, "keywords": {"bsse_type": ["cp"]}, "driver": "energy"},
    }


def _cases(script: str) -> dict[str, list[str]]:
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "qcmb-parsl --help": [script, "--help"],
        "run XYZ, basis 6-31gg": [script, "run", "dimer.xyz", "--method", "hf", "--basis", "6-31gg"],
        "run XYZ, no --basis": [script, "run", "dimer.xyz", "--method", "hf"],
        "run JSON, method hff": [script, "run", "dimer.json"],
    }


def _timed(command: list[str], cwd: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and exit status of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def measure(quick: bool) -> dict[str, Any]:
    """Median wall and CPU seconds per case; every refusal must exit 2 and leave its directory as it was."""
    script = str(Path(sys.executable).with_name("qcmb-parsl"))
    repeats = REPEATS_QUICK if quick else REPEATS
    cases = _cases(script)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    load_before = load_average()
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        (work / "dimer.xyz").write_text(_xyz())
        (work / "dimer.json").write_text(json.dumps(_input_json()))
        files = sorted(os.listdir(work))
        for _ in range(repeats):
            for name, command in cases.items():
                wall, cpu, status = _timed(command, work)
                expected = 2 if name.startswith("run") else 0
                if status != expected or sorted(os.listdir(work)) != files:
                    raise RuntimeError(f"{name}: exit status {status}, files {sorted(os.listdir(work))}")
                samples[name].append((wall, cpu))
    results = {
        name: {
            "wall_s": statistics.median(w for w, _ in values),
            "cpu_s": statistics.median(c for _, c in values),
            "repeats": len(values),
        }
        for name, values in samples.items()
    }
    log("refusals: " + "; ".join(f"{name} {r['wall_s']:.2f} s" for name, r in results.items()))
    return {
        "cases": results,
        "load_before": load_before,
        "load_after": load_average(),
        "package": package_hash(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions, for developing the benchmark"
    )
    args = parser.parse_args()
    emit(measure(args.quick))


if __name__ == "__main__":
    main()
