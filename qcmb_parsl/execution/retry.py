"""Which failures deserve another attempt, and what each failure is called in a report.

Parsl retries a task while its accumulated failure cost stays within ``Config.retries``. A lost
worker, manager or block says nothing about the fragment, so it costs nothing (up to a bound, so a
fragment that kills its node every time still stops); a random engine error costs one attempt; a
timeout or any deterministic error is not worth repeating.
"""

from __future__ import annotations

from typing import Any

from parsl.app.errors import AppTimeout
from parsl.executors.errors import BadStateException
from parsl.executors.high_throughput.errors import ManagerLost, WorkerLost

from .app import RetryableEngineError

#: Lost workers tolerated per fragment before it is given up, independent of ``max_retries``.
MAX_FREE_RETRIES = 5

_INFRASTRUCTURE = (ManagerLost, WorkerLost, BadStateException)


def is_infrastructure_failure(exc: BaseException) -> bool:
    return isinstance(exc, _INFRASTRUCTURE)


def retry_cost(exc: BaseException, task_record: Any) -> float:
    """Parsl ``retry_handler``: the budget a failure spends (more than the budget stops retries)."""
    budget = float(task_record["dfk"].config.retries)
    if is_infrastructure_failure(exc):
        return 0.0 if task_record["fail_count"] <= MAX_FREE_RETRIES else budget + 1
    if isinstance(exc, RetryableEngineError):
        return 1.0
    return budget + 1


def classify_exception(exc: BaseException, timeout: float | None) -> tuple[str, str]:
    """(error_type, one-line message) for a fragment whose app raised instead of returning."""
    if isinstance(exc, AppTimeout):
        return "timeout", f"timed out after {timeout} s (timeout_per_task)"
    if isinstance(exc, RetryableEngineError):
        return "random_error", exc.message
    if is_infrastructure_failure(exc):
        return "lost_worker", f"{type(exc).__name__}: {exc}"
    return "unknown_error", f"{type(exc).__name__}: {exc}"
