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

Greedy list scheduling, as HTEX runs it: calls leave one driver in submission order, and the driver is
one thread, so each call costs it ``d + c * n`` seconds before the next can leave: ``d`` per call and
``c`` per fragment of the call (both from item 2: its driver CPU per fragment with a call per fragment,
and with bundles of many), submission and collection alike. Each call goes to the worker that frees up
first; a worker is busy for its fragments' durations plus ``L`` per fragment, the latency a worker waits
between fragments (item 2's HTEX overhead per fragment times its 2 workers). Orders: ``fifo``
(planned), ``cost`` (the cost model's estimate, longest first, what ``order="cost"`` does without
calibration), ``oracle`` (the true durations, longest first: the best a perfect estimate could do),
all one fragment per call; ``cost+bundles``: the cost order with the runner's own packing
(:meth:`~qcmb_parsl.execution.runner._Run._next_call`, reproduced step by step by :func:`runner_calls`:
while the driver could not feed every worker one call at a time, consecutive fragments share a call
lasting about ``2 * workers * d``), its expected durations the cost model scaled to the measured mean,
as a calibration would; and ``lanes``: the same packing for workers of ``NODE_LANES`` lanes (one worker
per 64-core node, ``lanes_per_worker=64``, :mod:`qcmb_parsl.execution.lanes`; the worker count rounded to
whole nodes, and its bound taken over their cores), a call carrying up to
``LANE_ROUNDS`` groups per lane, run on its node in the order given, each lane taking the next group when
it is free; the call returns when its last group is done. ``efficiency = max(sum / workers, longest) /
makespan``; 1.0 is perfect, and 1 / efficiency is item 4's load-balance ratio.

``driver_for_085`` is, per task set and order at 10^4 workers, the largest driver cost per fragment
``c`` (``d`` as measured) at which the simulated efficiency still reaches 0.85: what the driver must
cost per fragment for one driver to keep 10^4 workers busy.

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
ORDERS = ("fifo", "cost", "oracle", "cost+bundles", "lanes")
#: Lanes of one worker in the ``lanes`` variant: a 64-core node, one lane per core.
NODE_LANES = 64
#: Driver costs per fragment (seconds) tried for ``driver_for_085``.
DRIVER_COSTS = (0.4e-3, 0.2e-3, 0.1e-3, 0.05e-3, 0.025e-3, 0.0)

Call = list[np.ndarray]  # the groups of one call, each the indices of its fragments


def makespan(
    durations: np.ndarray,
    calls: list[Call],
    workers: int,
    dispatch_s: float,
    per_fragment_s: float,
    latency_s: float,
    lanes: int = 1,
) -> float:
    """Makespan of greedy list scheduling behind one serial driver (``dispatch_s`` per call and
    ``per_fragment_s`` per fragment) with a per-fragment worker latency; each of ``workers`` runs a
    call's groups on ``lanes`` lanes and takes its next call when all of them are done."""
    free = [0.0] * min(workers, len(calls))
    heapq.heapify(free)
    end = driver = 0.0
    for call in calls:
        driver += dispatch_s + per_fragment_s * sum(len(group) for group in call)
        start = max(heapq.heappop(free), driver)
        finish = start + _call_seconds([float((durations[group] + latency_s).sum()) for group in call], lanes)
        heapq.heappush(free, finish)
        end = max(end, finish)
    return end


def _call_seconds(groups: list[float], lanes: int) -> float:
    """How long a call lasts: its groups (seconds each) on ``lanes`` lanes, each lane taking the next
    group in the order given as soon as it is free (a thread pool's queue, as the worker runs them)."""
    if lanes == 1:
        return sum(groups)
    load = [0.0] * min(lanes, len(groups))
    for seconds in groups:
        heapq.heapreplace(load, load[0] + seconds)
    return max(load)


def one_per_call(order: np.ndarray) -> list[Call]:
    return [[order[i : i + 1]] for i in range(len(order))]


def runner_calls(order: np.ndarray, expected: np.ndarray, workers: int, lanes: int, dispatch_s: float) -> list[Call]:
    """Calls as the runner packs them (``_Run._next_call`` and ``_Run._next``, step by step): a group is
    one fragment, or consecutive fragments expected shorter than half the target, packed up to the
    target and to their share of the free lanes; a call on workers of one lane is one group, on workers
    of several up to ``LANE_ROUNDS`` groups per lane and its share of the fragments among the free
    workers. Every call of the first wave holds a worker; later calls go one at a time as workers free up."""
    from qcmb_parsl.execution.lanes import LANE_ROUNDS
    from qcmb_parsl.execution.runner import DEFAULT_BUNDLE_SECONDS, MAX_BUNDLE, bundle_target, fair_share

    calls: list[Call] = []
    position = 0
    while position < len(order):
        free = max(workers - len(calls), 1)
        share = fair_share(len(order) - position, free) if lanes > 1 else MAX_BUNDLE
        groups: Call = []
        taken = 0
        while position < len(order) and taken < share and len(groups) < (lanes * LANE_ROUNDS if lanes > 1 else 1):
            pending = len(order) - position - 1
            target = bundle_target(DEFAULT_BUNDLE_SECONDS, workers, dispatch_s, pending)
            limit = min(MAX_BUNDLE, share - taken, fair_share(pending + 1, free * lanes))
            end, total = position + 1, expected[order[position]]
            if total < target / 2:
                while end < len(order) and end - position < limit and total + expected[order[end]] <= target:
                    total += expected[order[end]]
                    end += 1
            groups.append(order[position:end])
            taken += end - position
            position = end
        calls.append(groups)
    return calls


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
    case: MBECase, samples: dict[int, np.ndarray], dispatch_s: float, per_fragment_s: float, latency_s: float
) -> tuple[list[dict[str, Any]], dict[str, float | None]]:
    """Rows of efficiency per worker count and order, and ``driver_for_085`` at 10^4 workers."""
    nbody, cost = _task_set(case)
    rows = []
    needed: dict[str, float | None] = {}
    for workers in WORKER_COUNTS:
        per_order: dict[str, list[float]] = {order: [] for order in ORDERS}
        reached: dict[str, list[float]] = {order: [] for order in ("cost+bundles", "lanes")}
        for seed in SEEDS:
            rng = np.random.default_rng(seed)
            durations = np.empty(len(nbody))
            for level, times in samples.items():
                mask = nbody == level
                durations[mask] = rng.choice(times, size=int(mask.sum()))
            nodes = max(round(workers / NODE_LANES), 1)  # whole nodes, the bound over their own cores
            by_cost = np.argsort(-cost, kind="stable")
            expected = cost * (durations.mean() / cost.mean())
            calls = {
                "fifo": (one_per_call(np.arange(len(nbody))), workers, 1),
                "cost": (one_per_call(by_cost), workers, 1),
                "oracle": (one_per_call(np.argsort(-durations, kind="stable")), workers, 1),
                "cost+bundles": (runner_calls(by_cost, expected, workers, 1, dispatch_s), workers, 1),
                "lanes": (runner_calls(by_cost, expected, nodes, NODE_LANES, dispatch_s), nodes, NODE_LANES),
            }
            for name, (order_calls, takers, lanes) in calls.items():
                bound = max(durations.sum() / (takers * lanes), durations.max())
                span = makespan(durations, order_calls, takers, dispatch_s, per_fragment_s, latency_s, lanes)
                per_order[name].append(bound / span)
                if workers == WORKER_COUNTS[-1] and name in reached and seed == SEEDS[0]:
                    for c in DRIVER_COSTS:
                        span = makespan(durations, order_calls, takers, dispatch_s, c, latency_s, lanes)
                        if bound / span >= 0.85:
                            reached[name].append(c)
                            break
        for name, found in reached.items():
            if workers == WORKER_COUNTS[-1]:
                needed[name] = max(found) * 1000 if found else None
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
    return rows, needed


