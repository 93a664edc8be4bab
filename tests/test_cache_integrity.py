"""A cache that never serves a wrong number (issue 13): keys from what the engine sees, verified hits,
``cache verify``, a private directory unless a group cache is asked for, a damaged database.

Real PySCF (the project's harness) through QCEngine, real NWChem where installed, a real diskcache in
temporary directories edited as a user (or an accident) would: with SQLite, ``os.chmod`` and
``os.chown``, and the command line in a subprocess.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import json
import logging
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import diskcache
import numpy as np
import pytest
import qcengine
import qcmanybody
from components import require_nwchem
from molecules import mbe_input

from qcmb_parsl import ConfigurationError, InputError, ManyBodyComputer, SequentialExecutor
from qcmb_parsl.cache import FragmentCache, fragment_key
from qcmb_parsl.engines import programs
from qcmb_parsl.errors import CacheError

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


def rewrite(directory: Path, key: str, header=None, result=None, *, forge_digest: bool = True) -> None:
    """Rewrite the stored record of ``key`` with SQLite, as any SQLite client can: ``header`` changes
    its first line (a JSON object), ``result`` the AtomicResult JSON after it. With ``forge_digest`` the
    header's digest of the result text is made to fit the new text first, as a forger would, so that the
    checks behind it are what a rewritten result meets."""
    with sqlite3.connect(directory / "cache.db") as db:
        ((value,),) = db.execute("SELECT value FROM Cache WHERE key = ?", (key,)).fetchall()
        head, text = (json.loads(part) for part in value.split("\n", 1))
        if result is not None:
            result(text)
        text = json.dumps(text)
        if forge_digest:
            head["result_sha256"] = hashlib.sha256(text.encode()).hexdigest()
        if header is not None:
            header(head)
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (json.dumps(head) + "\n" + text, key))
    db.close()


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
def test_nwchem_harness_reads_either_case_alike(tmp_path, monkeypatch):
    """The rule above read from QCEngine's code, checked in numbers: cc-pVDZ has d functions, so
    spherical and cartesian differ, and the upper-case name is read as the lower-case one."""
    require_nwchem()
    # Open MPI's session directory in /tmp is shared with every other NWChem run on the machine
    monkeypatch.setenv("TMPDIR", str(tmp_path))

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


# ------------------------------------------------------------------------------------ verified hits


def test_swapped_records_are_recomputed_and_the_numbers_are_upstreams(tmp_path, caplog):
    """Two pairs of records swapped in the SQLite file: a 3-atom monomer and the 6-atom dimer, and
    the two monomers in the dimer's basis (same atoms, other ghosts). None of the four is served."""
    mbin = mbe_input(2, bsse_type=["cp", "nocp"])
    first = run_sequential(mbin, tmp_path)
    assert counts(first) == (5, 0, 5)
    with FragmentCache(tmp_path) as cache:
        entries = {(e.natom, e.nreal): [] for e in cache.entries()}
        for entry in sorted(cache.entries(), key=lambda e: e.key):
            entries[(entry.natom, entry.nreal)].append(entry.key)
    (monomer, _), (dimer,), (ghosted_1, ghosted_2) = entries[(3, 3)], entries[(6, 6)], entries[(6, 3)]
    swap_values(tmp_path, monomer, dimer)
    swap_values(tmp_path, ghosted_1, ghosted_2)

    with caplog.at_level(logging.WARNING, logger="qcmb_parsl.cache"):
        second = run_sequential(mbin, tmp_path)
    assert counts(second) == (5, 1, 4)
    for key in (monomer, dimer, ghosted_1, ghosted_2):
        assert f"fragment cache entry {key[:16]} is not used" in caplog.text
    assert "stored for key" in caplog.text
    reference = upstream(mbin)
    assert second.return_result == pytest.approx(reference.return_result, abs=ENERGY_TOL)
    assert second.return_result == pytest.approx(first.return_result, abs=1e-12)
    for name in ("cp_corrected_interaction_energy", "nocp_corrected_interaction_energy"):
        assert getattr(second.properties, name) == pytest.approx(
            getattr(reference.properties, name), abs=ENERGY_TOL
        )
    # the entries were overwritten with their own results: all hits now
    assert counts(run_sequential(mbin, tmp_path)) == (5, 5, 0)


