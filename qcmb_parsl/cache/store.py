"""Persistent, content-addressed cache of successful fragment results.

A many-body campaign recomputes the same fragments again and again: the monomers of every bsse
type, the same cluster in another input, a rerun after the driver was killed. The driver process
looks each fragment up here before submitting it and stores each result the moment it arrives, so
an interrupted campaign loses only the fragments in flight. Workers never touch the cache.

The key (:func:`~qcmb_parsl.cache.keys.fragment_key`) is a digest of what determines the numbers;
each record also holds a summary of the request it answers, and a hit is served only to that request
and only when its result fits it (:mod:`~qcmb_parsl.cache.records`). Anything else is a miss: logged,
computed again, overwritten. The directory is private unless a group cache is asked for
(:mod:`~qcmb_parsl.cache.access`).

Storage is :mod:`diskcache` (SQLite, process-safe) with a Disk that accepts ``str`` keys and text
values only (a JSON header line, then the AtomicResult JSON): nothing is ever pickled, so opening a
cache never runs code and every record can be read with any SQLite client. The few diskcache
internals used live in :mod:`._diskcache`.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import diskcache
import platformdirs

from ..errors import CacheError
from ._diskcache import DATABASE_FILES, Row, delete_rows, fetch, open_cache, quick_check, select_rows
from .access import AccessPolicy, shared_group_from_env
from .keys import request_summary
from .records import check_hit, check_stored, make_record, parse_record

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger(__name__)

#: Environment variable naming the cache directory, e.g. one on node-local or project storage.
CACHE_DIR_ENV = "QCMB_PARSL_CACHE_DIR"

#: What a malformed record, or a result that does not fit, raises while it is being checked.
_RECORD_ERRORS = (OSError, ValueError, TypeError, KeyError, AttributeError)


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
class CacheVerification:
    """What :meth:`FragmentCache.verify` found: entries checked, and how many of them it dropped."""

    directory: Path
    checked: int
    dropped: int


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


def _entry_info(key: str, record: Mapping[str, Any]) -> CacheEntryInfo:
    request = record["request"]
    return CacheEntryInfo(
        key,
        record["program"],
        record["program_version"],
        request["method"],
        request["basis"],
        request["driver"],
        len(request["symbols"]),
        sum(request["real"]),
        record["wall_time"],
        record["created"],
    )


def _reason(exc: BaseException) -> str:
    """One line: the first error of a pydantic ValidationError, else the exception's text."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        text = f"not a valid AtomicResult: {where}: {first.get('msg', exc)}"
    elif isinstance(exc, KeyError):
        text = f"field {exc} is missing"
    else:
        text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(text.split())


def _label(key: Any) -> str:
    return key[:16] if isinstance(key, str) else f"with the non-text key {type(key).__name__}"


def _rejected(row: Row, exc: BaseException) -> Row:
    """Log why a stored entry is not served; the row, to be deleted."""
    logger.warning(
        "fragment cache entry %s is not used (%s); computing it again", _label(row[1]), _reason(exc)
    )
    return row


