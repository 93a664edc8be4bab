"""Checks made on the driver before anything is submitted, and what of each engine goes into cache keys.

A cached result is only as right as its key: the key holds the program's identity (its version and the
version of the QCEngine harness that drives it, :func:`program_versions`) and the keywords as the harness
reads them (:func:`canonical_keywords`), so that neither a new build nor a harness whose defaults changed
is answered with old numbers, and two spellings the engine treats alike share one key. A harness may name
a library that computes part of a method's numbers (:func:`model_identity`: pyscf-dispersion for PySCF's
DFT-D methods); its version is then part of that method's keys.
"""

from __future__ import annotations

import importlib.metadata
import logging
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import qcengine
from qcengine.exceptions import InputError as QCEngineInputError
from qcengine.programs.model import ProgramHarness

from ..errors import InputError
from ..spelling import did_you_mean

logger = logging.getLogger(__name__)

#: Stock QCEngine harnesses that read keyword names in one case, the last of two spellings winning
#: (QCEngine 0.52: nwchem and gamess lowercase the names, cfour and qchem uppercase them). For any
#: other harness without a ``canonical_keywords`` of its own, names are taken as given.
_CASE_FOLDING_HARNESSES = frozenset({"nwchem", "gamess", "cfour", "qchem"})


def check_programs(programs: Iterable[str]) -> None:
    """Fail with one line naming a program QCEngine does not know or cannot find here."""
    known = qcengine.list_all_programs()
    for program in programs:
        if program not in known:
            raise InputError(
                f"unknown program {program!r}{did_you_mean(program, sorted(known))} "
                f"(QCEngine finds: {', '.join(_available())})"
            )
        if not qcengine.get_program(program, check=False).found():
            raise InputError(
                f"program {program!r} is not installed where the driver runs; "
                f"QCEngine finds: {', '.join(_available())}"
            )


def _available() -> list[str]:
    return sorted(qcengine.list_available_programs())


def _harness(program: str) -> ProgramHarness | None:
    try:
        return qcengine.get_program(program, check=False)
    except QCEngineInputError:  # not registered with QCEngine: nothing to say about it
        return None


@cache
def program_version(program: str) -> str | None:
    """The program's own version: a new build of an engine must not hit old results."""
    try:
        return qcengine.get_program(program, check=False).get_version()
    except Exception as exc:  # noqa: BLE001 - a program that cannot say its version still runs
        logger.warning("could not read the version of %s (%s); its cache keys hold no version", program, exc)
        return None


def harness_identity(harness: ProgramHarness) -> str:
    """Which code turns QCSchema into the engine's input: distribution, its version and the class.

    The harness sets defaults the engine never sees as keywords (frozen core, grids, thresholds); a
    release that changes one must not be answered from results of the release before. Our PySCF
    harness is versioned by this package (``qcmb_parsl 0.1.0 PySCFHarness``), QCEngine's stock harnesses
    by QCEngine's version (``qcengine 0.52.0 NWChemHarness``).
    """
    package = type(harness).__module__.partition(".")[0]
    try:
        version = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:  # a harness defined in a script or a plain module
        version = str(getattr(sys.modules.get(package), "__version__", "unversioned"))
    return f"{package} {version} {type(harness).__name__}"


@cache
def program_identity(program: str) -> str | None:
    """``"<program version> (harness <harness identity>)"``: what besides the input made a result."""
    harness = _harness(program)
    if harness is None:
        return program_version(program)
    return f"{program_version(program) or 'unknown version'} (harness {harness_identity(harness)})"


def program_versions(programs: Iterable[str]) -> dict[str, str | None]:
    """program -> identity (:func:`program_identity`), the program part of every cache key and record."""
    return {program: program_identity(program) for program in programs}


@cache
def model_identity(program: str, method: str) -> str | None:
    """What besides the program makes ``method``'s numbers, when the harness says (ours for PySCF names
    pyscf-dispersion and its version for dispersion-corrected functionals); None otherwise."""
    rule = getattr(_harness(program), "model_identity", None)
    return None if rule is None else rule(method)


def _fold_case(keywords: Mapping[str, Any]) -> dict[str, Any]:
    """Names lowercased, for harnesses that read names in one case.

    Names that differ only in case are kept as given: the engine would keep one of them, which one
    depends on their order, so they must never share a key with either (planning refuses them).
    """
    folded = {name.lower(): value for name, value in keywords.items()}
    return folded if len(folded) == len(keywords) else dict(keywords)


def keywords_without_defaults(keywords: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """A harness's ``canonical_keywords`` from its ``defaults``: names lowercased, an int where the
    default is a float made that float, and values equal to their default and of its type left out
    (leaving them out gives the same calculation). Names that differ only in case are kept as given: the
    harness refuses them, so they never share a key with an input that runs."""
    names = [name.lower() for name in keywords]
    if len(set(names)) != len(names):
        return dict(keywords)
    canonical: dict[str, Any] = {}
    for name, value in zip(names, keywords.values(), strict=True):
        if type(defaults.get(name)) is float and type(value) is int:
            value = float(value)
        if name in defaults and type(value) is type(defaults[name]) and value == defaults[name]:
            continue
        canonical[name] = value
    return canonical


def canonical_keywords(program: str, keywords: Mapping[str, Any]) -> dict[str, Any]:
    """The keywords as ``program``'s harness reads them: equal exactly when the engine sees the same.

    A harness may define ``canonical_keywords(keywords)`` (ours for PySCF does: names lowercased,
    values equal to its defaults left out); QCEngine's case-folding harnesses get :func:`_fold_case`;
    any other harness's keywords are taken as given.
    """
    if not keywords:  # the common case, and the same under every rule
        return {}
    harness = _harness(program)
    rule = getattr(harness, "canonical_keywords", None)
    if rule is not None:
        return rule(keywords)
    if program.lower() in _CASE_FOLDING_HARNESSES and type(harness).__module__.startswith("qcengine."):
        return _fold_case(keywords)
    return dict(keywords)
