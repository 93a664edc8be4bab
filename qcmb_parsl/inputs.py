"""Accept a ManyBodyInput as a model, a dict or JSON text, and make the input cheap to validate.

qcelemental infers fragment charges and multiplicities combinatorially when they are missing: at 24
water fragments that takes tens of seconds and gigabytes, at 32 it runs out of memory. Where the
answer is unambiguous (a neutral singlet made of closed-shell fragments) it is filled in here and
said in the log; otherwise the user is told which fields to add, at once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import qcmanybody.models as qcmb_v1
import qcmanybody.models.v2 as qcmb_v2
from qcelemental import periodictable

from .errors import InputError

logger = logging.getLogger(__name__)

#: Fragments above which missing charges/multiplicities are filled (or refused) instead of inferred.
INFERENCE_LIMIT = 8


def normalize_input(input_model: Any, schema_version: int) -> Any:
    """The ManyBodyInput model of ``schema_version`` for a model, a dict, or JSON text."""
    model_class = qcmb_v1.ManyBodyInput if schema_version == 1 else qcmb_v2.ManyBodyInput
    if isinstance(input_model, (str, bytes)):
        try:
            input_model = json.loads(input_model)
        except json.JSONDecodeError as exc:
            raise InputError(f"ManyBodyInput JSON does not parse: {exc}") from None
    if isinstance(input_model, dict):
        fill_fragment_charges(input_model.get("molecule"))
        return validate_model(model_class, input_model)
    return input_model


def validate_model(model_class: type, data: dict[str, Any]) -> Any:
    try:
        return model_class(**data)
    except Exception as exc:  # noqa: BLE001 - pydantic v1 and v2 errors alike become one line
        raise InputError(one_line_validation_error(exc, model_class.__name__)) from None


def one_line_validation_error(exc: Exception, what: str) -> str:
    """First error of a pydantic (v1 or v2) ValidationError or a ValueError, on one line."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or what
        message = str(first.get("msg", exc))
    else:
        where, message = what, str(exc)
    message = " ".join(message.split())
    return f"invalid {what}: {where}: {message}"


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
        "molecule has %d fragments and no %s: filled neutral closed-shell fragments (charge 0, multiplicity 1)",
        len(fragments), " or ".join(missing),
    )


def _element(symbol: str) -> str:
    return "".join(ch for ch in symbol if ch.isalpha()).capitalize()
