"""Accept a ManyBodyInput as a model, a dict or JSON text, and make the input cheap to validate.

A dict (or JSON) is checked as the user wrote it before pydantic coerces it: ``max_nbody: 1.5`` would run
as 1, ``"2"`` as 2 and a ``bsse_type`` of ``"cp"`` (QCSchema v1) as the letters ``c`` and ``p``.

qcelemental infers fragment charges and multiplicities combinatorially when they are missing: at 24
water fragments that takes tens of seconds and gigabytes, at 32 it runs out of memory. Where the
answer is unambiguous (a neutral singlet made of closed-shell fragments) it is filled in here and
said in the log; otherwise the user is told which fields to add, at once.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import sys
from typing import Any

import numpy as np
from qcelemental import periodictable

from ..errors import InputError
from ..schema import manybody_input_model

logger = logging.getLogger(__name__)
#: Where what QCElemental prints while it validates goes.
_qcelemental_log = logging.getLogger("qcelemental")

#: Fragments above which missing charges/multiplicities are filled (or refused) instead of inferred.
INFERENCE_LIMIT = 8


def normalize_input(input_model: Any, schema_version: int) -> Any:
    """The ManyBodyInput model of ``schema_version`` for a model, a dict, or JSON text."""
    model_class = manybody_input_model(schema_version)
    if isinstance(input_model, (str, bytes)):
        input_model = parse_json(input_model, "ManyBodyInput JSON")
    if isinstance(input_model, dict):
        input_model = check_keyword_types(input_model)
        molecule = input_model.get("molecule")
        if isinstance(molecule, dict) and "symbols" in molecule:
            check_fragments(len(molecule["symbols"]), molecule.get("fragments"))
        fill_fragment_charges(molecule)
        return validate_model(model_class, input_model)
    if isinstance(input_model, model_class):
        return input_model
    if isinstance(input_model, manybody_input_model(3 - schema_version)):
        computer = "qcmb_parsl.v2.ManyBodyComputer" if schema_version == 1 else "qcmb_parsl.ManyBodyComputer"
        raise InputError(
            f"a QCSchema v{3 - schema_version} ManyBodyInput was given to the v{schema_version} computer: "
            f"use {computer}"
        )
    raise InputError(
        f"ManyBodyInput must be a ManyBodyInput model, a dict or JSON text, not {type(input_model).__name__}"
    )


def parse_json(text: str | bytes, what: str) -> Any:
    """The JSON value of ``text``; InputError (one line) for text that is not JSON or is nested deeper
    than Python's parser goes."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} does not parse: {exc}") from None
    except RecursionError:
        raise InputError(
            f"{what} is nested too deeply to read (more than {sys.getrecursionlimit()} levels)"
        ) from None


#: ManyBodyInput keywords (``specification.keywords``) whose type pydantic would coerce, and the type.
_KEYWORD_TYPES: dict[str, tuple[type, str]] = {
    "max_nbody": (int, "a whole number"),
    "return_total_data": (bool, "true or false"),
    "supersystem_ie_only": (bool, "true or false"),
}