def test_a_record_for_another_geometry_is_not_served(tmp_path, caplog):
    """Key, atoms and ghosts all fit; only the request digest tells the geometries apart."""
    near, far = water(), water(shift=0.2)
    with FragmentCache(tmp_path / "c") as cache:
        key_near, key_far = put(cache, near, compute(near)), put(cache, far, compute(far))

        def claim(record: dict) -> None:  # the far record, relabelled as the near one
            record["key"] = key_near

        rewrite(cache.directory, key_far, header=claim)
        swap_values(cache.directory, key_near, key_far)
        with caplog.at_level(logging.WARNING, logger="qcmb_parsl.cache"):
            found = cache.get_many({key_near: near, key_far: far})
    assert found == {}
    assert "request digest differs" in caplog.text and "stored for key" in caplog.text


def swap_result_texts(directory: Path, first: str, second: str) -> None:
    """Swap the AtomicResult text (the part after the header line) of two rows, keeping their headers."""
    with sqlite3.connect(directory / "cache.db") as db:
        values = dict(
            db.execute("SELECT key, value FROM Cache WHERE key IN (?, ?)", (first, second)).fetchall()
        )
        (head_1, text_1), (head_2, text_2) = (values[key].split("\n", 1) for key in (first, second))
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (f"{head_1}\n{text_2}", first))
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (f"{head_2}\n{text_1}", second))
    db.close()


def monomer_keys(directory: Path) -> list[str]:
    """Keys of the two monomers in their own basis (3 atoms, no ghosts), in key order."""
    with FragmentCache(directory) as cache:
        return sorted(e.key for e in cache.entries() if (e.natom, e.nreal) == (3, 3))


def test_an_edited_energy_is_refused_on_hit_and_dropped_by_verify(tmp_path, caplog):
    """0.01 Eh added to properties.return_energy (what QCManyBody reads) of a stored monomer: the record's
    text no longer has the digest its header holds."""
    mbin = mbe_input(2, bsse_type=["nocp"])
    first = run_sequential(mbin, tmp_path)
    monomer = monomer_keys(tmp_path)[0]
    rewrite(tmp_path, monomer, result=lambda r: r["properties"].__setitem__(
        "return_energy", r["properties"]["return_energy"] + 0.01), forge_digest=False)
    with caplog.at_level(logging.WARNING, logger="qcmb_parsl.cache"):
        second = run_sequential(mbin, tmp_path)
    assert counts(second) == (3, 2, 1)
    assert f"fragment cache entry {monomer[:16]} is not used (its result text is not the one stored" in caplog.text
    assert second.return_result == pytest.approx(first.return_result, abs=1e-12)

    rewrite(tmp_path, monomer, result=lambda r: r["properties"].__setitem__("return_energy", 0.0),
            forge_digest=False)
    with FragmentCache(tmp_path) as cache:
        assert (cache.verify().dropped, len(cache)) == (1, 2)


def test_swapped_monomer_results_under_their_own_headers_are_refused(tmp_path, caplog):
    """The AtomicResult texts of the two no-CP monomers swapped, each header kept: same atoms, same ghosts,
    same model; only the text digest and the result's own geometry tell them apart. A gradient, where a
    swap moves the numbers most."""
    mbin = mbe_input(2, bsse_type=["nocp"], driver="gradient")
    first = run_sequential(mbin, tmp_path)
    monomers = monomer_keys(tmp_path)
    swap_result_texts(tmp_path, *monomers)
    with caplog.at_level(logging.WARNING, logger="qcmb_parsl.cache"):
        second = run_sequential(mbin, tmp_path)
    assert counts(second) == (3, 1, 2)
    for key in monomers:
        assert f"fragment cache entry {key[:16]} is not used" in caplog.text
    np.testing.assert_allclose(second.return_result, upstream(mbin).return_result, atol=1e-8, rtol=0)
    np.testing.assert_allclose(second.return_result, first.return_result, atol=1e-12, rtol=0)

    swap_result_texts(tmp_path, *monomers)
    with FragmentCache(tmp_path) as cache:
        outcome = cache.verify()
        assert (outcome.checked, outcome.dropped, len(cache)) == (3, 2, 1)


def test_a_result_whose_own_molecule_is_elsewhere_is_a_miss_even_with_a_fresh_digest(tmp_path, caplog):
    """Whoever rewrites a record whole can give its text a digest that fits: the result's own geometry
    must still be the request's."""
    near, far = water(), water(shift=0.2)
    with FragmentCache(tmp_path / "c") as cache:
        key = put(cache, near, compute(near))
        far_result = compute(far)
        rewrite(cache.directory, key, result=lambda r: r.update(far_result))
        with caplog.at_level(logging.WARNING, logger="qcmb_parsl.cache"):
            assert cache.get_many({key: near}) == {}
    assert "the result's geometry is not the request's" in caplog.text


