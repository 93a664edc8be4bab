"""Lanes: one call runs many fragments side by side on its worker, each in a process of its own.

With thousands of workers, one driver is the limit: it hands out one call every ``d`` seconds (about
half a millisecond, measured), so 10^4 workers get their first call only after ``10^4 d`` seconds, as
long as the fragments themselves (issue 23). A worker with ``lanes`` lanes (one HTEX worker per node,
a lane per core) takes a call carrying up to ``lanes * LANE_ROUNDS`` groups of fragments; its lanes
take the groups in the order given, each the next as soon as it is free (so the longest, given first,
start first and the short ones fill in behind them), and the call returns when every group is done.
The driver then makes one call per node instead of one per core.

Nothing else changes for a fragment: each group runs as a bundle does (one engine process, every
fragment its own result, limits, evidence and retries; see
:func:`~qcmb_parsl.execution.app.compute_fragments`), and each fragment is cached, judged and reported
alone.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

#: Groups per lane in one call: the lanes balance within a call as they take the next group when
#: done, so a call of several groups per lane loses less to its last group than a call of one per lane
#: (the simulation of bench item 6 chose it); few enough that calls still spread over the workers.
LANE_ROUNDS = 4

Job = dict[str, Any]
Envelope = TypeVar("Envelope")


def annotate(groups: list[list[Job]]) -> list[Job]:
    """The jobs of one call, flat, each marked with its group."""
    return [{**job, "group": index} for index, group in enumerate(groups) for job in group]


def split(jobs: list[Job]) -> list[list[Job]]:
    """The groups of a call's jobs (consecutive jobs with one ``group`` mark; unmarked: one group)."""
    groups: list[list[Job]] = []
    for job in jobs:
        if groups and groups[-1][0].get("group") == job.get("group"):
            groups[-1].append(job)
        else:
            groups.append([job])
    return groups


def run_on_lanes(
    groups: list[list[Job]], lanes: int, run: Callable[[list[Job]], list[Envelope]]
) -> list[Envelope]:
    """``run`` of every group, at most ``lanes`` at a time, in the order given; the answers flat, in order."""
    if lanes <= 1 or len(groups) <= 1:
        return [answer for group in groups for answer in run(group)]
    with ThreadPoolExecutor(max_workers=min(lanes, len(groups)), thread_name_prefix="qcmb-lane") as pool:
        return [answer for answers in pool.map(run, groups) for answer in answers]
