"""Item 6: the scheduler at 100, 1,000 and 10,000 workers, simulated from this machine's measurements.

Two task sets, planned for real with qcmb_parsl (so their counts, n-body levels and cost estimates are
the planner's own):

* (H2O)32 MBE(3) CP with item 1's model chemistry; each fragment's duration drawn from item 1's
  measured serial single-core times of its n-body level;
* (H2O)64 MBE(3) no-CP with item 4's model chemistry; durations drawn from item 4's measured times of
  its n-body level.

Only warm fragments are drawn from: the first fragment of each process pays QCEngine's host probe and
the engine's first-use costs once, and drawn thousands of times it would stand for a cost no long run
pays more than once per worker.

Greedy list scheduling, as HTEX runs it: calls leave the driver in submission order, one every ``d``
seconds (the driver's measured CPU time per call, item 2), and each goes to the worker that frees up
first; a worker is busy for its fragments' durations plus ``L`` per fragment, the latency a worker
waits between fragments (item 2's HTEX overhead per fragment times its 2 workers). Orders:
``fifo`` (planned), ``cost`` (the cost model's estimate, longest first, what ``order="cost"`` does
without calibration), ``oracle`` (the true durations, longest first: the best a perfect estimate
could do), all one fragment per call; and ``cost+bundles``: the cost order with the runner's own
bundling (:func:`qcmb_parsl.execution.runner.bundle_target`: while the driver could not feed every
worker one call at a time, consecutive fragments share a call lasting about ``2 * workers * d``),
its expected durations the cost model scaled to the measured mean, as a calibration would. ``efficiency = max(sum / workers, longest) / makespan``; 1.0 is perfect, and
1 / efficiency is item 4's load-balance ratio.

``node calls`` is not built: the step the 10^4-worker numbers ask for. One driver gives every worker
its first call only after ``workers * d`` seconds (5 s at 10^4 workers and half a millisecond a call),
as long as the fragments themselves; if instead each call went to a node of 64 workers and ran its
fragments there 64 at a time (each in its own process, longest first), 157 calls would fill 10^4
workers. One call per node, dealt from the cost order like cards; each node runs its call's fragments
longest first on its 64 lanes.

The durations are those of item 1's (H2O)6 fragments: (H2O)32's own CP fragments carry a 32-water basis
and would run far longer, so the fixed per-task costs weigh even less there than simulated here.
"""

from __future__ import annotations

import argparse
import heapq
import json
from typing import Any

import numpy as np

from cases import MBECase, balance_case, speedup_case
from common import RESULTS_DIR, emit, log

WORKER_COUNTS = (100, 1000, 10000)
SEEDS = range(5)
ORDERS = ("fifo", "cost", "oracle", "cost+bundles", "node calls")
#: Lanes of one node in the ``node calls`` variant: fragments a call runs side by side (not built).
NODE_LANES = 64


def makespan(
    durations: np.ndarray,
    calls: list[np.ndarray],
    workers: int,
    dispatch_s: float,
    latency_s: float,
    lanes: int = 1,
) -> float:
    """Makespan of greedy list scheduling with a serial dispatcher and a per-fragment worker latency;
    with ``lanes`` > 1, each of ``workers`` runs a call's fragments on that many lanes (longest first)
    and takes its next call when all of them are done."""
    free = [0.0] * min(workers, len(calls))
    heapq.heapify(free)
    end = 0.0
    for position, call in enumerate(calls):
        ready = (position + 1) * dispatch_s
        start = max(heapq.heappop(free), ready)
        finish = start + _call_seconds(durations[call] + latency_s, lanes)
        heapq.heappush(free, finish)
        end = max(end, finish)
    return end


def _call_seconds(seconds: np.ndarray, lanes: int) -> float:
    """How long a call lasts: its fragments one after another, or longest first over ``lanes``."""
    if lanes == 1:
        return float(seconds.sum())
    load = [0.0] * min(lanes, len(seconds))
    for value in np.sort(seconds)[::-1]:
        heapq.heapreplace(load, load[0] + float(value))
    return max(load)


def one_per_call(order: np.ndarray) -> list[np.ndarray]:
    return [order[i : i + 1] for i in range(len(order))]


def bundled(order: np.ndarray, expected: np.ndarray, workers: int, dispatch_s: float) -> list[np.ndarray]:
    """Calls as the runner packs them: consecutive fragments expected shorter than half the target,
    up to the target and to their share of the workers without a call (the runner's own rules; every
    call of the first wave holds a worker, later calls go one at a time as workers free up)."""
    from qcmb_parsl.execution.runner import DEFAULT_BUNDLE_SECONDS, MAX_BUNDLE, bundle_target, fair_share

    calls, position = [], 0
    while position < len(order):
        remaining = len(order) - position
        target = bundle_target(DEFAULT_BUNDLE_SECONDS, workers, dispatch_s, remaining - 1)
        limit = min(MAX_BUNDLE, fair_share(remaining, max(workers - len(calls), 1)))
        end, total = position + 1, expected[order[position]]
        if total < target / 2:
            while end < len(order) and end - position < limit and total + expected[order[end]] <= target:
                total += expected[order[end]]
                end += 1
        calls.append(order[position:end])
        position = end
    return calls


