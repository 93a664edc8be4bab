"""The foundation: same ManyBodyResult as upstream's serial computer, on every executor, v1 and v2.

Real PySCF (the project's harness) and real Parsl executors; references from upstream QCManyBody's
own ``ManyBodyComputer`` on the same engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import psutil
import pytest
import qcmanybody
import qcmanybody.v2
from components import require_nwchem
from drivers import session_processes
from molecules import mbe_input
from parsl.config import Config
from parsl.executors import ThreadPoolExecutor

import qcmb_parsl
import qcmb_parsl.v2
from qcmb_parsl import ConfigurationError, ExecutorConfig, InputError, ManyBodyComputer, ParslExecutor
from qcmb_parsl.planning.plan import plan_tasks, specifications_from_input

ROOT = Path(__file__).resolve().parents[1]
ENERGY_TOL = 1e-9
ARRAY_TOL = 1e-8


@cache
def upstream(text: str, schema_version: int):
    computer = qcmanybody.ManyBodyComputer if schema_version == 1 else qcmanybody.v2.ManyBodyComputer
    return computer.from_manybodyinput(json.loads(text))


def reference(mbin: dict, schema_version: int = 1):
    return upstream(json.dumps(mbin), schema_version)


def properties(result) -> dict:
    props = result.properties
    return props.dict() if hasattr(props, "dict") and not hasattr(props, "model_fields") else props.model_dump()


def assert_same_result(ours, ref) -> None:
    """Same class, same numbers: return_result and every property, same fragments."""
    assert type(ours).__name__ == type(ref).__name__
    assert type(ours).__module__ == type(ref).__module__
    tol = ENERGY_TOL if np.ndim(ref.return_result) == 0 else ARRAY_TOL
    np.testing.assert_allclose(ours.return_result, ref.return_result, atol=tol, rtol=0)
    ours_props, ref_props = properties(ours), properties(ref)
    assert set(ours_props) == set(ref_props)
    for name, value in ref_props.items():
        if value is None or isinstance(value, str):
            assert ours_props[name] == value, name
        else:
            tol = ENERGY_TOL if np.ndim(value) == 0 else ARRAY_TOL
            np.testing.assert_allclose(ours_props[name], value, atol=tol, rtol=0, err_msg=name)
    components = "component_results" if hasattr(ref, "component_results") else "cluster_results"
    assert set(getattr(ours, components)) == set(getattr(ref, components))


@pytest.fixture(scope="module")
def threads_executor():
    with ParslExecutor("threads", max_workers=2, progress=False) as executor:
        yield executor


@pytest.fixture(scope="module")
def local_executor():
    with ParslExecutor("local", max_workers=2, progress=False) as executor:
        yield executor


@pytest.fixture(params=["sequential", "threads", "local"])
def executor(request):
    return None if request.param == "sequential" else request.getfixturevalue(f"{request.param}_executor")


@pytest.mark.parametrize("bsse_type", [["cp"], ["nocp"], ["vmfc"], ["cp", "nocp"]])
def test_energy_matches_upstream(executor, bsse_type):
    mbin = mbe_input(3, bsse_type=bsse_type)
    result = ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
    assert_same_result(result, reference(mbin))


@pytest.mark.parametrize("driver", ["gradient", "hessian"])
def test_derivatives_match_upstream(executor, driver):
    mbin = mbe_input(2, driver=driver, bsse_type=["cp", "nocp"])
    result = ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
    assert_same_result(result, reference(mbin))


def test_multilevel_with_supersystem_matches_upstream(executor):
    specs = {
        "mp2": {"program": "pyscf", "driver": "energy", "model": {"method": "mp2", "basis": "sto-3g"}},
        "hf": {"program": "pyscf", "driver": "energy", "model": {"method": "hf", "basis": "sto-3g"}},
        "ss": {"program": "pyscf", "driver": "energy", "model": {"method": "hf", "basis": "6-31g"}},
    }
    mbin = mbe_input(3, bsse_type=["nocp"], levels={1: "mp2", 2: "hf", "supersystem": "ss"}, specifications=specs)
    result = ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
    assert_same_result(result, reference(mbin))


@pytest.mark.parametrize("driver", ["energy", "gradient"])
def test_schema_v2_matches_upstream(executor, driver):
    mbin = mbe_input(2, driver=driver, bsse_type=["cp", "vmfc"], schema_version=2)
    result = qcmb_parsl.v2.ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
    assert_same_result(result, reference(mbin, schema_version=2))


@pytest.mark.nwchem
def test_nwchem_stock_harness_matches_upstream(local_executor):
    require_nwchem()
    keywords = {"basis__spherical": True, "scf__thresh": 1e-8}
    mbin = mbe_input(2, program="nwchem", basis="6-31g", bsse_type=["cp", "nocp"], keywords=keywords)
    result = ManyBodyComputer.from_manybodyinput(mbin, executor=local_executor)
    assert_same_result(result, reference(mbin))


def test_provenance_of_fragments_and_run(local_executor):
    mbin = mbe_input(2, method="hf", basis="6-31g")
    result = ManyBodyComputer.from_manybodyinput(mbin, executor=local_executor)
    run = result.extras["qcmb_parsl"]
    assert run["executor"] == "local"
    assert run["n_tasks"] == len(result.component_results) == 3
    assert run["n_executed"] + run["n_cached"] == run["n_tasks"]
    assert run["wall_time"] > 0
    for component in result.component_results.values():
        prov = component.extras["qcmb_parsl"]
        assert prov["executor"] == "local"
        assert prov["hostname"] and prov["pid"] != os.getpid()
        assert prov["wall_time"] > 0 and prov["attempts"] >= 1


def test_low_level_plan_and_execute(threads_executor):
    mbin = mbe_input(2, bsse_type=["cp"])
    computer = ManyBodyComputer.from_manybodyinput(mbin, build_tasks=False)
    tasks = plan_tasks(computer.qcmb_core, specifications_from_input(computer), schema_version=1)
    assert {t.label for t in tasks} == {label for _, label, _ in computer.qcmb_core.iterate_molecules()}
    assert all(t.cost > 0 for t in tasks)
    calls = []
    results = threads_executor.execute(tasks, progress_callback=lambda *args: calls.append(args))
    assert set(results) == {t.label for t in tasks}
    assert all(r.success and r.result["properties"]["return_energy"] < 0 for r in results.values())
    assert [c[1] for c in calls] == list(range(1, len(tasks) + 1)) and {c[2] for c in calls} == {len(tasks)}


def _parsl_processes() -> list[psutil.Process]:
    return session_processes("interchange.py") + session_processes("process_worker_pool")


def test_context_manager_serves_runs_and_leaves_no_process():
    before = {p.pid for p in _parsl_processes()}
    mbin = mbe_input(2)
    with ParslExecutor("local", max_workers=2, progress=False, cache=False) as executor:
        first = ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
        second = ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
        assert {p.pid for p in _parsl_processes()} - before, "workers should run inside the context"
    assert first.return_result == pytest.approx(second.return_result, abs=ENERGY_TOL)
    psutil.wait_procs([p for p in _parsl_processes() if p.pid not in before], timeout=30)
    assert not {p.pid for p in _parsl_processes()} - before


def test_config_files_and_config_objects_load():
    mbin = mbe_input(2)
    ref = reference(mbin)
    for source in (ROOT / "parsl_configs" / "threads.py", ROOT / "parsl_configs" / "local.py"):
        with ParslExecutor(str(source), max_workers=2, progress=False) as executor:
            assert_same_result(ManyBodyComputer.from_manybodyinput(mbin, executor=executor), ref)
    config = Config(executors=[ThreadPoolExecutor(label="mine", max_threads=2)])
    with ParslExecutor(config, progress=False) as executor:
        assert executor.label == "config"
        assert_same_result(ManyBodyComputer.from_manybodyinput(mbin, executor=executor), ref)


def test_shortcuts_parallel_and_executor_config(tmp_path):
    mbin = mbe_input(2)
    ref = reference(mbin)
    assert_same_result(ManyBodyComputer.from_manybodyinput(mbin, parallel=True, n_workers=2), ref)
    settings = ExecutorConfig(n_workers=2, checkpoint_file=str(tmp_path / "run.chk"), log_level="INFO")
    with pytest.warns(FutureWarning, match="checkpoint_file is replaced by the fragment cache"):
        result = ManyBodyComputer.from_manybodyinput(mbin, executor_config=settings)
    assert_same_result(result, ref)
    assert result.extras["qcmb_parsl"]["cache_dir"] == str(tmp_path / "run.qcmb-cache")


def test_executor_without_context_starts_and_stops_itself():
    executor = ParslExecutor("threads", max_workers=2, progress=False)
    mbin = mbe_input(2)
    assert_same_result(ManyBodyComputer.from_manybodyinput(mbin, executor=executor), reference(mbin))
    assert executor.dfk is None


# -- bad input: one clear line, before anything is submitted -------------------------------------


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.mark.fast
def test_unknown_preset():
    with pytest.raises(ConfigurationError) as excinfo:
        ParslExecutor("nonesuch")
    assert "unknown preset 'nonesuch'" in _one_line(excinfo) and "local" in str(excinfo.value)


@pytest.mark.fast
def test_unknown_preset_option():
    with pytest.raises(ConfigurationError) as excinfo:
        ParslExecutor("local", partitionn="debug")
    assert "partitionn" in _one_line(excinfo)


@pytest.mark.fast
@pytest.mark.parametrize("workers", [0, -2])
def test_bad_worker_count(workers):
    with pytest.raises(ConfigurationError) as excinfo:
        ParslExecutor("local", max_workers=workers)
    assert "max_workers" in _one_line(excinfo)
    with pytest.raises(ConfigurationError):
        ManyBodyComputer.from_manybodyinput(mbe_input(2), parallel=True, n_workers=workers)


@pytest.mark.fast
def test_config_file_problems(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist") as excinfo:
        ParslExecutor(str(tmp_path / "missing.py"))
    _one_line(excinfo)
    empty = tmp_path / "empty.py"
    empty.write_text("from parsl.config import Config\n")
    with pytest.raises(ConfigurationError, match="defines no `config`") as excinfo:
        ParslExecutor(str(empty))
    _one_line(excinfo)
    raising = tmp_path / "raising.py"
    raising.write_text("raise RuntimeError('site not configured')\n")
    with pytest.raises(ConfigurationError, match="RuntimeError: site not configured") as excinfo:
        ParslExecutor(str(raising))
    _one_line(excinfo)


@pytest.mark.fast
def test_unknown_program_names_available_ones():
    with pytest.raises(InputError) as excinfo:
        ManyBodyComputer.from_manybodyinput(mbe_input(2, program="nosuchcode"))
    message = _one_line(excinfo)
    assert "unknown program 'nosuchcode'" in message and "pyscf" in message


@pytest.mark.fast
def test_program_not_installed():
    with pytest.raises(InputError) as excinfo:
        ManyBodyComputer.from_manybodyinput(mbe_input(2, program="mrchem"))
    assert "'mrchem' is not installed" in _one_line(excinfo)


@pytest.mark.fast
@pytest.mark.parametrize("max_nbody", [0, 4, -1])
def test_max_nbody_out_of_range(max_nbody):
    with pytest.raises(InputError) as excinfo:
        ManyBodyComputer.from_manybodyinput(mbe_input(3, max_nbody=max_nbody), executor=None)
    assert "max_nbody" in _one_line(excinfo)


@pytest.mark.fast
def test_v2_is_reachable_after_importing_the_package():
    """As ``import qcmanybody`` exposes ``qcmanybody.v2``: a fresh interpreter, one import."""
    code = "import qcmb_parsl; print(qcmb_parsl.v2.ManyBodyComputer.schema_version)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "2"
