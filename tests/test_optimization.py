"""Many-body geometry optimizations against geomeTRIC driving upstream's serial ManyBodyComputer.

The reference is built here from geomeTRIC's and QCManyBody's public interfaces only: a geomeTRIC custom
engine whose gradients come from ``qcmanybody.v2.ManyBodyComputer`` (PySCF through our harness, in
process), optimized by ``geometric.optimize.Optimize`` with TRIC coordinates. qcmb_parsl's optimization
must take the same number of steps to the same energy and structure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import geometric.engine
import geometric.internal
import geometric.molecule
import geometric.nifty
import geometric.optimize
import numpy as np
import pytest
import qcmanybody.v2
from drivers import descendants, start_cli, still_alive
from hpc_services import SlurmCluster
from matplotlib.image import imread
from molecules import water_cluster
from qcelemental.models.v2 import Molecule
from qcmanybody.models.v2 import ManyBodyInput

from qcmb_parsl import ConfigurationError, InputError, ParslExecutor, optimize
from qcmb_parsl.cache import FragmentCache
from qcmb_parsl.frontend.cli import main

ENERGY_TOL = 1e-7  # Eh
DISTANCE_TOL = 1e-4  # Bohr
#: Fragments per step of a dimer at MBE(2): nocp dimer + 2 monomers; cp adds the monomers in the
#: dimer basis (the monomers in their own basis give the total energy).
FRAGMENTS = {"nocp": 3, "cp": 5}
LOOSE = {"convergence_set": "GAU_LOOSE"}


def opt_input(bsse: str, keywords: dict[str, Any], **protocols: str) -> dict[str, Any]:
    """Upstream's shape (QCManyBody tests/test_optimization.py): water dimer, HF/6-31G, MBE(2)."""
    return {
        "initial_molecule": water_cluster(2),
        "specification": {
            "specification": {
                "schema_name": "qcschema_many_body_specification",
                "specification": {
                    "program": "pyscf",
                    "driver": "energy",
                    "model": {"method": "hf", "basis": "6-31g"},
                    "keywords": {},
                },
                "keywords": {"bsse_type": [bsse], "max_nbody": 2},
                "driver": "energy",
                "protocols": {"cluster_results": "all"},
            },
            "keywords": keywords,
            "protocols": {"trajectory_results": protocols.get("trajectory", "initial_and_final")},
        },
    }


class UpstreamEngine(geometric.engine.Engine):
    """geomeTRIC's custom-engine interface answered by upstream's serial many-body gradient."""

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.molecule = Molecule(**data["initial_molecule"])
        built = geometric.molecule.Molecule()
        built.elem = list(self.molecule.symbols)
        built.xyzs = [np.asarray(self.molecule.geometry).reshape(-1, 3) * geometric.nifty.bohr2ang]
        built.build_bonds()
        super().__init__(built)
        self.energies: list[float] = []
        self.geometries: list[np.ndarray] = []

    def calc_new(self, coords: np.ndarray, dirname: str) -> dict[str, Any]:
        spec = {**self.data["specification"]["specification"], "driver": "gradient"}
        molecule = Molecule(**{**self.molecule.model_dump(), "geometry": coords.reshape(-1, 3)})
        result = qcmanybody.v2.ManyBodyComputer.from_manybodyinput(
            ManyBodyInput(molecule=molecule, specification=spec)
        )
        self.energies.append(result.properties.return_energy)
        self.geometries.append(coords.reshape(-1, 3).copy())
        return {"energy": result.properties.return_energy, "gradient": np.asarray(result.return_result).ravel()}


def reference(data: dict[str, Any]) -> UpstreamEngine:
    engine = UpstreamEngine(data)
    coordinates = geometric.internal.DelocalizedInternalCoordinates(engine.M, build=True, connect=False, addcart=False)
    params = geometric.optimize.OptParams(**json.loads(json.dumps(data["specification"]["keywords"])))
    with tempfile.TemporaryDirectory() as scratch:
        geometric.optimize.Optimize(
            np.asarray(engine.molecule.geometry).ravel(), engine.M, coordinates, engine, scratch, params
        )
    return engine


def distances(geometry: Any) -> np.ndarray:
    xyz = np.asarray(geometry).reshape(-1, 3)
    upper = np.triu_indices(len(xyz), k=1)
    return np.linalg.norm(xyz[:, None, :] - xyz[None, :, :], axis=-1)[upper]


def assert_same_optimization(result: Any, expected: UpstreamEngine) -> None:
    assert result.properties.optimization_iterations == len(expected.energies)
    assert len(result.extras["qcmb_parsl"]["steps"]) == len(expected.energies)
    np.testing.assert_allclose(result.properties.return_energy, expected.energies[-1], atol=ENERGY_TOL, rtol=0)
    np.testing.assert_allclose(
        [step["energy"] for step in result.extras["qcmb_parsl"]["steps"]], expected.energies, atol=ENERGY_TOL, rtol=0
    )
    np.testing.assert_allclose(
        distances(result.final_molecule.geometry), distances(expected.geometries[-1]), atol=DISTANCE_TOL, rtol=0
    )


