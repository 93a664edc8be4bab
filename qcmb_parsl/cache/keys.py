"""Cache keys: a digest of what determines a fragment's numbers, and of nothing else.

The key (:func:`fragment_key`) covers program and harness identity, driver, model (with the version of
a library the harness names for it, such as pyscf-dispersion), keywords as the harness reads them,
protocols and the molecule with float noise rounded away; not the molecule's name, not QCManyBody's
label, not provenance-like extras. The v1 and v2 forms of one calculation give the same key.

Every record also keeps a summary of the request it answers (:func:`request_summary`) and its digest,
so that a hit is served only to the request it was computed for, whatever happened to the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..engines.programs import canonical_keywords, model_identity
from ..schema import atomic_model, atomic_specification

#: Bumped whenever the canonical form hashed by :func:`fragment_key` changes, so old keys miss.
#: 2: keywords as the harness reads them; the program version is its identity with the harness's.
_KEY_FORMAT = 2

_ABSENT = object()

#: Protocol values that are the same as leaving the protocol out.
_DEFAULT_PROTOCOLS: dict[str, Any] = {"wavefunction": "none", "stdout": True, "native_files": "none"}
_DEFAULT_ERROR_CORRECTION: dict[str, Any] = {"default_policy": True, "policies": None}


def _rounded_digest(values: Sequence[Any], decimals: int) -> str:
    """Digest of the values flattened and rounded, -0.0 made 0.0, so re-parsed numbers agree.

    A digest of the rounded float64 bytes rather than their JSON: a ghost-laden CP fragment carries
    the whole cluster's coordinates, and encoding them as text dominated planning-time key cost.
    """
    array = np.asarray(values, dtype=np.float64).ravel().round(decimals)
    array += 0.0
    return hashlib.sha256(array.tobytes()).hexdigest()


def geometry_digest(geometry: Sequence[Any]) -> str:
    """Digest of a geometry (Bohr, flat or nested) rounded to 1e-6 Bohr, as keys and summaries hold it."""
    return _rounded_digest(geometry, 6)


def _canonical_protocols(protocols: Mapping[str, Any] | None) -> dict[str, Any]:
    """Protocols minus those at their default value: absent, empty and explicit defaults agree."""
    canonical = {}
    for name, value in (protocols or {}).items():
        if name == "schema_name":
            continue
        if name == "error_correction":
            value = {**_DEFAULT_ERROR_CORRECTION, **(value or {})}
            if value == _DEFAULT_ERROR_CORRECTION:
                continue
        elif _DEFAULT_PROTOCOLS.get(name, _ABSENT) == value:
            continue
        canonical[name] = value
    return canonical


def _canonical_molecule(molecule: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a QCSchema molecule that change a calculation, in one canonical form."""
    natom = len(molecule["symbols"])
    charges, multiplicities = molecule.get("fragment_charges"), molecule.get("fragment_multiplicities")
    masses = molecule.get("masses")
    point_charges = (molecule.get("extras") or {}).get("embedding_charges")
    canonical = {
        "symbols": [str(symbol).capitalize() for symbol in molecule["symbols"]],
        "real": [bool(flag) for flag in molecule.get("real", [True] * natom)],
        "geometry": geometry_digest(molecule["geometry"]),
        "fragments": [[int(i) for i in fragment] for fragment in molecule.get("fragments", [range(natom)])],
        "fragment_charges": None if charges is None else [float(c) for c in charges],
        "fragment_multiplicities": None if multiplicities is None else [float(m) for m in multiplicities],
        "masses": None if masses is None else _rounded_digest(masses, 4),
        "fix_com": bool(molecule.get("fix_com", False)),
        "fix_orientation": bool(molecule.get("fix_orientation", False)),
        "fix_symmetry": str(molecule.get("fix_symmetry") or "").lower() or None,
    }
    for name in ("molecular_charge", "molecular_multiplicity"):
        if molecule.get(name) is not None:
            canonical[name] = float(molecule[name])
    if point_charges is not None:
        canonical["embedding_charges"] = [[float(q), _rounded_digest(xyz, 6)] for q, xyz in point_charges]
    return canonical


def fragment_key(program: str, program_version: str | None, atomic_input: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of everything that determines the result of ``atomic_input``.

    ``program_version`` is the program's identity as :func:`~qcmb_parsl.engines.programs.program_versions`
    gives it (the engine's version and its harness's). The v1 and v2 forms of one calculation give the
    same key, as do geometries differing by float noise (rounded to 1e-6 Bohr), molecules differing only
    in name, and keywords the harness reads alike, so that the same fragment met in another input,
    another bsse treatment or a later campaign hits.
    """
    spec = atomic_specification(atomic_input)
    method, basis = atomic_model(atomic_input)
    payload = {
        "key_format": _KEY_FORMAT,
        "program": program.lower(),
        "program_version": program_version,
        "driver": str(spec["driver"]).lower(),
        "method": method,
        "basis": basis,
        "keywords": canonical_keywords(program, spec.get("keywords") or {}),
        "protocols": _canonical_protocols(spec.get("protocols")),
        "molecule": _canonical_molecule(atomic_input["molecule"]),
    }
    # Only where a harness names one, so that every other key stays what it was.
    identity = model_identity(program, method)
    if identity is not None:
        payload["model_identity"] = identity
    return _digest(payload)


def task_keys(tasks: Iterable[Any], versions: Mapping[str, str | None]) -> dict[str, str]:
    """label -> cache key for fragment tasks (anything with ``label``, ``program``, ``atomic_input``)."""
    return {
        task.label: fragment_key(task.program, versions.get(task.program), task.atomic_input)
        for task in tasks
    }


#: One encoder for every digest: building one per call (as ``json.dumps`` with options does) cost as
#: much as the encoding of a summary, measured.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def _digest(payload: Any) -> str:
    return hashlib.sha256(_CANONICAL_JSON.encode(payload).encode("utf-8")).hexdigest()


def _total_charge(molecule: Mapping[str, Any]) -> float:
    """The molecule's charge as QCSchema validation settles it: given, else the fragments' sum, else 0."""
    if molecule.get("molecular_charge") is not None:
        return float(molecule["molecular_charge"])
    return float(sum(molecule.get("fragment_charges") or ()))


def request_summary(program: str, atomic_input: Mapping[str, Any]) -> dict[str, Any]:
    """What a stored result must answer: symbols, ghost flags, geometry, charge, model, driver, keywords.

    Each field follows from the key (two requests with one key have one summary), and each can be
    checked against a stored AtomicResult without the request at hand: ``qcmb-parsl cache verify``
    compares symbols, ghost flags, model and driver with the result's own.
    """
    spec = atomic_specification(atomic_input)
    molecule = atomic_input["molecule"]
    method, basis = atomic_model(atomic_input)
    symbols = [str(symbol).capitalize() for symbol in molecule["symbols"]]
    return {
        "symbols": symbols,
        "real": [bool(flag) for flag in molecule.get("real", [True] * len(symbols))],
        "geometry": geometry_digest(molecule["geometry"]),
        "molecular_charge": _total_charge(molecule),
        "method": method,
        "basis": basis,
        "driver": str(spec["driver"]).lower(),
        "keywords": canonical_keywords(program, spec.get("keywords") or {}),
    }


def summary_digest(summary: Mapping[str, Any]) -> str:
    """SHA-256 of a :func:`request_summary`: compared on every hit with the request's own."""
    return _digest(summary)
