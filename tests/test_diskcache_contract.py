"""What the fragment cache relies on in diskcache's internals (``qcmb_parsl/cache/_diskcache.py``).

Each test names one thing a diskcache release could change under us; a failure here means: read that
release's ``diskcache/core.py``, adapt ``_diskcache.py``, and widen the pin in ``pyproject.toml``.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import pickle
import re
from pathlib import Path

import diskcache
import diskcache.core
import pytest
import tomllib

from qcmb_parsl.cache._diskcache import (
    DATABASE_FILES,
    TESTED_RELEASES,
    GroupJSONTextDisk,
    JSONTextDisk,
    delete_rows,
    fetch,
    open_cache,
    quick_check,
    select_rows,
)

ROOT = Path(__file__).resolve().parents[1]
LARGE = "x" * 40_000  # above diskcache's default 32 KiB: stored in a file beside the database


def test_installed_release_is_a_tested_one_and_the_pin_says_so():
    major, minor, *_ = (int(part) for part in diskcache.__version__.split("."))
    assert (major, minor) in TESTED_RELEASES
    assert importlib.metadata.version("diskcache") == diskcache.__version__
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in dependencies if d.startswith("diskcache")]
    low, high = re.fullmatch(r"diskcache>=(\d+\.\d+),<(\d+\.\d+)", pin).groups()
    assert (low, high) == (f"{major}.{minor}", f"{major}.{minor + 1}"), "the pin admits untested releases"


def test_names_and_constants_we_import():
    assert diskcache.core.DBNAME == "cache.db" and DATABASE_FILES[0] == "cache.db"
    assert (diskcache.core.MODE_RAW, diskcache.core.MODE_TEXT, diskcache.core.MODE_PICKLE) == (1, 3, 4)
    assert "none" in diskcache.core.EVICTION_POLICY
    assert isinstance(inspect.getattr_static(diskcache.Cache, "_sql"), property)
    for method, parameters in [
        ("put", ["self", "key"]),
        ("store", ["self", "value", "read", "key"]),
        ("fetch", ["self", "mode", "filename", "value", "read"]),
    ]:
        assert list(inspect.signature(getattr(diskcache.Disk, method)).parameters) == parameters, method
    assert inspect.signature(diskcache.Disk.store).parameters["key"].default is diskcache.core.UNKNOWN


@pytest.fixture
def cache(tmp_path):
    with open_cache(tmp_path, JSONTextDisk) as opened:
        yield opened


def test_table_layout_and_rows(cache, tmp_path):
    columns = [row[1] for row in cache._sql("PRAGMA table_info(Cache)").fetchall()]
    assert {"rowid", "key", "raw", "mode", "filename", "value"} <= set(columns)
    assert cache._sql("SELECT value FROM Settings WHERE key = 'eviction_policy'").fetchall() == [("none",)]
    cache.set("small", '{"a": 1}')
    cache.set("large", LARGE)
    rows = {row[1]: row for row in select_rows(cache, ["small", "large", "absent"])}
    assert set(rows) == {"small", "large"}
    rowid, key, mode, filename, value = rows["small"]
    assert (type(rowid), key, mode, filename, value) == (
        int,
        "small",
        diskcache.core.MODE_RAW,
        None,
        '{"a": 1}',
    )
    _, _, mode, filename, value = rows["large"]
    assert (mode, value) == (diskcache.core.MODE_TEXT, None) and filename.endswith(".val")
    assert (tmp_path / filename).read_text() == LARGE == fetch(cache, rows["large"])
    assert [row[1] for row in select_rows(cache, None)] == ["small", "large"]
    assert quick_check(cache) == "ok"

    delete_rows(cache, [rows["large"]])
    assert "large" not in cache and not (tmp_path / filename).exists() and len(cache) == 1


def test_select_all_goes_through_every_batch_and_skips_foreign_keys(cache, tmp_path):
    for i in range(2000):
        cache.set(f"{i:064x}", "{}")
    with diskcache.Cache(str(tmp_path)) as stock:
        stock.set(("a", "tuple"), "{}")
    assert len(list(select_rows(cache, None))) == 2000
    assert len(list(select_rows(cache, None, text_keys_only=False))) == 2001
    assert len(list(select_rows(cache, [f"{i:064x}" for i in range(0, 2000, 2)]))) == 1000


def test_the_disk_never_pickles_and_never_unpickles(cache, tmp_path):
    with pytest.raises(TypeError):
        cache.set("k", {"a": "dict"})
    with pytest.raises(TypeError):
        cache.set(("a", "tuple"), "{}")
    with diskcache.Cache(str(tmp_path)) as stock:  # stock diskcache pickles what is not str, bytes or number
        stock.set("pickled", {"a": "dict"})
    (row,) = select_rows(cache, ["pickled"])
    assert row[2] == diskcache.core.MODE_PICKLE and pickle.loads(row[4]) == {"a": "dict"}
    with pytest.raises(ValueError, match="refusing to unpickle"):
        fetch(cache, row)


def test_value_files_get_the_policys_modes(tmp_path):
    for disk, file_mode, dir_mode in [(JSONTextDisk, 0o600, 0o700), (GroupJSONTextDisk, 0o660, 0o2770)]:
        with open_cache(tmp_path / disk.__name__, disk) as opened:
            opened.set("large", LARGE)
            ((_, _, _, filename, _),) = select_rows(opened, ["large"])
        path = tmp_path / disk.__name__ / filename
        assert path.stat().st_mode & 0o7777 == file_mode
        assert {p.stat().st_mode & 0o7777 for p in (path.parent, path.parent.parent)} == {dir_mode}
