"""Who may write the fragment cache: you alone, or, when asked for, the members of one group.

A hit is taken as the result of the calculation its key names, so whoever can write the directory,
the database or a value file can plant numbers in every later run. A cache is therefore private by
default: created 0700 (files 0600), and an existing one that group or others can write, or that
another user owns, is refused before it is opened.

A cache shared by a project group on project storage is an explicit choice, spelled
``FragmentCache(directory, shared_group=True)`` or ``QCMB_PARSL_CACHE_SHARED_GROUP=1`` (which the
executors and the command line read): the directory is made setgid 2770 (files 0660) in its group, and
every path in it must be writable by nobody outside that group and owned by you or a member of it.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..errors import CacheError, ConfigurationError
from ._diskcache import DATABASE_FILES, GroupJSONTextDisk, JSONTextDisk

#: Environment variable that makes the cache a group cache when ``shared_group`` is not given.
SHARED_GROUP_ENV = "QCMB_PARSL_CACHE_SHARED_GROUP"

_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"", "0", "false", "no", "off"})


def shared_group_from_env() -> bool:
    """``$QCMB_PARSL_CACHE_SHARED_GROUP`` as a bool; another value is a ConfigurationError."""
    value = os.environ.get(SHARED_GROUP_ENV, "").strip().lower()
    if value not in _TRUE | _FALSE:
        raise ConfigurationError(
            f"{SHARED_GROUP_ENV}={os.environ[SHARED_GROUP_ENV]!r} is not a yes or no: set it to 1 for a "
            "group cache, or 0 or nothing for a private one"
        )
    return value in _TRUE


@dataclass(frozen=True)
class AccessPolicy:
    """Private (``shared_group=False``) or shared by the directory's group; modes follow from it."""

    shared_group: bool

    @property
    def dir_mode(self) -> int:
        return 0o2770 if self.shared_group else 0o700

    @property
    def file_mode(self) -> int:
        return 0o660 if self.shared_group else 0o600

    @property
    def disk(self) -> type[JSONTextDisk]:
        return GroupJSONTextDisk if self.shared_group else JSONTextDisk

    def prepare(self, directory: Path) -> None:
        """Create ``directory`` with this policy's mode; then check every path in it. OSError if it
        cannot be created; CacheError if it is not safe.

        An existing private cache keeps its modes (a 0755 directory stays readable by others). A group
        cache is made one: your directory setgid 2770, and your files and directories in it that others
        cannot write 0660 and 2770 (one that others could write may have been written: the check
        refuses it).
        """
        if not directory.is_dir():
            directory.mkdir(mode=self.dir_mode & 0o777, parents=True, exist_ok=True)
            os.chmod(directory, self.dir_mode)
        elif self.shared_group:
            for path, status in [(directory, directory.stat()), *_walk(directory)]:
                mode = self.dir_mode if stat.S_ISDIR(status.st_mode) else self.file_mode
                mine = status.st_uid == os.geteuid() and not stat.S_ISLNK(status.st_mode)
                if mine and not status.st_mode & stat.S_IWOTH and stat.S_IMODE(status.st_mode) != mode:
                    os.chmod(path, mode)
        self.check(directory)

    def check(self, directory: Path) -> None:
        """CacheError naming the first path in ``directory`` (itself included) that is not safe."""
        top = directory.stat()
        if self.shared_group and not top.st_mode & stat.S_ISGID:
            raise CacheError(
                f"shared fragment cache directory {directory} is not setgid, so new files would not belong "
                f"to its group {_group_name(top.st_gid)}: run chmod 2770 {directory}"
            )
        self._check_path(directory, top, directory, top.st_gid)
        for path, status in _walk(directory):
            if stat.S_ISLNK(status.st_mode):
                raise CacheError(
                    f"fragment cache {directory} holds a symbolic link, {path}: remove it or pass another "
                    "cache directory"
                )
            self._check_path(path, status, directory, top.st_gid)

    def secure_database(self, directory: Path) -> None:
        """Give the database files you own this policy's file mode: SQLite creates them with the umask."""
        for name in DATABASE_FILES:
            path = directory / name
            try:
                if path.stat().st_uid == os.geteuid():
                    os.chmod(path, self.file_mode)
            except FileNotFoundError:
                continue

    def _check_path(self, path: Path, status: os.stat_result, directory: Path, gid: int) -> None:
        kind = "directory" if stat.S_ISDIR(status.st_mode) else "file"
        mode = f"mode {stat.S_IMODE(status.st_mode):o}"
        if not self.shared_group:
            if status.st_uid != os.geteuid():
                raise CacheError(
                    f"fragment cache {kind} {path} belongs to {_user_name(status.st_uid)}, not to you: pass "
                    "a cache directory of your own (a group cache needs shared_group=True or "
                    f"{SHARED_GROUP_ENV}=1)"
                )
            if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                who = "group and others" if status.st_mode & stat.S_IWOTH else "its group"
                fix = f"chmod 700 {path}" if path == directory else f"chmod -R go-w {directory}"
                raise CacheError(
                    f"fragment cache {kind} {path} is writable by {who} ({mode}): run {fix}, or pass another "
                    f"cache directory (a group cache needs shared_group=True or {SHARED_GROUP_ENV}=1)"
                )
            return
        if status.st_mode & stat.S_IWOTH:
            raise CacheError(
                f"shared fragment cache {kind} {path} is writable by others ({mode}): run chmod -R o-rwx "
                f"{directory}"
            )
        if status.st_mode & stat.S_IWGRP and status.st_gid != gid:
            raise CacheError(
                f"shared fragment cache {kind} {path} is writable by group {_group_name(status.st_gid)}, "
                f"not the cache's group {_group_name(gid)}: run chgrp -R {_group_name(gid)} {directory}"
            )
        if status.st_uid != os.geteuid() and not _in_group(status.st_uid, gid):
            raise CacheError(
                f"shared fragment cache {kind} {path} belongs to {_user_name(status.st_uid)}, who is not in "
                f"its group {_group_name(gid)}: remove it, or pass another cache directory"
            )


def _walk(directory: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """(path, lstat) of everything below ``directory``, symbolic links not followed. What another
    driver removes meanwhile (an emptied value directory, SQLite's transient files) is left out."""
    pending = [directory]
    while pending:
        try:
            with os.scandir(pending.pop()) as scan:
                entries = list(scan)
        except FileNotFoundError:
            continue
        for entry in entries:
            try:
                status = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield Path(entry.path), status
            if stat.S_ISDIR(status.st_mode):
                pending.append(Path(entry.path))


@cache
def _in_group(uid: int, gid: int) -> bool:
    """Whether user ``uid`` is a member of group ``gid`` (primary or supplementary)."""
    try:
        user = pwd.getpwuid(uid)
    except KeyError:
        return False
    if user.pw_gid == gid:
        return True
    try:
        return user.pw_name in grp.getgrgid(gid).gr_mem
    except KeyError:
        return False


def _user_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
