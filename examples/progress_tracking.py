"""Progress your own way: a ``progress_callback`` that prints its own lines and collects timings.

    python examples/progress_tracking.py                     # water trimer MBE(3), HF/6-31G, local
    python examples/progress_tracking.py --waters 2 --basis sto-3g --preset threads   # seconds

The callback is called once per finished fragment, as ``callback(label, completed, total)``, cache hits
included, in the driver process. The expansion runs twice in one Parsl session: the second run is
answered from the fragment cache, and the callback counts those fragments just the same.
The steps of ``from_manybodyinput`` are used one by one here: prepare, plan, run, assemble.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict

from qcmanybody.utils import delabeler

from qcmb_parsl import ManyBodyComputer, ParslExecutor
from qcmb_parsl.clusters import water_cluster


class ProgressTracker:
    """A progress_callback: one line per finished fragment, and when each one came back."""

    def __init__(self, name: str):
        self.name = name
        self.start = time.perf_counter()
        self.finished: dict[str, float] = {}  # label -> seconds since start

    def __call__(self, label: str, completed: int, total: int) -> None:
        elapsed = time.perf_counter() - self.start
        self.finished[label] = elapsed
        _, real, basis = delabeler(label)
        ghosts = sorted(set(basis) - set(real))
        print(
            f"  {self.name} [{completed:>3}/{total}] {elapsed:6.2f} s  {len(real)}-body {real}"
            + (f" with ghosts {ghosts}" if ghosts else ""),
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waters", type=int, default=3, help="cluster size (default 3)")
    parser.add_argument("--basis", default="6-31g")
    parser.add_argument("--preset", default="local", help="executor preset (default local)")
    parser.add_argument("--workers", type=int, default=None, help="fragments at once (default: all cores)")
    args = parser.parse_args(argv)

    mbin = {
        "molecule": water_cluster(args.waters),
        "specification": {
            "specification": {
                "program": "pyscf", "driver": "energy", "model": {"method": "hf", "basis": args.basis}
            },
            "keywords": {"bsse_type": ["cp", "nocp"]},
            "driver": "energy",
            "protocols": {"component_results": "all"},
        },
    }
    computer = ManyBodyComputer.prepare(mbin)  # validated, nothing run
    tasks = computer.fragment_tasks()  # every fragment of every n-body level, most expensive first
    print(f"{len(tasks)} fragment tasks planned")

    # progress=False: the executor's own bar or log lines stay off, the callback is the display.
    with ParslExecutor(args.preset, max_workers=args.workers, progress=False) as executor:
        for name in ("first run", "second run"):
            tracker = ProgressTracker(name)
            report = executor.run(tasks, tracker)
            result = computer.assemble(report, wall_time=time.perf_counter() - tracker.start)

            per_level: dict[int, list[float]] = defaultdict(list)
            for label, task_result in report.results.items():
                if not task_result.cached:
                    per_level[len(delabeler(label)[1])].append(task_result.wall_time)
            s = report.summary
            print(
                f"{name}: callback called {len(tracker.finished)} times for {s.n_tasks} fragments "
                f"({s.n_executed} computed, {s.n_cached} from the cache) in {s.wall_time:.2f} s"
            )
            for nbody, times in sorted(per_level.items()):
                print(f"  {nbody}-body: {len(times)} fragments, {sum(times):.2f} s of compute, "
                      f"longest {max(times):.2f} s")

    print(f"CP interaction energy {result.properties.cp_corrected_interaction_energy:.8f} Eh, "
          f"no-CP {result.properties.nocp_corrected_interaction_energy:.8f} Eh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