def driver_costs(overhead: dict[str, Any]) -> tuple[float, float]:
    """(seconds per call, seconds per fragment) of the driver, from item 2's local runs: its CPU per
    fragment with one fragment per call (``local-unbundled``) and with bundles (``local``, one engine
    process per call), ``d + c`` and ``d + c * n`` per call with ``n`` fragments a call."""
    unbundled, bundled = overhead["local-unbundled"], overhead["local"]
    per_call_unbundled = unbundled["driver_time_per_task_ms"] / 1000
    per_call_bundled = bundled["driver_time_per_task_ms"] / 1000 * bundled["count"] / bundled["engine_processes"]
    size = bundled["count"] / bundled["engine_processes"]
    per_fragment = max((per_call_bundled - per_call_unbundled) / max(size - 1, 1), 0.0)
    return max(per_call_unbundled - per_fragment, 0.0), per_fragment


def measure(speedup: dict[str, Any], balance: dict[str, Any], overhead: dict[str, Any], quick: bool) -> dict[str, Any]:
    """Both task sets at every worker count, from items 1, 2 and 4's results."""
    local = overhead["local-unbundled"]
    dispatch_s, per_fragment_s = driver_costs(overhead)
    latency_s = max(local["overhead_ms"], 0.0) * local["workers"] / 1000
    sets = [
        (MBECase(32, speedup_case(quick).method, speedup_case(quick).basis, ("cp",)),
         _levels(speedup["configs"]["upstream-1core"]["fragments"])),
        (MBECase(64, balance_case(quick).method, balance_case(quick).basis, ("nocp",)),
         _levels(balance["cost"]["fragments"])),
    ]
    rows = []
    needed = {}
    for case, samples in sets:
        case_rows, needed[case.describe()] = simulate_set(case, samples, dispatch_s, per_fragment_s, latency_s)
        rows += case_rows
    return {
        "dispatch_ms": dispatch_s * 1000,
        "per_fragment_ms": per_fragment_s * 1000,
        "latency_ms": latency_s * 1000,
        "lanes": NODE_LANES,
        "driver_for_085_ms": needed,
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