@pytest.mark.parametrize(
    ("driver", "change", "reason"),
    [
        ("gradient", lambda r: r["return_result"].__delitem__(slice(-3, None)), "is not of shape (3, 3)"),
        ("gradient", lambda r: r["return_result"].__setitem__(4, float("nan")), "not finite"),
        (
            "hessian",
            lambda r: r.__setitem__("return_result", r["return_result"][:-9]),
            "is not of shape (9, 9)",
        ),
        ("energy", lambda r: r.__setitem__("return_result", "-74.97"), "is not a finite energy"),
        (
            "energy",
            lambda r: r["input_data"]["specification"].__setitem__("driver", "gradient"),
            "driver is gradient",
        ),
        ("energy", lambda r: r["molecule"].__setitem__("real", [True, False, False]), "ghost atoms"),
        ("energy", lambda r: r.__setitem__("success", False), "not a successful result"),
    ],
    ids=["short-gradient", "nan-gradient", "short-hessian", "text-energy", "driver", "ghosts", "failed"],
)
def test_a_stored_result_that_does_not_fit_its_request_is_a_miss(tmp_path, caplog, driver, change, reason):
    atomic_input = water(driver)
    result = compute(atomic_input)
    with FragmentCache(tmp_path / "c") as cache:
        key = put(cache, atomic_input, result)
        assert json.loads(cache.get_many({key: atomic_input})[key].result_json) == result
        rewrite(cache.directory, key, result=change)
        with caplog.at_level(logging.WARNING, logger="qcmb_parsl.cache"):
            assert cache.get_many({key: atomic_input}) == {}
        assert key not in cache
    assert reason in caplog.text and key[:16] in caplog.text


def test_put_refuses_a_result_of_another_request(tmp_path):
    dimer = {"molecule": mbe_input(2)["molecule"], "specification": water()["specification"]}
    gradient = compute(water("gradient"))
    with FragmentCache(tmp_path / "c") as cache:
        with pytest.raises(ValueError, match="the result has 6 atoms, the request 3"):
            put(cache, water(), compute(dimer))
        with pytest.raises(ValueError, match="the result's driver is gradient, the request's energy"):
            put(cache, water(), gradient)
        assert len(cache) == 0


def test_v1_and_v2_requests_share_hits(tmp_path):
    with FragmentCache(tmp_path / "c") as cache:
        key = put(cache, water(schema=1), compute(water(schema=1)))
        assert fragment_key("pyscf", "2.14 (harness test)", water(schema=2)) == key
        assert set(cache.get_many({key: water(schema=2)})) == {key}


# ---------------------------------------------------------------------------------- cache verify


def fill_and_damage(directory: Path) -> dict[str, dict]:
    """Six good entries, then four damaged ones and two rows stock diskcache wrote; key -> request."""
    requests = {}
    with FragmentCache(directory) as cache:
        for driver in ("energy", "gradient"):
            for shift in (0.0, 0.1, 0.2):
                atomic_input = water(driver, shift=shift, schema=1 if shift == 0.2 else 2)
                requests[put(cache, atomic_input, compute(atomic_input))] = atomic_input
    keys = list(requests)
    with sqlite3.connect(directory / "cache.db") as db:
        db.execute('UPDATE Cache SET value = \'{"result_json": "trunc\' WHERE key = ?', (keys[0],))
    db.close()
    swap_values(directory, keys[1], keys[2])  # two energies, other geometries: swapped keys
    rewrite(directory, keys[3], header=lambda r: r["request"].__setitem__("symbols", ["O", "O", "H"]))
    rewrite(directory, keys[4], result=lambda r: r["properties"].__setitem__("calcinfo_nbasis", "seven"))
    with diskcache.Cache(str(directory)) as stock:
        stock.set("f" * 64, {"a": "pickle"})
        stock.set(("a", "tuple"), "key")
    return requests


