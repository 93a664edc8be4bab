"""Every diskcache internal the fragment cache relies on, and nothing else of diskcache's, in one module.

diskcache's public API reads one key at a time and unpickles what it finds. The fragment cache reads
10^4 keys in a few ``SELECT ... WHERE key IN (...)`` statements on diskcache's own connection
(``Cache._sql``) and table layout (the ``Cache`` table's ``key``, ``raw``, ``mode``, ``filename`` and
``value`` columns), and refuses the pickles its :class:`diskcache.Disk` would load (``MODE_PICKLE``).
These are internals: ``tests/test_diskcache_contract.py`` fails loudly the day a release changes them,
and ``pyproject.toml`` admits only the releases tested (:data:`TESTED_RELEASES`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import diskcache
from diskcache.core import DBNAME, MODE_PICKLE, UNKNOWN

__all__ = [
    "DATABASE_FILES",
    "TESTED_RELEASES",
    "GroupJSONTextDisk",
    "JSONTextDisk",
    "Row",
    "delete_rows",
    "fetch",
    "open_cache",
    "quick_check",
    "select_rows",
]

#: The diskcache releases (major, minor) whose internals the tests have checked.
TESTED_RELEASES = ((5, 6),)

#: The SQLite database and the files SQLite keeps beside it in WAL mode, diskcache's default.
DATABASE_FILES = (DBNAME, f"{DBNAME}-wal", f"{DBNAME}-shm")

#: Keys per ``SELECT ... WHERE key IN (...)``; below SQLite's historical limit of 999 parameters.
_CHUNK = 900

#: (rowid, key, mode, filename, value) of one row of diskcache's ``Cache`` table.
Row = tuple[int, Any, int, str | None, Any]


class JSONTextDisk(diskcache.Disk):
    """A diskcache Disk that stores ``str`` keys and text values and refuses anything else.

    diskcache's default Disk pickles values of other types, and unpickles any value a row marks as a
    pickle (as one written by stock diskcache would be); this one does neither. Values too large for
    the database go to files that diskcache creates with the process's umask; they are given
    :attr:`file_mode` (and their directories :attr:`dir_mode`) at once, as the database is.
    """

    file_mode: ClassVar[int] = 0o600
    dir_mode: ClassVar[int] = 0o700

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not str:
            raise TypeError(f"fragment cache keys are str, not {type(key).__name__}")
        return super().put(key)

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[int, int, str | None, Any]:
        if read or type(value) is not str:
            raise TypeError(f"fragment cache values are text, not {type(value).__name__}")
        size, mode, filename, stored = super().store(value, read, key=key)
        if filename is not None:
            path = Path(self._directory, filename)
            os.chmod(path, self.file_mode)
            for directory in (path.parent, path.parent.parent):
                if directory.stat().st_uid == os.geteuid():
                    os.chmod(directory, self.dir_mode)
        return size, mode, filename, stored

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode == MODE_PICKLE:
            raise ValueError("refusing to unpickle a cache value")
        return super().fetch(mode, filename, value, read)


class GroupJSONTextDisk(JSONTextDisk):
    """:class:`JSONTextDisk` for a cache shared by one group: files 0660, directories setgid 2770."""

    file_mode: ClassVar[int] = 0o660
    dir_mode: ClassVar[int] = 0o2770


def open_cache(directory: Path, disk: type[JSONTextDisk]) -> diskcache.Cache:
    """diskcache's Cache on ``directory``, never evicting: its default policy would silently drop the
    oldest results beyond 1 GB."""
    return diskcache.Cache(str(directory), disk=disk, eviction_policy="none")


def select_rows(
    cache: diskcache.Cache, keys: Sequence[str] | None, *, text_keys_only: bool = True
) -> Iterator[Row]:
    """The rows of ``keys`` (all rows if None: only those with text keys unless ``text_keys_only`` is false).

    One ``SELECT ... WHERE key IN (...)`` per chunk of keys rather than a query per key: for 10^4 keys
    this is faster than ``Cache.get`` in a transaction (1.5x when all hit, 10x when all miss) and takes
    no write lock, so other drivers keep writing meanwhile. Only text keys are ours: a pickled key
    written by stock diskcache is never loaded.
    """
    select = "SELECT rowid, key, mode, filename, value FROM Cache"
    if keys is None:
        # In batches by rowid, so that going through a large cache never holds all of it in memory.
        text = " AND typeof(key) = 'text'" if text_keys_only else ""
        last = 0
        while batch := cache._sql(
            f"{select} WHERE rowid > ?{text} ORDER BY rowid LIMIT ?", (last, _CHUNK)
        ).fetchall():
            yield from batch
            last = batch[-1][0]
        return
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start : start + _CHUNK]
        placeholders = ",".join("?" * len(chunk))
        yield from cache._sql(f"{select} WHERE key IN ({placeholders}) AND raw = 1", chunk).fetchall()


def fetch(cache: diskcache.Cache, row: Row) -> Any:
    """The value of ``row`` as its Disk reads it: text, or OSError/ValueError."""
    _, _, mode, filename, value = row
    return cache.disk.fetch(mode, filename, value, False)


def delete_rows(cache: diskcache.Cache, rows: Iterable[Row]) -> None:
    """Delete rows by rowid (their keys may be foreign pickles), and the value files they name."""
    doomed = [(rowid, filename) for rowid, _, _, filename, _ in rows]
    if not doomed:
        return
    with cache.transact(retry=True):
        for rowid, _ in doomed:
            cache._sql("DELETE FROM Cache WHERE rowid = ?", (rowid,))
    for _, filename in doomed:
        if filename is not None:
            Path(cache.directory, filename).unlink(missing_ok=True)


def quick_check(cache: diskcache.Cache) -> str:
    """SQLite's ``PRAGMA quick_check``: ``"ok"``, or the first problem it finds."""
    ((verdict, *_),) = cache._sql("PRAGMA quick_check(1)").fetchall()
    return str(verdict)
