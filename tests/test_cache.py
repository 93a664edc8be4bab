"""The fragment-result cache on a real diskcache in real temporary directories."""

from __future__ import annotations

import copy
import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import diskcache
import pytest

from qcmb_parsl.cache import CacheEntryInfo, FragmentCache, default_cache_dir, fragment_key
from qcmb_parsl.errors import CacheError

pytestmark = pytest.mark.fast  # the cache alone, no executor

REPO = Path(__file__).resolve().parents[1]

WATER = {
    "name": "water",
    "symbols": ["O", "H", "H"],
    "geometry": [0.0, 0.0, -0.1294, 0.0, -1.4941, 1.0274, 0.0, 1.4941, 1.0274],
    "real": [True, True, True],
    "fragments": [[0, 1, 2]],
    "fragment_charges": [0.0],
    "fragment_multiplicities": [1],
}
SPEC = {"driver": "energy", "model": {"method": "hf", "basis": "sto-3g"}, "keywords": {}}


def water_input(schema: int = 2, *, shift: float = 0.0, **molecule_changes) -> dict:
    """A water AtomicInput as QCSchema JSON; ``shift`` moves the first H along z (Bohr)."""
    molecule = {**copy.deepcopy(WATER), **molecule_changes}
    molecule["geometry"] = list(molecule["geometry"])
    molecule["geometry"][5] += shift
    spec = copy.deepcopy(SPEC)
    return {"molecule": molecule, **spec} if schema == 1 else {"molecule": molecule, "specification": spec}


@pytest.fixture(scope="module")
def compute():
    """Real AtomicResult JSON of an input, from the project's PySCF harness through QCEngine (memoised)."""
    import qcengine

    from qcmb_parsl.engines.pyscf import register_pyscf_harness

    register_pyscf_harness()
    results: dict[str, str] = {}

    def result_of(atomic_input: dict) -> str:
        text = json.dumps(atomic_input, sort_keys=True)
        if text not in results:
            result = qcengine.compute(atomic_input, "pyscf", raise_error=True, return_dict=True)
            results[text] = json.dumps(result)
        return results[text]

    return result_of


@pytest.fixture(scope="module")
def result_json(compute) -> str:
    """A real HF/STO-3G water AtomicResult (QCSchema v2)."""
    return compute(water_input())


@pytest.fixture
def cache(tmp_path: Path):
    with FragmentCache(tmp_path / "cache") as fragment_cache:
        yield fragment_cache


def put(cache: FragmentCache, result_json: str, atomic_input: dict, program: str = "pyscf") -> str:
    key = fragment_key(program, "2.8", atomic_input)
    cache.put(
        key,
        program=program,
        program_version="2.8",
        atomic_input=atomic_input,
        result_json=result_json,
        wall_time=1.5,
        provenance={"label": "water", "hostname": "node1"},
    )
    return key


# ---------------------------------------------------------------------------------------------- keys


def test_key_ignores_schema_version_noise_layout_and_name():
    key = fragment_key("pyscf", "2.8", water_input(2))
    assert fragment_key("PySCF", "2.8", water_input(1)) == key
    assert fragment_key("pyscf", "2.8", water_input(2, shift=1e-9)) == key
    assert fragment_key("pyscf", "2.8", water_input(2, shift=-1e-9)) == key
    nested = water_input(2)
    nested["molecule"]["geometry"] = [nested["molecule"]["geometry"][i : i + 3] for i in (0, 3, 6)]
    assert fragment_key("pyscf", "2.8", nested) == key
    assert fragment_key("pyscf", "2.8", water_input(2, name="another input, another label")) == key
    provenance_ish = water_input(2)
    provenance_ish["specification"]["extras"] = {"qcmb_label": '["(auto)", [1], [1, 2]]'}
    provenance_ish["specification"]["protocols"] = {"stdout": True, "wavefunction": "none"}
    provenance_ish["molecule"]["symbols"] = ["o", "h", "h"]
    assert fragment_key("pyscf", "2.8", provenance_ish) == key


def test_negative_zero_and_rounding_noise_give_one_key():
    zero = water_input(2)
    negative = water_input(2)
    negative["molecule"]["geometry"][0] = -1e-12
    assert fragment_key("pyscf", None, zero) == fragment_key("pyscf", None, negative)


def _variant(change) -> dict:
    atomic_input = water_input(2)
    change(atomic_input["specification"], atomic_input["molecule"])
    return atomic_input