def test_verify_checks_every_entry_and_drops_the_bad_ones(tmp_path, caplog):
    directory = tmp_path / "c"
    requests = fill_and_damage(directory)
    keys = list(requests)
    with FragmentCache(directory) as cache, caplog.at_level(logging.WARNING, logger="qcmb_parsl.cache"):
        outcome = cache.verify()
        assert (outcome.directory, outcome.checked, outcome.dropped) == (directory, 8, 7)
        assert "not a valid AtomicResult: properties.calcinfo_nbasis" in caplog.text
        assert "request digest does not match its request summary" in caplog.text
        assert "not written by qcmb_parsl" in caplog.text
        assert [(e.key, e.natom, e.driver) for e in cache.entries()] == [(keys[5], 3, "gradient")]
        assert set(cache.get_many(requests)) == {keys[5]}
        assert cache.verify().dropped == 0 and len(cache) == 1


def test_cli_cache_verify(tmp_path):
    directory = tmp_path / "c"
    fill_and_damage(directory)
    proc = cli("cache", "verify", "--cache-dir", str(directory), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"checked 8 entries in {directory}: dropped 7"
    assert proc.stderr.count("is dropped") == 7
    proc = cli("cache", "verify", "--cache-dir", str(directory), cwd=tmp_path)
    assert (proc.returncode, proc.stdout.strip()) == (0, f"checked 1 entries in {directory}: dropped 0")


# ------------------------------------------------------------------------------- a private cache


@pytest.fixture
def made_cache(tmp_path) -> Path:
    """A private cache holding one large entry (so that it has value files and their directories)."""
    directory = tmp_path / "c"
    atomic_input = water()
    result = compute(atomic_input)
    result["stdout"] = "x" * 100_000
    with FragmentCache(directory) as cache:
        put(cache, atomic_input, result)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in directory.rglob("*") if p.is_file()} == {0o600}
    return directory


def value_file(directory: Path) -> Path:
    (path,) = directory.rglob("*.val")
    return path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda d: os.chmod(d, 0o777),
            "directory {d} is writable by group and others (mode 777): run chmod 700 {d}",
        ),
        (
            lambda d: os.chmod(d, 0o770),
            "directory {d} is writable by its group (mode 770): run chmod 700 {d}",
        ),
        (lambda d: os.chmod(d / "cache.db", 0o666), "file {d}/cache.db is writable by group and others"),
        (
            lambda d: os.chmod(value_file(d).parent, 0o777),
            "is writable by group and others (mode 777): run chmod -R go-w {d}",
        ),
        (lambda d: os.chown(d, NOBODY, NOBODY), "directory {d} belongs to nobody (uid 65534), not to you"),
        (
            lambda d: os.chown(d / "cache.db", NOBODY, NOBODY),
            "file {d}/cache.db belongs to nobody (uid 65534)",
        ),
        (lambda d: os.chown(value_file(d), NOBODY, NOBODY), "belongs to nobody (uid 65534), not to you"),
        (lambda d: (d / "planted").symlink_to("/tmp"), "holds a symbolic link, {d}/planted"),
    ],
    ids=["dir-777", "dir-770", "db-666", "value-dir-777", "dir-owner", "db-owner", "value-owner", "symlink"],
)
def test_an_unsafe_cache_is_refused_before_it_is_opened(made_cache, damage, message):
    damage(made_cache)
    with pytest.raises(CacheError) as info:
        FragmentCache(made_cache)
    text = str(info.value)
    assert "\n" not in text and message.format(d=made_cache) in text


def test_cli_refuses_an_unsafe_cache_with_exit_2(made_cache, tmp_path):
    os.chmod(made_cache, 0o777)
    proc = cli("cache", "stats", "--cache-dir", str(made_cache), cwd=tmp_path)
    assert proc.returncode == 2
    assert f"chmod 700 {made_cache}" in one_line_error(proc)
    os.chmod(made_cache, 0o755)  # readable by others is not writable by them
    proc = cli("cache", "stats", "--cache-dir", str(made_cache), cwd=tmp_path)
    assert proc.returncode == 0 and "entries:   1" in proc.stdout


