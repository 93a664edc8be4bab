"""What comes back for one fragment task."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class TaskResult:
    """Outcome of one fragment: the AtomicResult as QCSchema JSON, or the failure, plus where and how long.

    ``result`` is the engine's output dict (an ``AtomicResult`` or a ``FailedOperation``); models are
    built from it only at assembly, in the schema version the caller asked for.
    """

    label: str
    success: bool
    result: dict[str, Any] | None
    error: str | None = None
    error_type: str | None = None
    wall_time: float = 0.0
    attempts: int = 1
    cached: bool = False
    provenance: dict[str, Any] = field(default_factory=dict)



def in_schema_version(result: dict[str, Any], version: int) -> dict[str, Any]:
    """``result`` as QCSchema v1 or v2 JSON: a cached fragment may have been computed for the other one."""
    if int(result.get("schema_version", 1)) == version:
        return result
    from qcelemental.models import v1, v2

    model = (v1.AtomicResult if version == 2 else v2.AtomicResult)(**result)
    return json.loads(model.convert_v(version).model_dump_json())
