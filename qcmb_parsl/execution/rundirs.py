"""Parsl's run directories: whether one can be made, and how many are kept.

Parsl makes a numbered directory per session under the Config's ``run_dir`` (``runinfo/000``,
``runinfo/001``, ...: ``parsl.log``, the interchange's and pools' logs, the blocks' submit scripts)
and removes none. A run keeps the newest :data:`KEEP_RUNS` (option ``keep_runs``); the monitoring
database, anything else that is not a numbered session directory, and a session still writing its
log (another driver's, in the same directory) stay.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from ..errors import ConfigurationError

logger = logging.getLogger(__name__)

#: Session directories kept in a run directory: enough to read the last few runs' logs.
KEEP_RUNS = 10
#: Seconds since its log last grew for a session to count as over (a live session's Parsl logs its
#: scaling decisions every strategy period).
_QUIET = 600.0


def check_run_dir(run_dir: str) -> None:
    """Refuse a run directory that cannot be made or written, before anything is computed."""
    path = Path(run_dir).absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        return
    raise ConfigurationError(
        f"Parsl's run directory {run_dir!r} cannot be written here: {str(existing)!r} is read-only; "
        "run from a directory you can write, or give the run directory elsewhere "
        "(option run_dir, --option run_dir=DIR)"
    )


def prune_run_dirs(run_dir: str, keep: int) -> None:
    """Remove the oldest session directories, leaving ``keep - 1`` for the session about to start."""
    try:
        sessions = sorted((entry for entry in Path(run_dir).iterdir() if _is_session(entry)), key=_number)
    except OSError:
        return  # not there yet: nothing to prune
    for old in sessions[: max(len(sessions) - (keep - 1), 0)]:
        if _live(old):
            continue
        logger.debug("removing the old Parsl run directory %s (keep_runs=%d)", old, keep)
        shutil.rmtree(old, ignore_errors=True)


def _is_session(entry: Path) -> bool:
    return entry.name.isdigit() and entry.is_dir() and not entry.is_symlink()


def _live(entry: Path) -> bool:
    try:
        return time.time() - (entry / "parsl.log").stat().st_mtime < _QUIET
    except OSError:
        return False


def _number(entry: Path) -> int:
    return int(entry.name)