def test_a_group_cache_is_an_explicit_choice(tmp_path, monkeypatch):
    directory = tmp_path / "group"
    atomic_input = water()
    result = compute(atomic_input)
    result["stdout"] = "x" * 100_000
    with FragmentCache(directory, shared_group=True) as cache:
        key = put(cache, atomic_input, result)
        assert repr(cache).endswith("shared_group=True)")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o2770
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o660}
    assert {stat.S_IMODE(p.stat().st_mode) for p in directory.rglob("*") if p.is_dir()} == {0o2770}

    with pytest.raises(
        CacheError, match="writable by its group .* shared_group=True or QCMB_PARSL_CACHE_SHARED_GROUP=1"
    ):
        FragmentCache(directory)  # the same directory, opened as a private cache
    monkeypatch.setenv("QCMB_PARSL_CACHE_SHARED_GROUP", "1")
    with FragmentCache(directory) as cache:
        assert cache.shared_group and set(cache.get_many({key: atomic_input})) == {key}

    os.chmod(value_file(directory), 0o662)
    with pytest.raises(CacheError, match=r"is writable by others \(mode 662\): run chmod -R o-rwx"):
        FragmentCache(directory)
    os.chmod(value_file(directory), 0o660)
    os.chown(value_file(directory), NOBODY, directory.stat().st_gid)
    with pytest.raises(CacheError, match=r"belongs to nobody \(uid 65534\), who is not in its group"):
        FragmentCache(directory)
    os.chown(value_file(directory), os.geteuid(), NOBODY)
    with pytest.raises(CacheError, match="is writable by group nogroup, not the cache's group"):
        FragmentCache(directory)
    os.chown(value_file(directory), os.geteuid(), directory.stat().st_gid)
    os.chown(directory, NOBODY, directory.stat().st_gid)
    os.chmod(directory, 0o770)  # not ours, so not made setgid for us
    with pytest.raises(CacheError, match=f"directory {directory} is not setgid"):
        FragmentCache(directory)

    monkeypatch.setenv("QCMB_PARSL_CACHE_SHARED_GROUP", "maybe")
    with pytest.raises(ConfigurationError, match="QCMB_PARSL_CACHE_SHARED_GROUP='maybe' is not a yes or no"):
        FragmentCache(tmp_path / "other")


def test_a_private_cache_becomes_a_group_cache_only_when_asked(made_cache):
    with FragmentCache(made_cache) as cache:
        assert not cache.shared_group and stat.S_IMODE(made_cache.stat().st_mode) == 0o700
    os.chmod(value_file(made_cache), 0o666)  # others could have written it: refused, not repaired
    with pytest.raises(CacheError, match=r"is writable by others \(mode 666\)"):
        FragmentCache(made_cache, shared_group=True)
    os.chmod(value_file(made_cache), 0o600)
    with FragmentCache(made_cache, shared_group=True) as cache:
        assert len(cache) == 1
    modes = {stat.S_IMODE(p.stat().st_mode) for p in [made_cache, *made_cache.rglob("*")]}
    assert modes == {0o2770, 0o660}


# ------------------------------------------------------------------------------ a damaged database


def garble(directory: Path, whole: bool) -> None:
    """Garbage over the whole database, or over the middle half of its pages (the header survives)."""
    database = directory / "cache.db"
    data = database.read_bytes()
    if whole:
        database.write_bytes(os.urandom(len(data)))
    else:
        n = len(data)
        database.write_bytes(data[: n // 4] + os.urandom(n // 2) + data[3 * n // 4 :])


@pytest.fixture
def many_entries(tmp_path) -> tuple[Path, dict[str, dict]]:
    directory = tmp_path / "c"
    atomic_input = water()
    result = compute(atomic_input)
    result["stdout"] = "y" * 5000
    requests = {}
    with FragmentCache(directory) as cache:
        for i in range(200):
            request = water(shift=i * 1e-3)
            requests[put(cache, request, {**result, "molecule": request["molecule"]})] = request
    return directory, requests


@pytest.mark.parametrize("whole", [True, False], ids=["whole-file", "middle-pages"])
def test_a_damaged_database_is_one_line_naming_it_and_the_way_out(many_entries, whole):
    directory, requests = many_entries
    garble(directory, whole)
    with pytest.raises(CacheError) as info, FragmentCache(directory) as cache:
        cache.get_many(requests)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"fragment cache database {directory}/cache.db is damaged (")
    assert f"move the directory {directory} aside or delete it" in message


def test_cli_damaged_database_exits_2(many_entries, tmp_path):
    directory, _ = many_entries
    garble(directory, whole=False)
    for command in (["cache", "verify"], ["cache", "list"]):
        proc = cli(*command, "--cache-dir", str(directory), cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert f"{directory}/cache.db is damaged" in one_line_error(proc)
    garble(directory, whole=True)
    (tmp_path / "dimer.json").write_text(json.dumps(mbe_input(2)))
    proc = cli("run", "dimer.json", "--preset", "threads", "--cache-dir", str(directory), cwd=tmp_path)
    assert proc.returncode == 2
    assert f"move the directory {directory} aside or delete it" in one_line_error(proc)