def node_calls(order: np.ndarray, nodes: int) -> list[np.ndarray]:
    """Calls of the ``node calls`` variant: one per node, dealt from the cost order like cards (node k
    gets fragments k, k + nodes, ...), so that every node holds the same mix of long and short ones."""
    return [order[node::nodes] for node in range(min(nodes, len(order)))]


def _levels(fragments: list[dict[str, Any]]) -> dict[int, np.ndarray]:
    """Measured engine seconds per n-body level, of warm fragments only: the first fragment of each
    process (QCEngine's host probe, the engine's first-use costs: a second or more) is left out, as a
    long run pays it once per worker, not once per fragment."""
    first: dict[Any, dict[str, Any]] = {}
    for fragment in fragments:
        if not fragment["cached"]:
            earliest = first.get(fragment["pid"])
            if earliest is None or fragment["started"] < earliest["started"]:
                first[fragment["pid"]] = fragment
    levels: dict[int, list[float]] = {}
    for fragment in fragments:
        if not fragment["cached"] and fragment is not first[fragment["pid"]]:
            levels.setdefault(fragment["nbody"], []).append(fragment["wall_time"])
    return {n: np.array(times) for n, times in levels.items()}


def _task_set(case: MBECase) -> tuple[np.ndarray, np.ndarray]:
    """n-body level and cost estimate of every fragment the planner makes for ``case``."""
    from qcmb_parsl import ManyBodyComputer

    tasks = ManyBodyComputer.prepare(case.input()).fragment_tasks()
    return np.array([t.nbody for t in tasks]), np.array([t.cost for t in tasks])


def simulate_set(
    case: MBECase, samples: dict[int, np.ndarray], dispatch_s: float, latency_s: float
) -> list[dict[str, Any]]:
    nbody, cost = _task_set(case)
    rows = []
    for workers in WORKER_COUNTS:
        per_order: dict[str, list[float]] = {order: [] for order in ORDERS}
        for seed in SEEDS:
            rng = np.random.default_rng(seed)
            durations = np.empty(len(nbody))
            for level, times in samples.items():
                mask = nbody == level
                durations[mask] = rng.choice(times, size=int(mask.sum()))
            bound = max(durations.sum() / workers, durations.max())
            by_cost = np.argsort(-cost, kind="stable")
            expected = cost * (durations.mean() / cost.mean())
            calls = {
                "fifo": one_per_call(np.arange(len(nbody))),
                "cost": one_per_call(by_cost),
                "oracle": one_per_call(np.argsort(-durations, kind="stable")),
                "cost+bundles": bundled(by_cost, expected, workers, dispatch_s),
            }
            for name, order_calls in calls.items():
                per_order[name].append(bound / makespan(durations, order_calls, workers, dispatch_s, latency_s))
            nodes = max(workers // NODE_LANES, 1)
            node_span = makespan(durations, node_calls(by_cost, nodes), nodes, dispatch_s, latency_s, NODE_LANES)
            per_order["node calls"].append(bound / node_span)
        for name, values in per_order.items():
            rows.append(
                {
                    "case": case.describe(),
                    "n_tasks": len(nbody),
                    "workers": workers,
                    "order": name,
                    "efficiency_mean": float(np.mean(values)),
                    "efficiency_min": float(np.min(values)),
                }
            )
        log(f"simulate: {case.describe()} on {workers} workers done")
    return rows


def measure(speedup: dict[str, Any], balance: dict[str, Any], overhead: dict[str, Any], quick: bool) -> dict[str, Any]:
    """Both task sets at every worker count, from items 1, 2 and 4's results."""
    local = overhead["local-unbundled"]  # one call per fragment: the dispatcher's cost per call
    dispatch_s = local["driver_time_per_task_ms"] / 1000
    latency_s = max(local["overhead_ms"], 0.0) * local["workers"] / 1000
    sets = [
        (MBECase(32, speedup_case(quick).method, speedup_case(quick).basis, ("cp",)),
         _levels(speedup["configs"]["upstream-1core"]["fragments"])),
        (MBECase(64, balance_case(quick).method, balance_case(quick).basis, ("nocp",)),
         _levels(balance["cost"]["fragments"])),
    ]
    rows = []
    for case, samples in sets:
        rows += simulate_set(case, samples, dispatch_s, latency_s)
    return {
        "dispatch_ms": dispatch_s * 1000,
        "latency_ms": latency_s * 1000,
        "samples_per_level": {
            case.describe(): {str(n): [round(float(t), 3) for t in times] for n, times in samples.items()}
            for case, samples in sets
        },
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(RESULTS_DIR / "latest.json"), help="a make bench result file")
    args = parser.parse_args()
    with open(args.results) as handle:
        measured = json.load(handle)
    emit(measure(measured["speedup"], measured["balance"], measured["overhead"], measured["quick"]))


if __name__ == "__main__":
    main()
