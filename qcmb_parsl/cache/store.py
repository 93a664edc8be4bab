"""Persistent, content-addressed cache of successful fragment results.

A many-body campaign recomputes the same fragments again and again: the monomers of every bsse
type, the same cluster in another input, a rerun after the driver was killed. The driver process
looks each fragment up here before submitting it and stores each result the moment it arrives, so
an interrupted campaign loses only the fragments in flight. Workers never touch the cache.

The key (:func:`fragment_key`) is a digest of what determines the numbers (program and version,
driver, model, keywords, protocols and the molecule with float noise rounded away) and of nothing
else: not the molecule's name, not QCManyBody's label, not provenance-like extras.

Storage is :mod:`diskcache` (SQLite, process-safe) with a :class:`diskcache.Disk` that accepts
``str`` keys and JSON text values only: nothing is ever pickled, so opening a cache never runs code
and every record can be read with any SQLite client.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import diskcache
import platformdirs
from diskcache.core import MODE_PICKLE, UNKNOWN

from ..errors import CacheError
from .keys import _model, _specification

logger = logging.getLogger(__name__)

#: Environment variable naming the cache directory, e.g. one on node-local or project storage.
CACHE_DIR_ENV = "QCMB_PARSL_CACHE_DIR"

#: ``schema_name`` of an AtomicResult in QCSchema v1 and v2.
_RESULT_SCHEMAS = frozenset({"qcschema_output", "qcschema_atomic_result"})

#: Keys per ``SELECT ... WHERE key IN (...)``; below SQLite's historical limit of 999 parameters.
_CHUNK = 900


def default_cache_dir() -> Path:
    """``$QCMB_PARSL_CACHE_DIR`` if set, else the per-user cache directory of qcmb_parsl."""
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return platformdirs.user_cache_path("qcmb_parsl") / "fragments"


@dataclass(frozen=True)
class CachedFragment:
    """A stored result: the AtomicResult JSON exactly as it was put, and how long it took then."""

    key: str
    result_json: str
    wall_time: float
    provenance: dict[str, Any]


@dataclass(frozen=True)
class CacheStats:
    """How many entries the cache holds and what they occupy on disk (database and result files)."""

    directory: Path
    entries: int
    size_bytes: int


@dataclass(frozen=True)
class CacheEntryInfo:
    """What a stored entry is, without its result: for listing and choosing what to invalidate."""

    key: str
    program: str
    program_version: str | None
    method: str
    basis: str | None
    driver: str
    natom: int
    nreal: int
    wall_time: float
    created: float


#: Fields of a stored record besides the key: the result, its provenance and what describes it.
_INFO_FIELDS = tuple(f.name for f in fields(CacheEntryInfo) if f.name != "key")
_RECORD_FIELDS = frozenset({"result_json", "provenance", *_INFO_FIELDS})


class _JSONTextDisk(diskcache.Disk):
    """A diskcache Disk that stores ``str`` keys and JSON text values and refuses anything else.

    diskcache's default Disk pickles values of other types, and unpickles any value a row marks as a
    pickle (as one written by stock diskcache would be); this one does neither.
    """

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not str:
            raise TypeError(f"fragment cache keys are str, not {type(key).__name__}")
        return super().put(key)

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[int, int, str | None, Any]:
        if read or type(value) is not str:
            raise TypeError(f"fragment cache values are JSON text, not {type(value).__name__}")
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode == MODE_PICKLE:
            raise ValueError("refusing to unpickle a cache value")
        return super().fetch(mode, filename, value, read)


def _check_result(result_json: Any) -> None:
    """Raise ValueError unless ``result_json`` is the JSON of a successful AtomicResult."""
    if not isinstance(result_json, str):
        raise ValueError(f"result_json is {type(result_json).__name__}, not JSON text")
    result = json.loads(result_json)
    if not isinstance(result, dict) or result.get("success") is not True:
        raise ValueError("not a successful result (success is not true)")
    if result.get("schema_name") not in _RESULT_SCHEMAS or "properties" not in result:
        raise ValueError(f"not an AtomicResult (schema_name {result.get('schema_name')!r})")


def _parse_record(text: Any) -> dict[str, Any]:
    """A stored record, or ValueError if it is not one with a valid result in it."""
    record = json.loads(text)
    if not isinstance(record, dict) or not _RECORD_FIELDS <= record.keys():
        raise ValueError("not a fragment-cache record")
    _check_result(record["result_json"])
    return record


def _one_line(exc: BaseException) -> str:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(reason.split())


class FragmentCache:
    """The fragment-result cache in ``directory`` (default :func:`default_cache_dir`).

    Several driver processes may use one directory at once: diskcache serialises writers through
    SQLite's locking. Entries never expire and are never evicted for size; only
    :meth:`invalidate` and :meth:`clear` remove them, apart from corrupt entries met on lookup.

    Parameters
    ----------
    directory
        Where the SQLite database (``cache.db``) and any large results live. Created with mode
        0700 if missing; an existing directory is used as it is.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None):
        self.directory = Path(directory).expanduser() if directory is not None else default_cache_dir()
        try:
            if not self.directory.is_dir():
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                self.directory.chmod(0o700)
            if not os.access(self.directory, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, "not writable")
            # diskcache's default policy would silently drop the oldest results beyond 1 GB.
            self._cache = diskcache.Cache(str(self.directory), disk=_JSONTextDisk, eviction_policy="none")
        except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
            raise CacheError(
                f"cannot use fragment cache directory {self.directory}: {_one_line(exc)}"
                f" (pass another directory or set {CACHE_DIR_ENV})"
            ) from exc

    def __repr__(self) -> str:
        return f"FragmentCache({str(self.directory)!r})"

    def __len__(self) -> int:
        return len(self._cache)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._cache

    def __enter__(self) -> FragmentCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._cache.close()

    def put(
        self,
        key: str,
        *,
        program: str,
        program_version: str | None,
        atomic_input: Mapping[str, Any],
        result_json: str,
        wall_time: float,
        provenance: dict[str, Any],
    ) -> None:
        """Store one successful result now, so that a killed driver loses only what is in flight.

        Raises ValueError for anything but a successful AtomicResult: a failure must be retried,
        never replayed from the cache.
        """
        _check_result(result_json)
        method, basis = _model(atomic_input)
        molecule = atomic_input["molecule"]
        natom = len(molecule["symbols"])
        record = {
            "result_json": result_json,
            "wall_time": float(wall_time),
            "provenance": provenance,
            "program": program.lower(),
            "program_version": program_version,
            "method": method,
            "basis": basis,
            "driver": str(_specification(atomic_input)["driver"]).lower(),
            "natom": natom,
            "nreal": sum(map(bool, molecule.get("real", [True] * natom))),
            "created": time.time(),
        }
        try:
            self._cache.set(key, json.dumps(record))
        except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
            raise CacheError(f"cannot write to fragment cache {self.directory}: {_one_line(exc)}") from exc

    def get_many(self, keys: Sequence[str]) -> dict[str, CachedFragment]:
        """The stored results among ``keys``; keys not stored, or stored corrupt, are left out."""
        return {
            key: CachedFragment(key, record["result_json"], record["wall_time"], record["provenance"])
            for key, record in self._records(keys).items()
        }

    def wall_times(self, keys: Iterable[str]) -> dict[str, float]:
        """Recorded wall time per stored key, to calibrate the cost model against earlier runs."""
        return {key: record["wall_time"] for key, record in self._records(list(keys)).items()}

    def entries(self, keys: Iterable[str] | None = None) -> list[CacheEntryInfo]:
        """Descriptions of all entries, or of those among ``keys`` that are stored."""
        return [
            CacheEntryInfo(key, *(record[name] for name in _INFO_FIELDS))
            for key, record in self._records(None if keys is None else list(keys)).items()
        ]

    def stats(self) -> CacheStats:
        return CacheStats(self.directory, len(self._cache), self._cache.volume())

    def invalidate(
        self, *, program: str | None = None, method: str | None = None, keys: Iterable[str] | None = None
    ) -> int:
        """Delete the entries matching every filter given (all entries if none is); return how many."""
        if program is None and method is None and keys is None:
            return self.clear()
        doomed = [
            key
            for key, record in self._records(None if keys is None else list(keys)).items()
            if (program is None or record["program"] == program.lower())
            and (method is None or record["method"] == method.lower())
        ]
        self._delete(doomed)
        return len(doomed)

    def clear(self) -> int:
        """Delete every entry; return how many there were."""
        return self._cache.clear()

    def _delete(self, keys: Iterable[str]) -> None:
        with self._cache.transact(retry=True):
            for key in keys:
                self._cache.delete(key)

    def _rows(self, keys: Sequence[str] | None) -> Iterator[tuple[str, int, str | None, Any]]:
        """(key, mode, filename, value) of the stored entries among ``keys`` (all if None).

        One ``SELECT ... WHERE key IN (...)`` per chunk of keys rather than a query per key: for
        10^4 keys this is faster than ``Cache.get`` in a transaction (1.5x when all hit, 10x when
        all miss) and takes no write lock, so other drivers keep writing meanwhile.
        """
        select = "SELECT key, mode, filename, value FROM Cache"
        if keys is None:
            # Only text keys are ours; a pickled key written by stock diskcache is never loaded.
            yield from self._cache._sql(f"{select} WHERE typeof(key) = 'text'").fetchall()
            return
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            placeholders = ",".join("?" * len(chunk))
            yield from self._cache._sql(f"{select} WHERE key IN ({placeholders})", chunk).fetchall()

    def _records(self, keys: Sequence[str] | None) -> dict[str, dict[str, Any]]:
        """Parsed and validated records; corrupt ones are logged, deleted and left out."""
        records, corrupt = {}, []
        fetch = self._cache.disk.fetch
        for key, mode, filename, value in self._rows(keys):
            try:
                records[key] = _parse_record(fetch(mode, filename, value, False))
            except (OSError, ValueError, TypeError) as exc:
                # Deleting is right even in the rare race where another driver just replaced the
                # entry (and its result file): the worst outcome is one fragment computed again.
                logger.warning("fragment cache entry %s is corrupt (%s); deleting it", key, _one_line(exc))
                corrupt.append(key)
        if corrupt:
            self._delete(corrupt)
        return records
