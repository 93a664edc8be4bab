"""Parsl's retries: only for failures that say nothing about the fragment.

Engine trouble is judged and retried on the worker (:mod:`qcmb_parsl.execution.app`), the same way on
every back-end. What reaches Parsl as an exception is the infrastructure: a lost worker, manager or
block. Those are retried without limit from the fragment's budget, up to a bound, so a fragment that
takes its node down every time still stops.
"""

from __future__ import annotations

from typing import Any

from parsl.executors.errors import BadStateException
from parsl.executors.high_throughput.errors import ManagerLost, WorkerLost

#: Lost workers tolerated per fragment before it is given up.
MAX_FREE_RETRIES = 5

_INFRASTRUCTURE = (ManagerLost, WorkerLost, BadStateException)


def is_infrastructure_failure(exc: BaseException) -> bool:
    return isinstance(exc, _INFRASTRUCTURE)


def retry_cost(exc: BaseException, task_record: Any) -> float:
    """Parsl ``retry_handler``: nothing for a lost worker (a few times), everything for the rest."""
    budget = float(task_record["dfk"].config.retries)
    if is_infrastructure_failure(exc) and task_record["fail_count"] <= MAX_FREE_RETRIES:
        return 0.0
    return budget + 1
