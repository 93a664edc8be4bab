"""Order of submission: longest expected fragment first, so the last worker is not left with a giant.

Estimates start as relative costs from the plan (basis functions to the method's power). Fragments
of the same model chemistry that the cache already holds carry measured wall times; their ratio of
seconds to cost calibrates the others, so that fragments of different methods compare in seconds.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Mapping, Sequence
from typing import Literal

from ..planning.plan import FragmentTask

logger = logging.getLogger(__name__)

Order = Literal["cost", "fifo"]


def family(task: FragmentTask) -> tuple[str, str, str | None]:
    """Fragments whose cost units are comparable: same program, method and basis."""
    return task.program, task.method, task.basis_set


def calibrate(tasks: Sequence[FragmentTask], measured: Mapping[str, float]) -> dict[tuple, float]:
    """Seconds per cost unit for each family with measured tasks (``measured``: label -> seconds)."""
    ratios: dict[tuple, list[float]] = {}
    for task in tasks:
        seconds = measured.get(task.label)
        if seconds and task.cost > 0:
            ratios.setdefault(family(task), []).append(seconds / task.cost)
    return {fam: statistics.median(values) for fam, values in ratios.items()}


def estimate_seconds(tasks: Sequence[FragmentTask], factors: Mapping[tuple, float]) -> None:
    """Set ``expected_seconds`` where a family is calibrated; elsewhere use the median factor."""
    fallback = statistics.median(factors.values()) if factors else None
    for task in tasks:
        factor = factors.get(family(task), fallback)
        task.expected_seconds = None if factor is None else factor * task.cost


class Calibration:
    """Seconds per cost unit of each family: from the cache's wall times at the start, and from the
    run's own fragments as they finish, so a first run also learns which fragments are tiny."""

    #: Measurements kept per family: enough for a stable median, few enough to stay cheap.
    KEEP = 32

    def __init__(self, factors: Mapping[tuple, float]):
        self._ratios: dict[tuple, list[float]] = {family: [factor] for family, factor in factors.items()}
        self._factors: dict[tuple, float] = dict(factors)

    def observe(self, task: FragmentTask, seconds: float) -> None:
        ratios = self._ratios.setdefault(family(task), [])
        if seconds > 0 and task.cost > 0 and len(ratios) < self.KEEP:
            ratios.append(seconds / task.cost)
            self._factors[family(task)] = statistics.median(ratios)

    def seconds(self, task: FragmentTask) -> float | None:
        """Expected seconds of ``task``, or None while its family has no measurement."""
        factor = self._factors.get(family(task))
        return None if factor is None else factor * task.cost


def order_tasks(tasks: Sequence[FragmentTask], order: Order) -> list[FragmentTask]:
    """Tasks in submission order: ``"cost"`` longest expected first, ``"fifo"`` as planned."""
    if order == "fifo":
        return list(tasks)
    return sorted(tasks, key=lambda t: -(t.expected_seconds if t.expected_seconds is not None else t.cost))


def log_plan(tasks: Sequence[FragmentTask], workers: int) -> None:
    """The planned critical path: the longest fragment against the work per worker."""
    if not tasks:
        return
    seconds = [t.expected_seconds for t in tasks if t.expected_seconds is not None]
    if len(seconds) == len(tasks):
        unit, values = "s", seconds
    else:
        unit, values = "cost units", [t.cost for t in tasks]
    longest = max(values)
    per_worker = sum(values) / max(workers, 1)
    logger.info(
        "plan: %d fragments on %d workers; longest %.3g %s, total/workers %.3g %s, makespan >= %.3g %s",
        len(tasks),
        workers,
        longest,
        unit,
        per_worker,
        unit,
        max(longest, per_worker),
        unit,
    )
