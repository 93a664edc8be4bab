"""Checks made on the driver before anything is submitted: is each program there, and which version."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import cache

import qcengine

from ..errors import InputError

logger = logging.getLogger(__name__)


def check_programs(programs: Iterable[str]) -> None:
    """Fail with one line naming a program QCEngine does not know or cannot find here."""
    known = qcengine.list_all_programs()
    for program in programs:
        if program not in known:
            raise InputError(f"unknown program {program!r}; QCEngine finds: {', '.join(_available())}")
        if not qcengine.get_program(program, check=False).found():
            raise InputError(
                f"program {program!r} is not installed where the driver runs; "
                f"QCEngine finds: {', '.join(_available())}"
            )


def _available() -> list[str]:
    return sorted(qcengine.list_available_programs())


@cache
def program_version(program: str) -> str | None:
    """The program's version, part of every cache key: a new build of an engine must not hit old results."""
    try:
        return qcengine.get_program(program, check=False).get_version()
    except Exception as exc:  # noqa: BLE001 - a program that cannot say its version still runs
        logger.warning("could not read the version of %s (%s); cache keys will not include it", program, exc)
        return None


def program_versions(programs: Iterable[str]) -> dict[str, str | None]:
    return {program: program_version(program) for program in programs}
