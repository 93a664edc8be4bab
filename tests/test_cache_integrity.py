"""Cache keys from what the engine sees (issue 13): harness identity and release in the key, keywords
keyed the way the harness reads them, keyword names that differ only in case refused before submission.

Real PySCF (the project's harness) through QCEngine, real NWChem where installed, the command line in
a subprocess.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import qcengine
import qcmanybody
from components import require_nwchem
from molecules import mbe_input

from qcmb_parsl import InputError, ManyBodyComputer, SequentialExecutor
from qcmb_parsl.cache import FragmentCache, fragment_key
from qcmb_parsl.engines import programs

ENERGY_TOL = 1e-9
NOBODY = 65534

WATER = {
    "symbols": ["O", "H", "H"],
    "geometry": [0.0, 0.0, -0.1294, 0.0, -1.4941, 1.0274, 0.0, 1.4941, 1.0274],
    "fragments": [[0, 1, 2]],
    "fragment_charges": [0.0],
    "fragment_multiplicities": [1],
}


def water(
    driver: str = "energy",
    keywords: dict | None = None,
    *,
    schema: int = 2,
    shift: float = 0.0,
    basis: str = "sto-3g",
) -> dict:
    """HF water as a QCSchema AtomicInput; ``shift`` moves the first H along z (Bohr)."""
    molecule = copy.deepcopy(WATER)
    molecule["geometry"][5] += shift
    spec = {"driver": driver, "model": {"method": "hf", "basis": basis}, "keywords": keywords or {}}
    return {"molecule": molecule, **spec} if schema == 1 else {"molecule": molecule, "specification": spec}


def compute(atomic_input: dict, program: str = "pyscf") -> dict:
    return qcengine.compute(atomic_input, program, raise_error=True, return_dict=True)


def put(cache: FragmentCache, atomic_input: dict, result: dict, identity: str = "2.14 (harness test)") -> str:
    key = fragment_key("pyscf", identity, atomic_input)
    cache.put(
        key,
        program="pyscf",
        program_version=identity,
        atomic_input=atomic_input,
        result_json=json.dumps(result),
        wall_time=0.5,
        provenance={},
    )
    return key


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qcmb_parsl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("qcmb-parsl: error: "), proc.stderr
    return lines[0]


def edit_record(directory: Path, key: str, change) -> None:
    """Rewrite the stored record of ``key`` with SQLite, as any SQLite client can."""
    with sqlite3.connect(directory / "cache.db") as db:
        ((value,),) = db.execute("SELECT value FROM Cache WHERE key = ?", (key,)).fetchall()
        record = json.loads(value)
        change(record)
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (json.dumps(record), key))
    db.close()


def edit_result(directory: Path, key: str, change) -> None:
    def change_result(record: dict) -> None:
        result = json.loads(record["result_json"])
        change(result)
        record["result_json"] = json.dumps(result)

    edit_record(directory, key, change_result)


def swap_values(directory: Path, first: str, second: str) -> None:
    """Swap two rows' stored values."""
    with sqlite3.connect(directory / "cache.db") as db:
        values = dict(
            db.execute("SELECT key, value FROM Cache WHERE key IN (?, ?)", (first, second)).fetchall()
        )
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (values[second], first))
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (values[first], second))
    db.close()


def run_sequential(mbin: dict, cache_dir: Path):
    executor = SequentialExecutor(cache=cache_dir)
    try:
        return ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
    finally:
        executor.close()


def counts(result) -> tuple[int, int, int]:
    run = result.extras["qcmb_parsl"]
    return run["n_tasks"], run["n_cached"], run["n_executed"]


def upstream(mbin: dict):
    """Upstream QCManyBody's serial computer on the same engine: the numbers to equal."""
    return qcmanybody.ManyBodyComputer.from_manybodyinput(copy.deepcopy(mbin))


@pytest.fixture
def fresh_identity():
    """Program identities are read once per process; a test that changes one starts and ends fresh."""
    programs.program_identity.cache_clear()
    yield
    programs.program_identity.cache_clear()


# ---------------------------------------------------------------- keys from what the engine sees


def test_pyscf_keywords_are_keyed_as_the_harness_reads_them():
    def key(keywords: dict) -> str:
        return fragment_key("pyscf", "2.14", water(keywords=keywords))

    plain = key({})
    assert (
        key({"CONV_TOL": 1e-10})
        == key({"conv_tol": 1e-10, "Max_Cycle": 100})
        == key({"cartesian": False})
        == plain
    )
    assert key({"CARTESIAN": True}) == key({"cartesian": True}) != plain
    assert key({"max_cycle": 50}) != plain and key({"conv_tol": 1}) == key({"conv_tol": 1.0})
    assert key({"cartesian": 0}) != plain, "the harness refuses 0 for a bool: never the default's key"
    duplicates = {key({"cartesian": False, "CARTESIAN": True}), key({"CARTESIAN": True, "cartesian": False})}
    assert duplicates.isdisjoint({plain, key({"cartesian": True})})
    # what the keys claim, in numbers: explicit defaults are the same calculation
    plain_energy = compute(water())["return_result"]
    assert compute(water(keywords={"CONV_TOL": 1e-10, "Max_Cycle": 100}))["return_result"] == plain_energy
    assert plain_energy == pytest.approx(-74.964665674, abs=1e-8)