def check_keyword_types(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a ManyBodyInput dict) with a ``bsse_type`` given as one name made a list of it, as
    QCSchema v2 reads it; InputError for a keyword of another type than its own, named as written."""
    specification = data.get("specification")
    if not isinstance(specification, dict) or not isinstance(specification.get("keywords"), dict):
        return data
    keywords = specification["keywords"]
    for name, (kind, words) in _KEYWORD_TYPES.items():
        value = keywords.get(name)
        if value is not None and (type(value) is not kind):
            raise InputError(f"specification.keywords.{name} must be {words}, got {as_written(value)}")
    if isinstance(keywords.get("bsse_type"), str):
        keywords = {**keywords, "bsse_type": [keywords["bsse_type"]]}
        data = {**data, "specification": {**specification, "keywords": keywords}}
    return data


def as_written(value: Any) -> str:
    """A value as it is written in a JSON file (``true``, ``1.5``), text quoted: for messages."""
    if isinstance(value, str):
        return repr(value)
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def validate_model(model_class: type, data: dict[str, Any]) -> Any:
    """``model_class(**data)``; InputError (one line) when it is invalid.

    QCElemental prints its warnings (non-contiguous fragments: "Warning: QCElemental is reordering
    atoms", just before it refuses them) on stdout, where a command's results go. They are logged
    instead: as warnings for a valid model, at debug level for a refused one, whose error says it.
    """
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            model = model_class(**data)
    except Exception as exc:  # noqa: BLE001 - pydantic v1 and v2 errors alike become one line
        _log_printed(printed.getvalue(), logging.DEBUG)
        raise InputError(one_line_validation_error(exc, model_class.__name__, data)) from None
    _log_printed(printed.getvalue(), logging.WARNING)
    return model


def _log_printed(text: str, level: int) -> None:
    for line in text.splitlines():
        if line.strip():
            _qcelemental_log.log(level, "%s", line.strip())


def one_line_validation_error(exc: Exception, what: str, data: Any = None) -> str:
    """First error of a pydantic (v1 or v2) ValidationError or a ValueError, on one line.

    A value outside an enumeration is named with the allowed values (pydantic v1 does not name the
    value, and v2 repeats aliases): the bad value is looked up in ``data`` where pydantic omits it.
    """
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return f"invalid {what}: {what}: {' '.join(str(exc).split())}"
    first = errors()[0]
    loc = tuple(first.get("loc", ()))
    where = ".".join(str(p) for p in loc) or what
    message = str(first.get("msg", exc))
    allowed = _enum_values(first)
    if allowed:
        value = first["input"] if "input" in first else _value_at(data, loc)
        message = f"{value!r} is not one of {', '.join(allowed)}"
    message = " ".join(message.split())
    return f"invalid {what}: {where}: {message}"


def _enum_values(error: dict[str, Any]) -> list[str]:
    """The allowed values of an enumeration error of pydantic v1 or v2, each once, in order."""
    ctx = error.get("ctx") or {}
    if error.get("type") == "type_error.enum":
        values = [str(getattr(member, "value", member)) for member in ctx.get("enum_values", ())]
    elif error.get("type") == "enum":
        values = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
    else:
        return []
    return list(dict.fromkeys(values))


def _value_at(data: Any, loc: tuple[Any, ...]) -> Any:
    """The value at pydantic's error location in the input, or None where it cannot be followed."""
    for part in loc:
        if isinstance(data, str):  # a single name where a list was meant: the name, not its letters
            return data
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def fill_fragment_charges(molecule: Any) -> None:
    """Fill missing fragment charges/multiplicities of a many-fragment molecule dict when unambiguous."""
    if not isinstance(molecule, dict):
        return
    fragments = molecule.get("fragments") or []
    missing = [f for f in ("fragment_charges", "fragment_multiplicities") if not molecule.get(f)]
    if len(fragments) <= INFERENCE_LIMIT or not missing:
        return
    charge = molecule.get("molecular_charge") or 0
    multiplicity = molecule.get("molecular_multiplicity") or 1
    symbols = molecule.get("symbols") or []
    odd = [
        ifr + 1
        for ifr, atoms in enumerate(fragments)
        if sum(periodictable.to_Z(_element(symbols[i])) for i in atoms) % 2
    ]
    if len(missing) == 1 or charge != 0 or multiplicity != 1 or odd:
        if len(missing) == 1:
            reason = f"only {missing[0]} is missing"
        elif odd:
            reason = f"fragment {odd[0]} has an odd number of electrons"
        else:
            reason = "the molecule is charged or open-shell"
        raise InputError(
            f"molecule has {len(fragments)} fragments and no {' or '.join(missing)}, and {reason}: "
            "add molecule.fragment_charges and molecule.fragment_multiplicities"
        )
    molecule["fragment_charges"] = [0.0] * len(fragments)
    molecule["fragment_multiplicities"] = [1] * len(fragments)
    logger.info(
        "molecule has %d fragments and no %s: "
        "filled neutral closed-shell fragments (charge 0, multiplicity 1)",
        len(fragments),
        " or ".join(missing),
    )


def _element(symbol: str) -> str:
    return "".join(ch for ch in symbol if ch.isalpha()).capitalize()


def check_fragments(natom: int, fragments: Any) -> None:
    """Every atom in exactly one fragment, and more than one fragment."""
    fragments = [list(map(int, frag)) for frag in (fragments or [])]
    if len(fragments) < 2:
        raise InputError(
            "molecule has no fragmentation: set molecule.fragments to one list of atom indices per fragment"
        )
    owner: dict[int, int] = {}
    for ifr, atoms in enumerate(fragments, start=1):
        for atom in atoms:
            if atom in owner:
                raise InputError(
                    f"atom {atom} is in fragments {owner[atom]} and {ifr}: fragments must not overlap"
                )
            owner[atom] = ifr
    missing = sorted(set(range(natom)) - set(owner))
    if missing:
        raise InputError(f"atoms {missing[:10]} belong to no fragment: every atom must be in one fragment")


def check_geometry(geometry: Any) -> None:
    """Finite coordinates only: a NaN or an infinity would reach every engine as a numerical failure."""
    xyz = np.asarray(geometry, dtype=float).reshape(-1, 3)
    bad = np.flatnonzero(~np.isfinite(xyz).all(axis=1))
    if bad.size:
        raise InputError(
            f"molecule.geometry: atom {bad[0]} is at {xyz[bad[0]].tolist()}: give finite coordinates (Bohr)"
        )


def check_charges(charges: Any) -> None:
    """Whole numbers only: a fragment's charge counts the electrons it lacks, and every engine refuses a
    fraction of one, fragment by fragment, after the run has started."""
    for index, charge in enumerate(charges or (), start=1):
        if float(charge) != round(float(charge)):
            raise InputError(
                f"molecule.fragment_charges: fragment {index} has charge {float(charge):g}: a charge is a "
                "whole number of electrons"
            )


def check_manybody_input(model: Any) -> None:
    """Catch, with one line each, the input mistakes upstream reports obscurely or only mid-run."""
    molecule = model.molecule
    check_geometry(molecule.geometry)
    check_fragments(len(molecule.symbols), molecule.fragments)
    check_charges(molecule.fragment_charges)

    keywords = model.specification.keywords
    nfr = len(molecule.fragments)
    max_nbody = keywords.max_nbody
    if max_nbody is not None and not 1 <= max_nbody <= nfr:
        raise InputError(f"max_nbody={max_nbody} must be between 1 and {nfr} (the number of fragments)")
    levels = keywords.levels or {}
    nbody_levels = sorted(int(k) for k in levels if k != "supersystem")
    if nbody_levels and nbody_levels[-1] > nfr:
        raise InputError(f"levels go up to {nbody_levels[-1]}-body but the molecule has only {nfr} fragments")
    if nbody_levels and max_nbody is not None and nbody_levels[-1] != max_nbody:
        raise InputError(
            f"levels go up to {nbody_levels[-1]}-body but max_nbody={max_nbody}: make them agree"
        )
    bsse = [getattr(b, "value", b) for b in keywords.bsse_type]
    if "supersystem" in levels and "vmfc" in bsse:
        raise InputError("bsse_type vmfc cannot be combined with a supersystem level: use cp or nocp")
    specs = model.specification.specification
    if levels and isinstance(specs, dict):
        unknown = sorted(set(levels.values()) - set(specs))
        if unknown:
            raise InputError(
                f"levels name model chemistry {unknown[0]!r}, not among specifications {sorted(specs)}"
            )
