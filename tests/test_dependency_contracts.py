"""What qcmb_parsl relies on in Parsl's and QCManyBody's internals (``execution/_parsl.py``,
``planning/_qcmanybody.py``).

Each test names one thing a release could change under us; a failure here means: read that release,
adapt the module, and move the tested range in ``pyproject.toml``.
"""

from __future__ import annotations

import concurrent.futures
import importlib.metadata
import inspect
from pathlib import Path

import parsl
import pytest
import qcmanybody
import tomllib
from qcmanybody import ManyBodyCore
from molecules import mbe_input
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from parsl.config import Config
from parsl.dataflow.dflow import DataFlowKernel
from parsl.executors import HighThroughputExecutor, MPIExecutor, ThreadPoolExecutor
from parsl.launchers import SimpleLauncher
from parsl.providers import LocalProvider

from qcmb_parsl import ManyBodyComputer
from qcmb_parsl.execution import _parsl
from qcmb_parsl.planning import _qcmanybody
from qcmb_parsl.screening import Screening

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.fast


def _pins() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def test_parsl_is_in_the_range_whose_internals_were_checked():
    assert Version(importlib.metadata.version("parsl")) in SpecifierSet(_parsl.TESTED_PARSL)
    assert f"parsl[monitoring]{_parsl.TESTED_PARSL}" in _pins()


def test_qcmanybody_is_in_the_tested_range():
    assert Version(qcmanybody.__version__) in SpecifierSet(_qcmanybody.TESTED_QCMANYBODY)
    assert f"qcmanybody{_qcmanybody.TESTED_QCMANYBODY}" in _pins()


def test_no_dependency_is_pinned_to_one_release():
    """An exact pin clashes with every environment that already has another release of that package."""
    pinned = [requirement for requirement in _pins() if "==" in requirement]
    assert not pinned, f"give a tested range instead of {pinned}"


def test_htex_launches_its_interchange_by_a_command_we_can_wrap():
    executor = HighThroughputExecutor(provider=LocalProvider())
    assert list(executor.interchange_launch_cmd) == _parsl.DEFAULT_INTERCHANGE_LAUNCH_CMD
    _parsl.tie_interchange_to_driver(executor)
    assert executor.interchange_launch_cmd[-1] == "interchange.py"
    assert "qcmb_parsl.execution.lifeline" in executor.interchange_launch_cmd


def test_executor_settings_the_capacity_is_read_from():
    htex = HighThroughputExecutor(
        max_workers_per_node=3,
        cores_per_worker=1,
        prefetch_capacity=2,
        provider=LocalProvider(nodes_per_block=2, max_blocks=4),
    )
    assert _parsl.executor_capacity(htex) == 3 * 2 * 4
    assert _parsl.executor_prefetch(htex) == 2 * 2 * 4
    mpi = MPIExecutor(
        max_workers_per_block=5, provider=LocalProvider(max_blocks=2, launcher=SimpleLauncher())
    )
    assert _parsl.executor_capacity(mpi) == 10 and _parsl.executor_prefetch(mpi) == 0
    assert _parsl.executor_capacity(ThreadPoolExecutor(max_threads=7)) == 7


def test_a_dfk_adds_its_internal_executor_and_futures_carry_their_try_count(tmp_path):
    threads = ThreadPoolExecutor(label="mine", max_threads=1)
    dfk = DataFlowKernel(Config(executors=[threads], run_dir=str(tmp_path), strategy=None))
    try:
        assert _parsl.INTERNAL_EXECUTOR_LABEL in dfk.executors
        assert [ex.label for ex in _parsl.user_executors(dfk)] == ["mine"]
        future = parsl.python_app(lambda: 1, data_flow_kernel=dfk)()
        assert future.result(timeout=60) == 1
        assert _parsl.try_count(future) == 1
        second = parsl.python_app(lambda: 2, data_flow_kernel=dfk)()
        assert second.result(timeout=60) == 2
        # The ids a fragment's provenance records are those of the DFK's log and monitoring rows.
        assert (_parsl.task_id(future), _parsl.task_id(second)) == (0, 1)
        assert _parsl.run_id(dfk) == dfk.run_id and len(_parsl.run_id(dfk)) == 36  # a UUID
        assert isinstance(threads.executor, concurrent.futures.ThreadPoolExecutor)
    finally:
        dfk.cleanup()


def test_compute_map_lists_every_fragment_calculation_as_upstream_iterates_them():
    computer = ManyBodyComputer.prepare(mbe_input(3, bsse_type=["cp", "nocp"]))
    ours = {label for _, label, _, _ in _qcmanybody.fragment_calculations(computer.qcmb_core)}
    upstream = {label for _, label, _ in computer.qcmb_core.iterate_molecules()}
    assert ours == upstream and len(ours) == 13


def test_upstream_assembles_through_the_method_the_screened_core_replaces():
    """``ScreenedCore`` replaces ``_assemble_nbody_components`` (same call, same keys back) and filters
    ``compute_map``, which upstream builds once into ``mc_compute_dict``."""
    parameters = inspect.signature(ManyBodyCore._assemble_nbody_components).parameters
    assert list(parameters) == ["self", "property_label", "component_results"]
    core = ManyBodyComputer.prepare(mbe_input(3, bsse_type=["cp", "nocp", "vmfc"])).qcmb_core
    assert core.compute_map is core.mc_compute_dict
    screened = _qcmanybody.ScreenedCore(core, Screening.from_user({2: 100.0}).select(core.molecule, 3))
    data = {label: -76.0 * len(basis) for _, label, _, basis in _qcmanybody.fragment_calculations(core)}
    ours = screened._assemble_nbody_components("energy", data)
    upstream = core._assemble_nbody_components("energy", data)
    assert set(ours) == set(upstream)
    for name, value in upstream.items():
        assert ours[name] == pytest.approx(value, abs=1e-9), name


@pytest.mark.fast
def test_geometric_keywords_are_read_from_its_own_code():
    """optimize refuses a keyword geomeTRIC does not read by reading geomeTRIC's source for the names it
    reads: a release that reads them another way would shrink the list and refuse good keywords."""
    from qcmb_parsl.optimization.geometric_driver import known_keywords

    documented = {"coordsys", "constraints", "rigid", "convergence_set", "maxiter", "trust", "converge", "tmax"}
    assert documented <= set(known_keywords())