@pytest.mark.parametrize(
    "change",
    [
        lambda spec, mol: spec["model"].update(basis="cc-pvdz"),
        lambda spec, mol: spec["model"].update(method="b3lyp"),
        lambda spec, mol: spec.update(driver="gradient"),
        lambda spec, mol: spec["keywords"].update(conv_tol=1e-12),
        lambda spec, mol: spec.update(protocols={"wavefunction": "all"}),
        lambda spec, mol: mol.update(real=[True, False, False]),
        lambda spec, mol: mol.update(fragment_charges=[1.0], fragment_multiplicities=[2]),
        lambda spec, mol: mol.update(masses=[15.99491462, 2.01410178, 1.00782503]),
        lambda spec, mol: mol.update(extras={"embedding_charges": [[-0.8, [0.0, 0.0, 5.0]]]}),
        lambda spec, mol: mol["geometry"].__setitem__(5, mol["geometry"][5] + 1e-4),
    ],
    ids=["basis", "method", "driver", "keyword", "protocols", "ghost", "charge", "mass", "embedding", "xyz"],
)
def test_key_changes_with_what_changes_the_result(change):
    assert fragment_key("pyscf", "2.8", _variant(change)) != fragment_key("pyscf", "2.8", water_input(2))


def test_key_changes_with_program_and_version():
    atomic_input = water_input(2)
    versions = [("pyscf", "2.8"), ("pyscf", "2.9"), ("pyscf", None), ("psi4", "2.8")]
    assert len({fragment_key(program, version, atomic_input) for program, version in versions}) == 4


# ------------------------------------------------------------------------------------------- storage


def test_put_then_get_many_in_this_and_another_cache_object(cache, result_json):
    key = put(cache, result_json, water_input())
    missing = fragment_key("pyscf", "2.8", water_input(shift=0.1))
    found = cache.get_many({key: water_input(), missing: water_input(shift=0.1)})
    assert list(found) == [key]
    assert found[key].result_json == result_json
    assert found[key].wall_time == 1.5
    assert found[key].provenance == {"label": "water", "hostname": "node1"}
    assert key in cache and missing not in cache and len(cache) == 1

    with FragmentCache(cache.directory) as other:
        assert other.get_many({key: water_input(1)})[key].result_json == result_json
    assert cache.wall_times([key, missing]) == {key: 1.5}


def test_v1_results_are_stored_too(cache, compute):
    v1_result = compute(water_input(1))
    assert json.loads(v1_result)["schema_name"] == "qcschema_output"
    key = put(cache, v1_result, water_input(1))
    assert cache.get_many({key: water_input(1)})[key].result_json == v1_result
    assert cache.get_many({key: water_input(2)})[key].result_json == v1_result
    assert cache.verify().dropped == 0


@pytest.mark.parametrize(
    "result",
    [
        {"schema_name": "qcschema_failed_operation", "success": False, "error": {"error_type": "random"}},
        {"schema_name": "qcschema_atomic_result", "success": "true", "properties": {}},
        {"schema_name": "qcschema_optimization_result", "success": True, "properties": {}},
    ],
    ids=["failed", "success-not-true", "not-atomic"],
)
def test_put_refuses_anything_but_a_successful_atomic_result(cache, result):
    with pytest.raises(ValueError):
        put(cache, json.dumps(result), water_input())
    assert len(cache) == 0


def test_corrupt_entries_are_misses_and_removed(cache, result_json, caplog):
    good = put(cache, result_json, water_input())
    garbage = fragment_key("pyscf", "2.8", water_input(shift=0.1))
    failed = fragment_key("pyscf", "2.8", water_input(shift=0.2))
    pickled = fragment_key("pyscf", "2.8", water_input(shift=0.3))
    header = json.loads(cache._cache.get(good).partition("\n")[0])  # a valid record's header ...
    failure = json.dumps({"schema_name": "qcschema_atomic_result", "success": False})  # ... and a failure
    with diskcache.Cache(str(cache.directory)) as raw:  # stock diskcache, as another tool might write
        raw.set(garbage, '{"result_json": "truncated')
        raw.set(failed, json.dumps({**header, "key": failed}) + "\n" + failure)
        raw.set(pickled, {"result_json": result_json})  # stock Disk pickles a dict; it must never be loaded
        raw.set(("a", "tuple"), "key")  # and a tuple key

    requests = {
        key: water_input(shift=shift) for key, shift in ((garbage, 0.1), (failed, 0.2), (pickled, 0.3))
    }
    with caplog.at_level(logging.WARNING, logger="qcmb_parsl.cache"):
        found = cache.get_many({good: water_input(), **requests})
    assert list(found) == [good]
    for key in (garbage, failed, pickled):
        assert key not in cache
        assert f"fragment cache entry {key[:16]} is not used" in caplog.text
    assert [info.key for info in cache.entries()] == [good]