@dataclass(frozen=True)
class FragmentEntry:
    """One successful result to store (see :meth:`FragmentCache.put`); ``result``, when given, is
    ``result_json`` already parsed, so that it is not parsed again."""

    key: str
    program: str
    program_version: str | None
    atomic_input: Mapping[str, Any]
    result_json: str
    wall_time: float
    provenance: dict[str, Any]
    result: Mapping[str, Any] | None = None

    def record_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class FragmentCache:
    """The fragment-result cache in ``directory`` (default :func:`default_cache_dir`).

    Several driver processes may use one directory at once: diskcache serialises writers through
    SQLite's locking. Entries never expire and are never evicted for size; only
    :meth:`invalidate` and :meth:`clear` remove them, apart from entries met on look-up that are
    corrupt or do not answer their request, and those :meth:`verify` drops.

    Parameters
    ----------
    directory
        Where the SQLite database (``cache.db``) and any large results live. Created with mode
        0700 if missing. An existing directory is used as it is if nobody but you can write it or
        anything in it, and refused otherwise (CacheError naming the path and the fix).
    shared_group
        A cache shared by the directory's group, e.g. on project storage: the directory is made
        setgid 2770 and files 0660, and every path must be writable only within that group and
        owned by its members. Default: ``$QCMB_PARSL_CACHE_SHARED_GROUP`` (``1`` for yes), else private.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None, *, shared_group: bool | None = None):
        self.directory = Path(directory).expanduser() if directory is not None else default_cache_dir()
        self.shared_group = shared_group_from_env() if shared_group is None else shared_group
        policy = AccessPolicy(self.shared_group)
        try:
            policy.prepare(self.directory)
            if not os.access(self.directory, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, "not writable")
            self._cache = open_cache(self.directory, policy.disk)
            policy.secure_database(self.directory)
        except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
            raise self._error(exc, "use") from exc

    def __repr__(self) -> str:
        group = ", shared_group=True" if self.shared_group else ""
        return f"FragmentCache({str(self.directory)!r}{group})"

    def __len__(self) -> int:
        with self._database("read"):
            return len(self._cache)

    def __contains__(self, key: object) -> bool:
        with self._database("read"):
            return isinstance(key, str) and key in self._cache

    def __enter__(self) -> Self:
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

        ``program_version`` is the program's identity as the key has it. Raises ValueError for anything
        but a successful AtomicResult answering ``atomic_input``: a failure must be retried, never
        replayed from the cache.
        """
        refused = self.put_many(
            [FragmentEntry(key, program, program_version, atomic_input, result_json, wall_time, provenance)]
        )
        if refused:
            raise refused[0][1]

    def put_many(self, entries: Sequence[FragmentEntry]) -> list[tuple[FragmentEntry, ValueError]]:
        """:meth:`put` of several results in one transaction: one commit for a bundle's fragments
        (a commit per fragment was most of what storing cost the driver, measured). Returns the entries
        refused (not a successful AtomicResult answering its input), each with why; the rest are stored."""
        records, refused = [], []
        for entry in entries:
            try:
                records.append((entry.key, make_record(**entry.record_fields())))
            except ValueError as exc:
                refused.append((entry, exc))
        if records:
            with self._database("write to"), self._cache.transact(retry=True):
                for key, record in records:
                    self._cache.set(key, record)
        return refused

    def get_many(self, requests: Mapping[str, Mapping[str, Any]]) -> dict[str, CachedFragment]:
        """The stored results that answer ``requests`` (key -> the task's AtomicInput, QCSchema v1 or v2).

        A stored entry is served only if it was stored for its key, its result text has the digest stored
        with it, it was stored for a request with the same digest as the one given (atoms, ghost flags,
        geometry, charge, model, driver, keywords), and it holds a successful AtomicResult of that
        request's atoms, ghost flags, geometry, driver and return_result shape. Any other is a miss,
        logged as a WARNING and deleted, to be computed again and overwritten.
        """
        if not isinstance(requests, Mapping):
            raise TypeError(f"get_many takes a mapping of key -> AtomicInput, not {type(requests).__name__}")
        found: dict[str, CachedFragment] = {}
        rejected: list[Row] = []
        with self._database("read"):
            rows = list(select_rows(self._cache, list(requests)))
        for row in rows:
            key = row[1]
            try:
                record, result = parse_record(key, fetch(self._cache, row))
            except _RECORD_ERRORS as exc:
                rejected.append(_rejected(row, exc))
                continue
            # The request is the caller's: an error in it is raised, never blamed on the record.
            request = requests[key]
            summary = request_summary(record["program"], request)
            try:
                check_hit(record, result, summary, request["molecule"]["geometry"])
            except ValueError as exc:
                rejected.append(_rejected(row, exc))
                continue
            found[key] = CachedFragment(key, record["result_json"], record["wall_time"], record["provenance"])
        self._drop(rejected)
        return found

    def wall_times(self, keys: Iterable[str]) -> dict[str, float]:
        """Recorded wall time per stored key, to calibrate the cost model against earlier runs."""
        return {key: record["wall_time"] for key, record in self._records(list(keys)).items()}

    def entries(self, keys: Iterable[str] | None = None) -> list[CacheEntryInfo]:
        """Descriptions of all entries, or of those among ``keys`` that are stored."""
        return [
            _entry_info(key, record)
            for key, record in self._records(None if keys is None else list(keys)).items()
        ]

    def stats(self) -> CacheStats:
        with self._database("read"):
            return CacheStats(self.directory, len(self._cache), self._cache.volume())

    def verify(self) -> CacheVerification:
        """Check every entry and drop the bad ones: SQLite's quick check of the database, then per entry
        a text key, a record that parses and was stored under its key, a result text with the digest
        stored with it, a request digest that matches its request summary, and a result that validates
        as a QCSchema v1/v2 AtomicResult and fits that request (atoms, ghost flags, geometry, model,
        driver, return_result shape).

        A database SQLite finds damaged is a CacheError saying how to recover; each dropped entry is
        logged as a WARNING.
        """
        checked = 0
        rejected: list[Row] = []
        with self._database("check"):
            verdict = quick_check(self._cache)
            if verdict != "ok":
                raise self._damaged(verdict)
            for row in select_rows(self._cache, None, text_keys_only=False):
                checked += 1
                key = row[1]
                try:
                    if type(key) is not str:
                        raise ValueError("not written by qcmb_parsl")
                    record, result = parse_record(key, fetch(self._cache, row))
                    check_stored(record, result)
                except _RECORD_ERRORS as exc:
                    logger.warning("fragment cache entry %s is dropped (%s)", _label(key), _reason(exc))
                    rejected.append(row)
        self._drop(rejected)
        return CacheVerification(self.directory, checked, len(rejected))

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
            and (method is None or record["request"]["method"] == method.lower())
        ]
        with self._database("write to"), self._cache.transact(retry=True):
            for key in doomed:
                self._cache.delete(key)
        return len(doomed)

    def clear(self) -> int:
        """Delete every entry; return how many there were."""
        with self._database("write to"):
            return self._cache.clear()

    def _records(self, keys: Sequence[str] | None) -> dict[str, dict[str, Any]]:
        """Records that parse, by key; corrupt ones are logged, deleted and left out."""
        records: dict[str, dict[str, Any]] = {}
        corrupt: list[Row] = []
        with self._database("read"):
            for row in select_rows(self._cache, keys):
                key = row[1]
                try:
                    records[key], _ = parse_record(key, fetch(self._cache, row))
                except _RECORD_ERRORS as exc:
                    logger.warning(
                        "fragment cache entry %s is corrupt (%s); deleting it", _label(key), _reason(exc)
                    )
                    corrupt.append(row)
        self._drop(corrupt)
        return records

    def _drop(self, rows: Sequence[Row]) -> None:
        """Delete rows found bad. Right even in the rare race where another driver has just replaced
        one: the worst outcome is one fragment computed again."""
        if rows:
            with self._database("write to"):
                delete_rows(self._cache, rows)

    @contextmanager
    def _database(self, doing: str) -> Iterator[None]:
        """SQLite and file errors as one-line CacheErrors naming the cache and the way out."""
        try:
            yield
        except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
            raise self._error(exc, doing) from exc

    def _error(self, exc: BaseException, doing: str) -> CacheError:
        # "file is not a database" and "database disk image is malformed" are plain DatabaseErrors;
        # locked, read-only or full databases raise its subclass OperationalError.
        if type(exc) is sqlite3.DatabaseError:
            return self._damaged(_reason(exc))
        return CacheError(
            f"cannot {doing} fragment cache directory {self.directory}: {_reason(exc)}"
            f" (pass another directory or set {CACHE_DIR_ENV})"
        )

    def _damaged(self, reason: str) -> CacheError:
        return CacheError(
            f"fragment cache database {self.directory / DATABASE_FILES[0]} is damaged ({reason}): move "
            f"the directory {self.directory} aside or delete it (a database that does not open cannot be "
            "cleared); the next run starts an empty cache there"
        )
