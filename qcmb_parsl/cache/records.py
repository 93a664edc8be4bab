"""What the cache stores per fragment, and the checks a record passes before its result is served.

A record is text of two lines: a JSON header::

    {"key", "program", "program_version", "request", "request_digest", "result_sha256", "wall_time",
     "provenance", "created"}

then the AtomicResult JSON exactly as the engine returned it. ``request`` is the
:func:`~qcmb_parsl.cache.keys.request_summary` of the input the result answers, ``request_digest``
its digest and ``result_sha256`` the SHA-256 of the result's text. The result is not a string inside the
header: decoding it twice (once unescaping it, once parsing it) cost as much as every check below, measured.
A hit is served only when the record was stored under the key it is read from, its result text is the
one stored (``result_sha256``), the request at hand has the stored digest, and the result answers it
(its own molecule's atoms, ghost flags and geometry, model, driver, and a ``return_result`` of the
driver's type and shape): whatever an editor, a crash or a swap did to the database, a fragment is never
given another fragment's numbers, nor numbers edited after they were computed.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np

from ..schema import atomic_model, atomic_specification
from .keys import geometry_digest, request_summary, summary_digest

#: Bohr by which a result's own coordinates may differ from its request's: the rounding of cache keys.
GEOMETRY_TOLERANCE = 1e-6

#: QCSchema version of an AtomicResult, by its ``schema_name``.
RESULT_SCHEMAS = {"qcschema_output": 1, "qcschema_atomic_result": 2}

RECORD_FIELDS = frozenset(
    {
        "key",
        "program",
        "program_version",
        "request",
        "request_digest",
        "result_sha256",
        "wall_time",
        "provenance",
        "created",
    }
)


#: The fields of a :func:`~qcmb_parsl.cache.keys.request_summary`.
SUMMARY_FIELDS = frozenset(
    {"symbols", "real", "geometry", "molecular_charge", "method", "basis", "driver", "keywords"}
)


def make_record(
    key: str,
    *,
    program: str,
    program_version: str | None,
    atomic_input: Mapping[str, Any],
    result_json: str,
    wall_time: float,
    provenance: dict[str, Any],
    result: Mapping[str, Any] | None = None,
) -> str:
    """The record's text; ValueError unless ``result_json`` is a successful AtomicResult answering
    ``atomic_input``. ``result``: ``result_json`` already parsed by the caller, not parsed again."""
    summary = request_summary(program, atomic_input)
    parsed = parse_result(result_json) if result is None else check_result(result)
    check_answers(parsed, summary, atomic_input["molecule"]["geometry"])
    record = {
        "key": key,
        "program": program.lower(),
        "program_version": program_version,
        "request": summary,
        "request_digest": summary_digest(summary),
        "result_sha256": text_digest(result_json),
        "wall_time": float(wall_time),
        "provenance": provenance,
        "created": time.time(),
    }
    return json.dumps(record) + "\n" + result_json  # json.dumps never writes a newline


def text_digest(result_json: str) -> str:
    """SHA-256 of a result's text, checked on every hit: 10 microseconds for a small fragment's few KiB."""
    return hashlib.sha256(result_json.encode("utf-8")).hexdigest()


def parse_result(result_json: Any) -> dict[str, Any]:
    """The parsed result, or ValueError unless it is the JSON of a successful AtomicResult."""
    if not isinstance(result_json, str):
        raise TypeError(f"result_json is {type(result_json).__name__}, not JSON text")
    return check_result(json.loads(result_json))


def check_result(result: Any) -> dict[str, Any]:
    """``result`` if it is a successful AtomicResult's dict, else ValueError."""
    if not isinstance(result, dict) or result.get("success") is not True:
        raise ValueError("not a successful result (success is not true)")
    if result.get("schema_name") not in RESULT_SCHEMAS or not isinstance(result.get("properties"), dict):
        raise ValueError(f"not an AtomicResult (schema_name {result.get('schema_name')!r})")
    return result