def test_stats_entries_invalidate_and_clear(cache, result_json, compute):
    keys = {
        ("pyscf", "hf"): put(cache, compute(water_input(shift=0.1)), water_input(shift=0.1)),
        ("psi4", "hf"): put(cache, compute(water_input(shift=0.2)), water_input(shift=0.2), program="Psi4"),
    }
    b3lyp = water_input(shift=0.3)
    b3lyp["specification"]["model"]["method"] = "B3LYP"
    keys[("pyscf", "b3lyp")] = put(cache, compute(b3lyp), b3lyp)
    ghost = water_input(shift=0.4, real=[True, False, False])
    keys[("psi4", "ghost")] = put(cache, compute(ghost), ghost, program="psi4")

    stats = cache.stats()
    assert stats.directory == cache.directory and stats.entries == 4 and stats.size_bytes > 0
    infos = {info.key: info for info in cache.entries()}
    assert set(infos) == set(keys.values())
    info = infos[keys[("psi4", "ghost")]]
    assert isinstance(info, CacheEntryInfo)
    described = (info.program, info.program_version, info.method, info.basis, info.driver)
    assert described == ("psi4", "2.8", "hf", "sto-3g", "energy")
    assert (info.natom, info.nreal, info.wall_time) == (3, 1, 1.5)
    assert time.time() - 60 < info.created <= time.time()
    assert [i.key for i in cache.entries([keys[("pyscf", "hf")], "absent"])] == [keys[("pyscf", "hf")]]

    assert cache.invalidate(program="PSI4", method="b3lyp") == 0
    assert cache.invalidate(method="b3lyp") == 1
    assert cache.invalidate(program="pyscf", keys=[keys[("psi4", "hf")]]) == 0
    assert cache.invalidate(keys=[keys[("psi4", "hf")], "absent"]) == 1
    assert cache.invalidate(program="psi4") == 1
    requests = {keys[("pyscf", "hf")]: water_input(shift=0.1), keys[("psi4", "hf")]: water_input(shift=0.2)}
    assert set(cache.get_many({**requests, keys[("pyscf", "b3lyp")]: b3lyp})) == {keys[("pyscf", "hf")]}
    put(cache, compute(ghost), ghost)
    assert cache.invalidate() == 2
    put(cache, compute(ghost), ghost)
    assert cache.clear() == 1 and len(cache) == 0


def test_get_many_on_five_thousand_keys_in_one_call(cache, result_json):
    """Hits spread over every chunk of the batched lookup, misses in between."""
    atomic_input = water_input()
    probe = [f"{i:064x}" for i in range(5000)]
    stored = probe[::2]
    for i, key in enumerate(stored):
        cache.put(
            key,
            program="pyscf",
            program_version="2.8",
            atomic_input=atomic_input,
            result_json=result_json,
            wall_time=float(i),
            provenance={},
        )
    requests = dict.fromkeys(probe, atomic_input)
    start = time.perf_counter()
    found = cache.get_many(requests)
    print(f"get_many: {len(probe)} keys, {len(found)} hits in {time.perf_counter() - start:.3f} s")
    assert set(found) == set(stored)
    assert found[stored[2345]].wall_time == 2345.0 and found[stored[-1]].result_json == result_json


# ------------------------------------------------------------------------------- directory and format


def test_directory_created_private_and_existing_one_left_alone(tmp_path):
    with FragmentCache(tmp_path / "a" / "b" / "fragments") as cache:
        assert cache.directory.stat().st_mode & 0o7777 == 0o700
        assert (cache.directory / "cache.db").stat().st_mode & 0o777 == 0o600
    existing = tmp_path / "shared"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    with FragmentCache(existing):
        assert existing.stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("where", ["/dev/null/x", "under-file"])
def test_unusable_directory_is_a_one_line_cache_error(tmp_path, where):
    if where == "under-file":
        (tmp_path / "plain").write_text("not a directory")
        where = str(tmp_path / "plain" / "fragments")
    with pytest.raises(CacheError) as info:
        FragmentCache(where)
    message = str(info.value)
    assert "\n" not in message and where in message and "Not a directory" in message


