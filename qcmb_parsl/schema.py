"""QCSchema v1 and v2 in one place: which version a document is, its models, conversion and dumping.

QCManyBody ships both versions (``qcmanybody.models`` and ``qcmanybody.models.v2``) and so does
QCElemental. Everything else in this package asks this module instead of testing versions itself, as
QCEngine converts between versions in one place (``qcengine/util.py``). Dumping needs no version test:
QCElemental's v1 models (pydantic.v1) forward pydantic v2's ``model_dump``/``model_dump_json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

SchemaVersion = Literal[1, 2]

#: Field of a ManyBodyResult, and protocol of a ManyBodyInput, holding every fragment's AtomicResult.
FRAGMENT_RESULTS_FIELD: dict[int, str] = {1: "component_results", 2: "cluster_results"}

_V2_NAMES = {"qcschema_many_body_input", "qcschema_many_body_specification", "qcschema_atomic_specification"}
_V1_NAMES = {"qcschema_manybodyinput", "qcschema_manybodyspecification", "qcschema_atomicspecification"}


# -- models ---------------------------------------------------------------------------------------


def manybody_input_model(version: int) -> type:
    """QCManyBody's ManyBodyInput class of a QCSchema version."""
    if version == 2:
        import qcmanybody.models.v2 as models
    else:
        import qcmanybody.models as models
    return models.ManyBodyInput


def manybody_result_model(version: int) -> type:
    """QCManyBody's ManyBodyResult class of a QCSchema version."""
    if version == 2:
        import qcmanybody.models.v2 as models
    else:
        import qcmanybody.models as models
    return models.ManyBodyResult


def atomic_result_model(version: int) -> type:
    """QCElemental's AtomicResult class of a QCSchema version."""
    from qcelemental.models import v1, v2

    return v2.AtomicResult if version == 2 else v1.AtomicResult


def model_version(model: Any) -> SchemaVersion:
    """QCSchema version of a QCElemental or QCManyBody model: v2 models are pydantic v2 models."""
    from pydantic import BaseModel

    return 2 if isinstance(model, BaseModel) else 1


# -- detection ------------------------------------------------------------------------------------


def detect_input_version(data: Mapping[str, Any]) -> SchemaVersion:
    """QCSchema version of a ManyBodyInput dict: 2 or 1.

    The first marker found decides: ``schema_version`` at the top level or in ``specification``; a
    ``schema_name`` there or on an atomic specification (``qcschema_many_body_input`` and
    ``qcschema_atomic_specification`` are v2); the protocol's name (``cluster_results`` is v2,
    ``component_results`` v1). An input without any marker is v1 when it validates as v1, else v2
    when it validates as v2, else v1 (whose validation error is then reported).
    """
    spec: Mapping[str, Any] = _mapping(data.get("specification"))
    for holder in (data, spec):
        version = holder.get("schema_version")
        if version in (1, 2):
            return 2 if version == 2 else 1
    atomic = spec.get("specification")
    atomic_specs = []
    if isinstance(atomic, dict):
        atomic_specs = [atomic] if "model" in atomic else [s for s in atomic.values() if isinstance(s, dict)]
    for holder in (data, spec, *atomic_specs):
        name = holder.get("schema_name")
        if name in _V2_NAMES:
            return 2
        if name in _V1_NAMES:
            return 1
    protocols = _mapping(spec.get("protocols"))
    if FRAGMENT_RESULTS_FIELD[2] in protocols:
        return 2
    if FRAGMENT_RESULTS_FIELD[1] in protocols:
        return 1
    if _validates(manybody_input_model(1), data) or not _validates(manybody_input_model(2), data):
        return 1
    return 2


def result_version(data: Mapping[str, Any]) -> SchemaVersion:
    """QCSchema version of a result dict (ManyBodyResult, AtomicResult): v2 says so, v1 may not."""
    return 2 if data.get("schema_version") == 2 else 1


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _validates(model: type, data: Mapping[str, Any]) -> bool:
    try:
        model(**json.loads(json.dumps(data)))
    except Exception:  # noqa: BLE001 - pydantic v1 and v2 errors alike: it does not validate
        return False
    return True


# -- atomic inputs (plain QCSchema dicts) ---------------------------------------------------------


def make_atomic_input(
    molecule: dict[str, Any], specification: dict[str, Any], version: int
) -> dict[str, Any]:
    """An AtomicInput dict: v2 nests the specification (driver, model, keywords, protocols), v1 does not."""
    if version == 2:
        return {"molecule": molecule, "specification": specification}
    return {"molecule": molecule, **specification}


def atomic_version(atomic_input: Mapping[str, Any]) -> SchemaVersion:
    """QCSchema version of an AtomicInput dict: v2 nests driver and model in ``specification``."""
    return 2 if "specification" in atomic_input else 1


def atomic_specification(atomic_input: Mapping[str, Any]) -> Mapping[str, Any]:
    """The part of an AtomicInput dict holding driver, model, keywords and protocols."""
    return atomic_input.get("specification", atomic_input)


def atomic_model(atomic_input: Mapping[str, Any]) -> tuple[str, Any]:
    """(method, basis) of an AtomicInput dict, lower case; basis None (or a basis-set dict) as given."""
    model = atomic_specification(atomic_input)["model"]
    basis = model.get("basis")
    return str(model["method"]).lower(), basis.lower() if isinstance(basis, str) else basis


# -- conversion and dumping -----------------------------------------------------------------------


def convert_atomic_result(result: dict[str, Any], version: int) -> dict[str, Any]:
    """An AtomicResult dict in QCSchema ``version``: a cached fragment may come from the other one."""
    if result_version(result) == version:
        return result
    model = atomic_result_model(1 if version == 2 else 2)(**result)
    return json.loads(model.convert_v(version).model_dump_json())


def dump(model: Any) -> dict[str, Any]:
    """A model of either version as a JSON-ready dict."""
    return json.loads(model.model_dump_json())


def dump_json(model: Any, indent: int | None = None) -> str:
    """A model of either version as JSON text (``indent`` as in :func:`json.dumps`)."""
    text = model.model_dump_json()
    return text if indent is None else json.dumps(json.loads(text), indent=indent)


def fragment_results(result: Any) -> dict[str, Any]:
    """label -> AtomicResult of every fragment a ManyBodyResult kept (empty when it kept none)."""
    return dict(getattr(result, FRAGMENT_RESULTS_FIELD[model_version(result)], None) or {})


def keeps_fragment_results(input_model: Any, version: int) -> bool:
    """Whether a ManyBodyInput's protocol keeps every fragment's AtomicResult in the ManyBodyResult
    (otherwise upstream's result model drops whatever it is given)."""
    protocol = getattr(input_model.specification.protocols, FRAGMENT_RESULTS_FIELD[version])
    return getattr(protocol, "value", protocol) == "all"


def keep_fragment_results(data: dict[str, Any], version: int) -> dict[str, Any]:
    """A copy of a ManyBodyInput dict whose protocol keeps every fragment's AtomicResult, unless set.

    The fragments' results carry their provenance (host, process, start, wall time, cache), which
    ``qcmb-parsl report`` draws; upstream keeps them only with ``component_results: "all"`` (v1) or
    ``cluster_results: "all"`` (v2). An explicit value in the input is left as it is.
    """
    data = json.loads(json.dumps(data))
    spec = data.get("specification")
    if isinstance(spec, dict):
        protocols = spec.get("protocols")
        if protocols is None:
            protocols = spec["protocols"] = {}
        if isinstance(protocols, dict):
            protocols.setdefault(FRAGMENT_RESULTS_FIELD[version], "all")
    return data
