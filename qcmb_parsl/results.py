"""What comes back for one fragment task."""

from __future__ import annotations

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