def test_default_directory_and_its_override(monkeypatch, tmp_path):
    monkeypatch.delenv("QCMB_PARSL_CACHE_DIR", raising=False)
    assert default_cache_dir().parts[-2:] == ("qcmb_parsl", "fragments")
    monkeypatch.setenv("QCMB_PARSL_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
    with FragmentCache() as cache:
        assert cache.directory == tmp_path / "elsewhere" and cache.directory.is_dir()


def test_nothing_stored_is_a_pickle(cache, result_json, compute):
    big = json.loads(compute(water_input(shift=0.1)))
    big["stdout"] = "x" * 100_000  # large values go to files beside the database
    put(cache, result_json, water_input())
    put(cache, json.dumps(big), water_input(shift=0.1))
    cache.entries()

    db = sqlite3.connect(cache.directory / "cache.db")
    rows = db.execute("SELECT key, value, filename FROM Cache").fetchall()
    settings = db.execute("SELECT key, value FROM Settings").fetchall()
    db.close()
    assert len(rows) == 2 and sum(filename is not None for _, _, filename in rows) == 1
    assert all(isinstance(key, str) and len(key) == 64 for key, _, _ in rows)
    assert [json.loads(value.partition("\n")[0])["program"] for _, value, _ in rows if value] == ["pyscf"]
    fields = [field for row in rows + settings for field in row if isinstance(field, (str, bytes))]
    files = [path.read_bytes() for path in cache.directory.rglob("*") if path.is_file()]
    assert len(files) >= 2  # cache.db and the large result's .val file, perhaps WAL files too
    for item in fields + files:
        assert not (item.encode() if isinstance(item, str) else item).startswith(b"\x80")
    with pytest.raises(TypeError):
        cache._cache.set("k", {"a": "dict"})  # the Disk refuses what it would have to pickle


def test_large_result_whose_file_is_gone_is_a_miss(cache, result_json):
    big = json.loads(result_json)
    big["stdout"] = "x" * 100_000
    key = put(cache, json.dumps(big), water_input())
    assert json.loads(cache.get_many({key: water_input()})[key].result_json) == big
    (value_file,) = cache.directory.rglob("*.val")
    assert value_file.stat().st_mode & 0o777 == 0o600 and value_file.parent.stat().st_mode & 0o777 == 0o700
    value_file.unlink()
    assert cache.get_many({key: water_input()}) == {} and key not in cache


# ----------------------------------------------------------------------------------- two processes

WRITER = """
import json, pathlib, sys, time
from qcmb_parsl.cache import FragmentCache, fragment_key
directory, result_file, tag = sys.argv[1:4]
result = json.loads(open(result_file).read())
barrier = pathlib.Path(result_file).parent
(barrier / f"ready-{tag}").touch()
while not (barrier / "go").exists():
    time.sleep(0.001)
water = [0.0, 0.0, -0.1294, 0.0, -1.4941, 1.0274, 0.0, 1.4941, 1.0274]
atomic_input = {"molecule": {"symbols": ["O", "H", "H"], "geometry": list(water)},
                "specification": {"driver": "energy", "model": {"method": "hf", "basis": "sto-3g"}}}
requests = {}
other = str(1 - int(tag))
with FragmentCache(directory) as cache:
    for i in range(200):
        if i == 100:  # halfway, wait for the other writer: both halves of each run interleave
            (barrier / f"half-{tag}").touch()
            deadline = time.monotonic() + 60
            while not (barrier / f"half-{other}").exists() and time.monotonic() < deadline:
                time.sleep(0.001)
        # the water moved along x: another key, the same energy, the result's own molecule moved with it
        moved = [x + int(tag) + i * 1e-3 if k % 3 == 0 else x for k, x in enumerate(water)]
        atomic_input["molecule"]["geometry"] = moved
        result["molecule"]["geometry"] = [moved[k : k + 3] for k in (0, 3, 6)]
        key = fragment_key("pyscf", "2.8", atomic_input)
        cache.put(key, program="pyscf", program_version="2.8", atomic_input=atomic_input,
                  result_json=json.dumps(result), wall_time=float(i), provenance={"writer": tag})
        requests[key] = json.loads(json.dumps(atomic_input))
        assert key in cache.get_many(dict(list(requests.items())[-10:]))
    assert len(cache.get_many(requests)) == 200
print(json.dumps(requests))
"""


def test_two_processes_share_one_cache(tmp_path, result_json):
    directory = tmp_path / "shared"
    result_file = tmp_path / "result.json"
    result_file.write_text(result_json)
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(directory), str(result_file), tag],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("0", "1")
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{tag}").exists() for tag in ("0", "1")) and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()  # both start writing at once
    requests = {}
    for writer in writers:
        stdout, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr
        requests.update(json.loads(stdout))
    keys = list(requests)
    assert len(keys) == 400
    with FragmentCache(directory) as cache:
        found = cache.get_many(requests)
        assert len(found) == 400 and len(cache) == 400
        energy = json.loads(result_json)["return_result"]
        assert all(json.loads(entry.result_json)["return_result"] == energy for entry in found.values())
        assert {entry.provenance["writer"] for entry in found.values()} == {"0", "1"}
        created = [[info.created for info in cache.entries(keys[i : i + 200])] for i in (0, 200)]
    assert max(created[0]) > min(created[1]) and max(created[1]) > min(created[0]), "writers did not overlap"
