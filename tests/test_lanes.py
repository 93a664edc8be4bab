"""Lanes: one call runs its groups of fragments side by side on its worker, each group in a process of
its own, every fragment still its own result; results equal to upstream QCManyBody's serial computer."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import qcmanybody
from components import require
from molecules import mbe_input

from qcmb_parsl import ManyBodyComputer, ParslExecutor
from qcmb_parsl.engines.xtb import XTBHarness
from qcmb_parsl.errors import ConfigurationError
from qcmb_parsl.execution.jobs import JobSettings
from qcmb_parsl.execution.lanes import annotate, run_on_lanes, split
from qcmb_parsl.resources import WorkerResources


@pytest.mark.fast
def test_a_calls_groups_come_back_as_they_were_marked():
    groups = [[{"x": 0}, {"x": 1}], [{"x": 2}], [{"x": 3}, {"x": 4}, {"x": 5}]]
    jobs = annotate(groups)
    assert [job["x"] for job in jobs] == list(range(6))
    assert [[job["x"] for job in group] for group in split(jobs)] == [[0, 1], [2], [3, 4, 5]]
    assert split([{"x": 0}, {"x": 1}]) == [[{"x": 0}, {"x": 1}]]  # unmarked: one group


@pytest.mark.fast
def test_lanes_run_groups_side_by_side_and_answer_in_order():
    """The first two groups wait for each other: they can only both finish if they run at once."""
    both = threading.Barrier(2, timeout=60)

    def run(group):
        if group[0]["x"] < 2:
            both.wait()
        return [job["x"] * 10 for job in group]

    groups = [[{"x": 0}], [{"x": 1}], [{"x": 2}, {"x": 3}]]
    assert run_on_lanes(groups, 2, run) == [0, 10, 20, 30]


@pytest.mark.fast
@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"lanes_per_worker": 0}, "lanes_per_worker must be a positive integer, got 0"),
        ({"lanes_per_worker": 2.0}, "lanes_per_worker must be a positive integer, got 2.0"),
        ({"lanes_per_worker": 2, "isolate": False}, "drop isolate=False"),
    ],
)
def test_lanes_are_a_positive_count_of_isolated_fragments(settings, reason):
    with pytest.raises(ConfigurationError, match=reason):
        JobSettings(WorkerResources(), **settings)


def test_a_worker_with_two_lanes_runs_a_call_on_both_and_equals_upstream_serial():
    """One local worker of two lanes: the trimer's seven fragments travel in one call, run by two lane
    threads of that worker, each fragment in an engine process of its own (no wall times yet: no bundles)."""
    require(XTBHarness.found(), "tblite is not installed (pip install 'qcmb_parsl[xtb]')")
    data = mbe_input(3, method="GFN2-xTB", basis=None, program="xtb", driver="gradient", bsse_type=["nocp"])
    with ParslExecutor("local", max_workers=1, lanes_per_worker=2, progress=False, cache=False) as executor:
        result = ManyBodyComputer.from_manybodyinput(data, executor=executor)
    reference = qcmanybody.ManyBodyComputer.from_manybodyinput(data)
    assert abs(result.properties.return_energy - reference.properties.return_energy) < 1e-9
    np.testing.assert_allclose(result.return_result, reference.return_result, rtol=0, atol=1e-8)
    provenance = [atomic.extras["qcmb_parsl"] for atomic in result.component_results.values()]
    assert len(provenance) == 7
    assert len({p["parsl_task_id"] for p in provenance}) == 1, provenance
    assert len({p["thread"] for p in provenance}) == 2, provenance
    assert len({p["engine_pid"] for p in provenance}) == 7, provenance