def test_nwchem_keywords_fold_case_and_nothing_else():
    def key(program: str, keywords: dict) -> str:
        return fragment_key(program, "7.2", water(keywords=keywords))

    # QCEngine's NWChem harness lowercases names (last spelling wins); it knows no defaults of NWChem's
    assert key("nwchem", {"SCF__THRESH": 1e-8}) == key("nwchem", {"scf__thresh": 1e-8}) != key("nwchem", {})
    assert key("nwchem", {"basis__spherical": True}) != key("nwchem", {"basis__spherical": False})
    # a harness with no rule (Psi4's): names as given
    assert key("psi4", {"SCF_TYPE": "pk"}) != key("psi4", {"scf_type": "pk"})


@pytest.mark.nwchem
def test_nwchem_harness_reads_either_case_alike():
    """The rule above read from QCEngine's code, checked in numbers: cc-pVDZ has d functions, so
    spherical and cartesian differ, and the upper-case name is read as the lower-case one."""
    require_nwchem()

    def energy(program: str, keywords: dict) -> float:
        return compute(water(keywords=keywords, basis="cc-pvdz"), program)["return_result"]

    lower, upper = energy("nwchem", {"basis__spherical": True}), energy("nwchem", {"BASIS__SPHERICAL": True})
    assert upper == pytest.approx(lower, abs=1e-10)
    assert abs(energy("nwchem", {}) - lower) > 1e-4, "cartesian d functions change the energy"
    assert lower == pytest.approx(energy("pyscf", {}), abs=1e-6), "PySCF is spherical by default"


@pytest.mark.parametrize("order", [["cartesian", "CARTESIAN"], ["CARTESIAN", "cartesian"]])
def test_case_duplicate_keywords_are_an_input_error_before_submission(tmp_path, order):
    keywords = dict(zip(order, [False, True], strict=True))
    with pytest.raises(InputError) as info:
        ManyBodyComputer.from_manybodyinput(mbe_input(2, keywords=keywords))
    message = str(info.value)
    assert "\n" not in message and f"'{order[0]}' and '{order[1]}' differ only in case" in message

    (tmp_path / "dup.json").write_text(json.dumps(mbe_input(2, keywords=keywords)))
    proc = cli("run", "dup.json", "--preset", "threads", "--cache-dir", "cache", cwd=tmp_path)
    assert proc.returncode == 2
    assert "'cartesian'" in one_line_error(proc) and "'CARTESIAN'" in proc.stderr
    assert len(FragmentCache(tmp_path / "cache")) == 0 and not (tmp_path / "dup.result.json").exists()


def test_pyscf_harness_refuses_case_duplicates_itself():
    result = qcengine.compute(
        water(keywords={"cartesian": False, "CARTESIAN": True}), "pyscf", return_dict=True
    )
    assert result["success"] is False and result["error"]["error_type"] == "input_error"
    assert "'cartesian' and 'CARTESIAN' differ only in case" in result["error"]["error_message"]


def test_program_identity_names_the_harness_and_its_release(fresh_identity):
    import pyscf

    ours = importlib.metadata.version("qcmb_parsl")
    versions = programs.program_versions(["pyscf"])
    assert versions == {"pyscf": f"{pyscf.__version__} (harness qcmb_parsl {ours} PySCFHarness)"}
    nwchem = programs.harness_identity(qcengine.get_program("nwchem", check=False))
    assert nwchem == f"qcengine {importlib.metadata.version('qcengine')} NWChemHarness"


def test_a_new_harness_release_misses_results_of_the_old_one(tmp_path, monkeypatch, fresh_identity):
    """A release of this package may change a harness default (frozen core, grids, thresholds): it
    must compute again, not serve the old numbers. Simulated by the harness version in the key."""
    mbin = mbe_input(2, bsse_type=["cp"])
    first = run_sequential(mbin, tmp_path)
    n_tasks = counts(first)[0]
    assert counts(run_sequential(mbin, tmp_path)) == (n_tasks, n_tasks, 0)

    release = programs.harness_identity
    monkeypatch.setattr(
        programs,
        "harness_identity",
        lambda harness: release(harness).replace(" PySCFHarness", ".post1 PySCFHarness"),
    )
    programs.program_identity.cache_clear()
    assert ".post1 PySCFHarness" in programs.program_versions(["pyscf"])["pyscf"]
    again = run_sequential(mbin, tmp_path)
    assert counts(again) == (n_tasks, 0, n_tasks)
    assert counts(run_sequential(mbin, tmp_path)) == (n_tasks, n_tasks, 0)
    assert again.return_result == pytest.approx(upstream(mbin).return_result, abs=ENERGY_TOL)