def parse_record(key: str, text: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(record, parsed result) of the value stored under ``key``, or ValueError saying what is wrong.

    The record is the header with ``result_json``, the result's text exactly as it was put.
    """
    if not isinstance(text, str):
        raise TypeError(f"the value is {type(text).__name__}, not text")
    header, newline, result_json = text.partition("\n")
    record = json.loads(header)
    if not newline or not isinstance(record, dict) or not record.keys() >= RECORD_FIELDS:
        raise ValueError("not a fragment-cache record of this release")
    if record["key"] != key:
        raise ValueError(f"the record was stored for key {str(record['key'])[:16]}")
    if not isinstance(record["program"], str) or not isinstance(record["provenance"], dict):
        raise TypeError("its program or provenance is malformed")
    if not isinstance(record["request"], dict) or not record["request"].keys() >= SUMMARY_FIELDS:
        raise TypeError("its request summary is malformed")
    if type(record["wall_time"]) not in (float, int):
        raise ValueError("its wall_time is not a number")
    if record["result_sha256"] != text_digest(result_json):
        raise ValueError("its result text is not the one stored (the digest differs): edited or damaged")
    record["result_json"] = result_json
    return record, parse_result(result_json)


def check_hit(
    record: Mapping[str, Any], result: Mapping[str, Any], summary: Mapping[str, Any], geometry: Sequence[Any]
) -> None:
    """ValueError unless ``record`` was stored for the request ``summary`` describes (computed from the
    request at hand with the record's program) and its result answers it; ``geometry`` is the request's."""
    if summary_digest(summary) != record["request_digest"]:
        raise ValueError("it was stored for another request (request digest differs)")
    check_answers(result, summary, geometry)


def check_stored(record: Mapping[str, Any], result: Mapping[str, Any]) -> None:
    """ValueError unless the record is consistent in itself: digest of its request summary, result
    answering that summary, and the result a valid QCSchema AtomicResult of its version."""
    if summary_digest(record["request"]) != record["request_digest"]:
        raise ValueError("its request digest does not match its request summary")
    check_answers(result, record["request"])
    validate_model(result)


def check_answers(
    result: Mapping[str, Any], summary: Mapping[str, Any], geometry: Sequence[Any] | None = None
) -> None:
    """ValueError unless ``result`` has the summarised request's atoms, ghost flags, geometry, model and
    driver, and a ``return_result`` of that driver's type and shape.

    The geometry is compared with the request's own (``geometry``, flat or nested Bohr) to
    :data:`GEOMETRY_TOLERANCE` where it is at hand, else with the summary's digest (as the key rounds it):
    the digest costs 20 microseconds of numpy per small fragment, the comparison 3 of Python.

    Cheap checks on the parsed dict, no pydantic: validating the model costs 0.08 ms (v2) to 0.2 ms
    (v1) per small fragment, measured, which would add 0.8-2 s to a 10^4-hit look-up of about 0.5 s;
    ``cache verify`` validates it.
    """
    try:
        _check_answers(result, summary, geometry)
    except KeyError as exc:
        raise ValueError(f"the result has no field {exc}") from None
    except (TypeError, AttributeError) as exc:
        raise ValueError(f"the result is malformed ({exc})") from None


def _check_answers(
    result: Mapping[str, Any], summary: Mapping[str, Any], geometry: Sequence[Any] | None
) -> None:
    molecule = result["molecule"]
    symbols = molecule["symbols"]
    natom = len(summary["symbols"])
    if len(symbols) != natom:
        raise ValueError(f"the result has {len(symbols)} atoms, the request {natom}")
    if symbols != summary["symbols"] and [str(s).capitalize() for s in symbols] != summary["symbols"]:
        raise ValueError("the result's elements are not the request's")
    if molecule.get("real", [True] * natom) != summary["real"]:
        raise ValueError("the result's ghost atoms are not the request's")
    if geometry is None:
        same = geometry_digest(molecule["geometry"]) == summary["geometry"]
    else:
        same = _same_geometry(molecule["geometry"], geometry)
    if not same:
        raise ValueError("the result's geometry is not the request's")
    request = _request(result)
    driver = str(atomic_specification(request)["driver"]).lower()
    if driver != summary["driver"]:
        raise ValueError(f"the result's driver is {driver}, the request's {summary['driver']}")
    method, basis = atomic_model(request)
    if (method, basis) != (summary["method"], summary["basis"]):
        raise ValueError(
            f"the result is {method}/{basis}, the request {summary['method']}/{summary['basis']}"
        )
    _check_return_result(result.get("return_result"), driver, natom)


def _flat(values: Any) -> list[Any]:
    """Coordinates flat, whether given flat or as rows, as lists or as a numpy array."""
    if isinstance(values, np.ndarray):
        return values.ravel().tolist()
    if len(values) and isinstance(values[0], (list, tuple)):
        return list(chain.from_iterable(values))
    return list(values)


def _same_geometry(stored: Sequence[Any], requested: Sequence[Any]) -> bool:
    """Whether two geometries (Bohr, flat or rows) agree coordinate by coordinate to GEOMETRY_TOLERANCE."""
    first, second = _flat(stored), _flat(requested)
    return len(first) == len(second) and all(
        abs(a - b) <= GEOMETRY_TOLERANCE for a, b in zip(first, second, strict=True)
    )


def _request(result: Mapping[str, Any]) -> Mapping[str, Any]:
    """What a result answers, as an AtomicInput: its ``input_data`` in v2, the result itself in v1
    (driver and model at its top level)."""
    return result["input_data"] if RESULT_SCHEMAS[result["schema_name"]] == 2 else result


def _check_return_result(value: Any, driver: str, natom: int) -> None:
    """An energy is a finite number; a gradient (natom, 3) and a Hessian (3N, 3N) numbers, nested or flat."""
    if driver == "energy":
        if type(value) not in (float, int) or not math.isfinite(value):
            raise ValueError(f"the result's return_result {_brief(value)} is not a finite energy")
        return
    if driver not in ("gradient", "hessian"):
        return
    rows, columns = (natom, 3) if driver == "gradient" else (3 * natom, 3 * natom)
    if isinstance(value, list) and value and isinstance(value[0], list):  # nested (rows, columns)
        if len(value) != rows or any(not isinstance(row, list) or len(row) != columns for row in value):
            raise ValueError(f"the result's {driver} is not of shape ({rows}, {columns})")
        value = list(chain.from_iterable(value))
    if not isinstance(value, list) or len(value) != rows * columns:
        raise ValueError(f"the result's {driver} is not of shape ({rows}, {columns})")
    # fsum is finite only if every term is a finite number (a derivative never sums beyond 1e308);
    # anything but numbers is a TypeError, reported as a malformed result.
    if not math.isfinite(math.fsum(value)):
        raise ValueError(f"the result's {driver} has entries that are not finite")


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def validate_model(result: Mapping[str, Any]) -> None:
    """Full pydantic validation as the QCSchema v1 or v2 AtomicResult its ``schema_name`` says it is."""
    if RESULT_SCHEMAS[result["schema_name"]] == 2:
        from qcelemental.models.v2 import AtomicResult

        AtomicResult.model_validate(dict(result))
    else:
        from qcelemental.models.v1 import AtomicResult as AtomicResultV1

        AtomicResultV1.parse_obj(dict(result))