@pytest.mark.parametrize("bsse", ["nocp", "cp"])
def test_same_steps_energy_and_structure_as_geometric_on_upstream(bsse: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # Parsl's runinfo/
    data = opt_input(bsse, LOOSE)
    expected = reference(data)
    assert len(expected.energies) >= 5, "a start that converges at once would compare nothing"

    with ParslExecutor("local", max_workers=2, progress=False) as executor:
        result = optimize(data, optimizer="geometric", executor=executor)

    assert_same_optimization(result, expected)
    assert result.provenance.creator == "geomeTRIC"
    assert "Converged!" in result.stdout
    # Protocols: the first and last steps kept, each with every fragment's AtomicResult.
    assert len(result.trajectory_results) == 2
    assert len(result.trajectory_properties) == len(expected.energies)
    for step in result.trajectory_results:
        assert len(step.cluster_results) == FRAGMENTS[bsse]
        assert step.provenance.creator == "QCManyBody"
    np.testing.assert_allclose(result.trajectory_results[-1].return_result, result.properties.return_gradient)
    # Every fragment of every step was computed once, in one run per step, on the local executor.
    summary = result.extras["qcmb_parsl"]
    assert summary["executor"] == "local"
    assert [step["run"]["n_executed"] for step in summary["steps"]] == [FRAGMENTS[bsse]] * len(expected.energies)
    assert summary["n_cached"] == 0
    assert {len(step["fragments"]) for step in summary["steps"]} == {FRAGMENTS[bsse]}


def _wait_for(cache: Path, count: int, timeout: float = 120) -> None:
    """Poll often: the driver must die while the step that ``count`` reaches into is still running."""
    deadline = time.monotonic() + timeout
    while not (cache / "cache.db").exists():
        assert time.monotonic() < deadline, f"no cache after {timeout} s"
        time.sleep(0.05)
    with FragmentCache(cache) as opened:
        while len(opened) < count:
            assert time.monotonic() < deadline, f"fewer than {count} fragments cached after {timeout} s"
            time.sleep(0.02)


def test_killed_optimization_resumes_with_only_the_missing_fragments(tmp_path) -> None:
    """SIGKILL the driver in step 3; the rerun replays steps 1-2 from the cache and computes only what
    step 3 lacks."""
    per_step = FRAGMENTS["cp"]
    cache = tmp_path / "cache"
    inp = tmp_path / "dimer.json"
    inp.write_text(json.dumps(opt_input("cp", {"maxiter": 4, "converge": ["maxiter"]}, trajectory="all")))
    args = ["optimize", str(inp), "--preset", "local", "--workers", "2", "-q"]

    driver = start_cli(args, tmp_path, cache)
    try:
        _wait_for(cache, 2 * per_step + 1)
        processes = descendants(driver.pid)
        driver.kill()
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    with FragmentCache(cache) as opened:
        kept = len(opened)
    step, have = divmod(kept, per_step)
    step += 1  # the step that was cut short
    assert step >= 3 and 0 < have < per_step, f"killed with {kept} fragments cached: not in the middle of a step"
    assert not still_alive(processes, 60), "interchange, pool, templates and engines exit with the driver"

    rerun = subprocess.run(
        [sys.executable, "-m", "qcmb_parsl", *args],
        cwd=tmp_path,
        env={**os.environ, "QCMB_PARSL_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert rerun.returncode == 0, rerun.stderr
    result_file = tmp_path / "dimer.result.json"
    steps = json.loads(result_file.read_text())["extras"]["qcmb_parsl"]["steps"]
    assert len(steps) == 5  # the first geometry and maxiter=4 steps
    executed = [s["run"]["n_executed"] for s in steps]
    cached = [s["run"]["n_cached"] for s in steps]
    assert cached[: step - 1] == [per_step] * (step - 1) and executed[: step - 1] == [0] * (step - 1)
    assert (cached[step - 1], executed[step - 1]) == (have, per_step - have)
    assert cached[step:] == [0] * (5 - step) and executed[step:] == [per_step] * (5 - step)
    assert sum(cached) == kept
    assert "5 steps, 25 fragments" in rerun.stdout

    # The report draws the energy per step beside the steps' timelines.
    assert main(["report", str(result_file), "--out-dir", str(tmp_path)]) == 0
    height, width, _ = imread(tmp_path / "dimer_optimization.png").shape
    assert width > 1000 and height > 300


@pytest.mark.slurm
def test_on_the_local_slurm_preset(slurm_cluster: SlurmCluster, tmp_path, monkeypatch) -> None:
    """Every step's fragments run in the Slurm job Parsl submitted; the steps are the reference's."""
    monkeypatch.chdir(tmp_path)
    data = opt_input("nocp", {**LOOSE, "maxiter": 3, "converge": ["maxiter"]}, trajectory="all")
    expected = reference(data)
    with ParslExecutor(
        "slurm", partition="debug", address="127.0.0.1", exclusive=False, max_blocks=1, max_workers=2,
        walltime="00:10:00", progress=False,
    ) as executor:
        result = optimize(data, executor=executor)
        blocks = set(executor.dfk.executors["slurm"].blocks_to_job_id.values())

    assert_same_optimization(result, expected)
    assert result.extras["qcmb_parsl"]["executor"] == "slurm"
    jobs = {
        atomic.extras["qcmb_parsl"]["slurm_job_id"]
        for step in result.trajectory_results
        for atomic in step.cluster_results.values()
    }
    assert len(result.trajectory_results) == 4 and jobs and jobs <= blocks
    assert slurm_cluster.wait_for_jobs(timeout=60), "the executor left its Slurm block behind"


def _v1_layout(data: dict[str, Any]) -> dict[str, Any]:
    spec = data["specification"]
    return {"initial_molecule": data["initial_molecule"], "input_specification": spec["specification"],
            "keywords": spec["keywords"]}


def _with_many_body(**changes: Any) -> Any:
    def change(data: dict[str, Any]) -> dict[str, Any]:
        data["specification"]["specification"].update(changes)
        return data

    return change


def _with_keywords(**keywords: Any) -> Any:
    def change(data: dict[str, Any]) -> dict[str, Any]:
        data["specification"]["keywords"].update(keywords)
        return data

    return change


def _with_model(**model: Any) -> Any:
    def change(data: dict[str, Any]) -> dict[str, Any]:
        data["specification"]["specification"]["specification"]["model"].update(model)
        return data

    return change


def _atomic(data: dict[str, Any]) -> dict[str, Any]:
    data["specification"]["specification"] = {
        "schema_name": "qcschema_atomic_specification", "program": "pyscf", "driver": "gradient",
        "model": {"method": "hf", "basis": "6-31g"},
    }
    return data


def _no_total(data: dict[str, Any]) -> dict[str, Any]:
    data["specification"]["specification"]["keywords"]["return_total_data"] = False
    return data


OPTKING_MESSAGE = (
    "optimizer 'optking' is not installed: conda install optking -c conda-forge"
    if importlib.util.find_spec("optking") is None
    else "optimizer 'optking' takes a ManyBodySpecification only in its QCSchema v2 version, which is not released"
)


@pytest.mark.parametrize(
    ("optimizer", "change", "error", "message"),
    [
        ("optking", None, ConfigurationError, OPTKING_MESSAGE),
        ("bfgs", None, ConfigurationError, "optimizer 'bfgs' is unknown: choose 'geometric' (default) or 'optking'"),
        ("geometric", _v1_layout, InputError, "QCSchema v1 OptimizationInput holds only an atomic input_specification"),
        ("geometric", _atomic, InputError, "specification.specification is an AtomicSpecification"),
        ("geometric", _with_many_body(driver="hessian"), InputError,
         ("specification.specification.driver is 'hessian': an optimization takes many-body gradients, set it "
          "to 'gradient'")),
        ("geometric", _no_total, InputError, "return_total_data is false: the optimizer needs the total"),
        ("geometric", _with_keywords(coordsys="zmat"), InputError, "optimizer keyword coordsys='zmat' is not one of"),
        ("geometric", _with_keywords(constraints={"freeze": [{"type": "distance", "indices": [0]}]}), InputError,
         "optimizer keyword constraints: Expected constraint of type 'distance' to have length '2'"),
        ("geometric", _with_keywords(convergence_set="nonsense"), InputError,
         "optimizer keywords rejected by geomeTRIC: NONSENSE"),
        ("geometric", _with_keywords(maxiter=0), InputError, "optimizer keyword maxiter must be at least 1, got 0"),
        ("geometric", _with_keywords(maxiter=-5), InputError, "optimizer keyword maxiter must be at least 1, got -5"),
        ("geometric", _with_keywords(maxiter="ten"), InputError,
         "optimizer keyword maxiter must be a whole number, got 'ten'"),
        ("geometric", _with_keywords(maxiters=10), InputError,
         "optimizer keyword 'maxiters' is not one geomeTRIC knows; did you mean maxiter? (geomeTRIC's keywords: "),
        ("geometric", _with_model(basis="6-31gg"), InputError,
         "basis '6-31gg' is not known to PySCF; did you mean 6-31g"),
    ],
)
def test_bad_input_is_one_line_before_anything_is_submitted(optimizer, change, error, message, tmp_path) -> None:
    data = opt_input("nocp", {})
    if change is not None:
        data = change(data)
    executor = ParslExecutor("local", max_workers=2, cache_dir=tmp_path / "cache", progress=False)
    with pytest.raises(error) as raised:
        optimize(data, optimizer=optimizer, executor=executor)
    assert str(raised.value).startswith(message) or message in str(raised.value), str(raised.value)
    assert "\n" not in str(raised.value)
    assert executor.dfk is None and len(executor.cache) == 0
    executor.close()


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys) -> None:
    inp = tmp_path / "hessian.json"
    inp.write_text(json.dumps(_with_many_body(driver="hessian")(opt_input("nocp", {}))))
    assert main(["optimize", str(inp), "--preset", "local"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    expected = (
        f"qcmb-parsl: error: {inp}: specification.specification.driver is 'hessian': an optimization takes "
        "many-body gradients, set it to 'gradient'"
    )
    assert err == [expected]
