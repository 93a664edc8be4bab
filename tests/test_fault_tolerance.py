"""Scheduling and fault tolerance on real runs: order, retries, timeouts, failures, killed workers.

Also every bad input the issue lists: one clear line, before anything is submitted.
"""

from __future__ import annotations

import signal
import subprocess
import threading

import pytest
from drivers import session_processes
from hpc_services import SlurmCluster
from molecules import mbe_input
from parsl.executors.high_throughput.errors import WorkerLost

import qcmb_parsl
from qcmb_parsl import (
    CacheError,
    ConfigurationError,
    FragmentsFailedError,
    InputError,
    ManyBodyComputer,
    ParslExecutor,
    RunReport,
    plan_tasks,
    specifications_from_input,
)
from qcmb_parsl.cache import FragmentCache
from qcmb_parsl.execution.progress import check_progress
from qcmb_parsl.execution.retry import MAX_FREE_RETRIES, retry_cost


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


# -- scheduling ---------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["threads", "local"])
def test_longest_expected_fragment_starts_first_on_one_worker(preset):
    mbin = mbe_input(3, basis="6-31g", bsse_type=["cp", "nocp"])
    computer = ManyBodyComputer.prepare(mbin)
    tasks = computer.fragment_tasks()
    with ParslExecutor(preset, max_workers=1, cache=False, progress=False) as executor:
        report = executor.run(tasks)
    cost = {t.label: t.cost for t in tasks}
    started = sorted(report.results.values(), key=lambda r: r.provenance["started"])
    costs_in_start_order = [cost[r.label] for r in started]
    assert costs_in_start_order == sorted(costs_in_start_order, reverse=True)
    assert costs_in_start_order[0] > costs_in_start_order[-1]


def test_fifo_order_keeps_the_planned_order():
    tasks = ManyBodyComputer.prepare(mbe_input(3, bsse_type=["nocp"])).fragment_tasks()
    with ParslExecutor("threads", max_workers=1, cache=False, progress=False, order="fifo") as executor:
        report = executor.run(tasks)
    started = sorted(report.results.values(), key=lambda r: r.provenance["started"])
    assert [r.label for r in started] == [t.label for t in tasks]


def test_cached_wall_times_calibrate_the_estimates(tmp_path):
    specs = {
        "mp2": {"program": "pyscf", "driver": "energy", "model": {"method": "mp2", "basis": "6-31g"}},
        "hf": {"program": "pyscf", "driver": "energy", "model": {"method": "hf", "basis": "6-31g"}},
    }
    mbin = mbe_input(3, bsse_type=["nocp"], levels={1: "mp2", 3: "hf"}, specifications=specs)
    with ParslExecutor("threads", max_workers=2, cache_dir=tmp_path, progress=False) as executor:
        ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
        tasks = ManyBodyComputer.prepare(mbin).fragment_tasks()
        executor.run(tasks)
    assert all(t.expected_seconds is not None and t.expected_seconds > 0 for t in tasks)


# -- retries ------------------------------------------------------------------------------------


class _Config:
    retries = 0


def _record(fail_count: int) -> dict:
    return {"dfk": type("DFK", (), {"config": _Config})(), "fail_count": fail_count}


@pytest.mark.fast
def test_parsl_retries_only_lost_workers():
    """Engine trouble is judged on the worker; Parsl retries only what says nothing about the fragment."""
    assert retry_cost(WorkerLost(1, "node7"), _record(1)) == 0.0
    assert retry_cost(WorkerLost(1, "node7"), _record(MAX_FREE_RETRIES + 1)) > _Config.retries
    assert retry_cost(ValueError("a bug"), _record(1)) > _Config.retries


def test_deterministic_engine_error_is_not_retried_and_names_the_fragment(tmp_path):
    mbin = mbe_input(2, keywords={"max_cycle": 1})
    with ParslExecutor("threads", max_workers=2, cache_dir=tmp_path, progress=False, max_retries=3) as executor:
        with pytest.raises(FragmentsFailedError) as excinfo:
            ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
    message = one_line(excinfo)
    assert message.startswith("3 of 3 fragments failed: 3 engine [pyscf]") and "and 2 more" in message
    assert all(failure.attempts == 1 for failure in excinfo.value.failures)
    assert all("converge" in failure.message.lower() for failure in excinfo.value.failures)


def test_failures_raised_after_the_rest_finished_and_were_cached(tmp_path):
    """An input error only the engine finds (the driver refuses a basis it knows is bad before anything
    starts, so the bad basis goes into the plan below that check) fails its model chemistry's fragments
    and cancels the rest of them; every other fragment finishes and is cached."""
    specs = {
        "good": {"program": "pyscf", "driver": "energy", "model": {"method": "hf", "basis": "sto-3g"}},
        "bad": {"program": "pyscf", "driver": "energy", "model": {"method": "hf", "basis": "sto-3g"}},
    }
    computer = ManyBodyComputer.prepare(
        mbe_input(3, bsse_type=["nocp"], levels={1: "good", 2: "bad"}, specifications=specs)
    )
    planned = specifications_from_input(computer)
    planned["bad"]["specification"]["model"]["basis"] = "no-such-basis"
    tasks = plan_tasks(computer.qcmb_core, planned, computer.schema_version)
    with ParslExecutor("threads", max_workers=2, cache_dir=tmp_path, progress=False) as executor:
        report = executor.run(tasks)
        again = executor.run(tasks)
    error = FragmentsFailedError(report.failures, len(tasks), report)
    message = str(error)
    assert "\n" not in message and message.startswith("6 of 9 fragments failed: ")
    # Two workers: the first two "bad" fragments run and fail; the other four are never submitted.
    assert "2 input [pyscf] PySCF cannot build the molecule with basis 'no-such-basis'" in message
    assert "4 cancelled [pyscf] not run: model chemistry 'bad' has an input error" in message
    assert len(message) <= 300
    succeeded = [label for label, result in report.results.items() if result.success]
    assert len(succeeded) == 3 and len(FragmentCache(tmp_path)) == 3
    assert isinstance(again, RunReport)
    assert again.summary.n_cached == 3 and again.summary.n_failed == len(again.failures) == 6


def _kill_worker_pool(done: threading.Event) -> None:
    """SIGKILL the local worker pool and its worker processes mid-fragment, as when a node dies.

    Killing one worker alone can leave the pool's shared queues locked by the dead process, a
    deadlock inside Parsl's pool rather than a lost task, so the whole pool goes.
    """
    for pool in session_processes("process_worker_pool"):
        victims = [pool, *pool.children(recursive=True)]
        for victim in victims:
            victim.send_signal(signal.SIGKILL)
        done.set()


def test_worker_killed_mid_run_still_gives_the_same_numbers():
    mbin = mbe_input(3, basis="6-31g", bsse_type=["cp"])
    reference = ManyBodyComputer.from_manybodyinput(mbin)
    killed = threading.Event()

    def kill_after_first(label: str, completed: int, total: int) -> None:
        if not killed.is_set():
            _kill_worker_pool(killed)

    with ParslExecutor("local", max_workers=2, cache=False, progress=False) as executor:
        result = ManyBodyComputer.from_manybodyinput(mbin, executor=executor, progress_callback=kill_after_first)
    assert killed.is_set()
    assert result.return_result == pytest.approx(reference.return_result, abs=1e-9)
    attempts = [c.extras["qcmb_parsl"]["attempts"] for c in result.component_results.values()]
    assert max(attempts) >= 2, "the fragment on the killed worker ran again"


@pytest.mark.slurm
def test_slurm_block_cancelled_mid_run_is_replaced(slurm_cluster: SlurmCluster, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mbin = mbe_input(3, basis="6-31g", bsse_type=["cp", "nocp"])
    reference = ManyBodyComputer.from_manybodyinput(mbin)
    cancelled: list[str] = []

    def cancel_block(label: str, completed: int, total: int) -> None:
        if not cancelled:
            jobs = slurm_cluster.job_ids()
            if jobs:
                subprocess.run(["scancel", *jobs], check=False, timeout=30)
                cancelled.extend(jobs)

    with ParslExecutor(
        "slurm", partition="debug", address="127.0.0.1", max_blocks=1, max_workers=2, exclusive=False,
        walltime="00:10:00", cache=False, progress=False,
    ) as executor:
        result = ManyBodyComputer.from_manybodyinput(mbin, executor=executor, progress_callback=cancel_block)
    assert cancelled
    assert result.return_result == pytest.approx(reference.return_result, abs=1e-9)
    jobs = {c.extras["qcmb_parsl"]["slurm_job_id"] for c in result.component_results.values()}
    assert jobs - set(cancelled), "fragments after the cancellation ran in a new block"


# -- bad input: one line each, before anything is submitted ----------------------------------------


def _mbin_with_molecule(**changes) -> dict:
    mbin = mbe_input(3)
    mbin["molecule"].update(changes)
    return mbin


@pytest.mark.fast
@pytest.mark.parametrize(
    "mbin, expected",
    [
        (_mbin_with_molecule(fragments=[list(range(9))], fragment_charges=[0.0], fragment_multiplicities=[1]),
         "no fragmentation"),
        (_mbin_with_molecule(fragments=[[0, 1, 2], [2, 3, 4, 5], [6, 7, 8]]), "atom 2 is in fragments 1 and 2"),
        (_mbin_with_molecule(fragments=[[0, 1, 2], [3, 4, 5], [6, 7]]), "belong to no fragment"),
        (mbe_input(3, max_nbody=0), "max_nbody=0 must be between 1 and 3"),
        (mbe_input(3, max_nbody=5), "max_nbody=5 must be between 1 and 3"),
        (mbe_input(3, bsse_type=["cpp"]), "bsse_type"),
        (mbe_input(3, program="nosuchcode"), "unknown program 'nosuchcode'"),
        (mbe_input(3, program="mrchem"), "'mrchem' is not installed"),
    ],
)
def test_bad_input_is_one_clear_line(mbin, expected):
    with pytest.raises(InputError) as excinfo:
        ManyBodyComputer.from_manybodyinput(mbin, executor=None)
    assert expected in one_line(excinfo)


@pytest.mark.fast
@pytest.mark.parametrize("schema_version", [1, 2])
@pytest.mark.parametrize(
    ("field", "change", "expected"),
    [
        ("bsse_type", lambda mbin: mbin["specification"]["keywords"].update(bsse_type=["cp", "xyz"]),
         "bsse_type.1: 'xyz' is not one of nocp, cp, vmfc"),
        ("driver", lambda mbin: mbin["specification"].update(driver="energies"),
         "driver: 'energies' is not one of energy, gradient, hessian, properties"),
    ],
)
def test_enum_errors_name_the_value_and_the_allowed_ones(schema_version, field, change, expected):
    mbin = mbe_input(2, schema_version=schema_version)
    change(mbin)
    computer = ManyBodyComputer if schema_version == 1 else qcmb_parsl.v2.ManyBodyComputer
    with pytest.raises(InputError) as excinfo:
        computer.from_manybodyinput(mbin)
    assert expected in one_line(excinfo)


@pytest.mark.fast
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_coordinates_are_refused_before_any_engine_runs(value):
    mbin = mbe_input(2)
    mbin["molecule"]["geometry"][4] = value
    with pytest.raises(InputError) as excinfo:
        ManyBodyComputer.from_manybodyinput(mbin)
    assert "molecule.geometry: atom 1 is at" in one_line(excinfo) and "finite" in one_line(excinfo)


@pytest.mark.fast
def test_api_misuse_is_our_error_naming_what_was_given():
    with pytest.raises(InputError, match="ManyBodyInput model, a dict or JSON text, not int") as excinfo:
        ManyBodyComputer.from_manybodyinput(123)
    one_line(excinfo)
    v2_model = qcmb_parsl.v2.ManyBodyComputer.prepare(mbe_input(2, schema_version=2)).input_data
    with pytest.raises(InputError, match="QCSchema v2 ManyBodyInput was given to the v1 computer") as excinfo:
        ManyBodyComputer.from_manybodyinput(v2_model)
    assert "qcmb_parsl.v2.ManyBodyComputer" in one_line(excinfo)
    with pytest.raises(ConfigurationError, match="config must be a preset name") as excinfo:
        ParslExecutor(123)
    assert "not int" in one_line(excinfo)


@pytest.mark.fast
def test_progress_must_be_a_known_mode():
    assert [check_progress(mode) for mode in ("auto", "bar", "log", True, False)] == ["auto", "bar", "log", True, False]
    with pytest.raises(ConfigurationError) as excinfo:
        check_progress("weird")
    assert "'weird'" in one_line(excinfo) and "'auto', 'bar', 'log'" in one_line(excinfo)


@pytest.mark.fast
def test_inconsistent_levels_and_vmfc_with_supersystem():
    specs = {
        "a": {"program": "pyscf", "driver": "energy", "model": {"method": "hf", "basis": "sto-3g"}},
        "b": {"program": "pyscf", "driver": "energy", "model": {"method": "hf", "basis": "6-31g"}},
    }
    with pytest.raises(InputError) as excinfo:
        ManyBodyComputer.from_manybodyinput(mbe_input(3, levels={1: "a", 2: "b"}, max_nbody=3, specifications=specs))
    assert "levels go up to 2-body but max_nbody=3" in one_line(excinfo)
    with pytest.raises(InputError) as excinfo:
        ManyBodyComputer.from_manybodyinput(
            mbe_input(3, bsse_type=["vmfc"], levels={1: "a", "supersystem": "b"}, specifications=specs)
        )
    assert "vmfc cannot be combined with a supersystem" in one_line(excinfo)


@pytest.mark.fast
def test_a_method_the_engine_does_not_know_is_refused_before_any_fragment():
    with pytest.raises(InputError) as excinfo:
        ManyBodyComputer.from_manybodyinput(mbe_input(2, method="no-such-method"))
    assert one_line(excinfo).startswith("method 'no-such-method' is not known to PySCF")


@pytest.mark.fast
def test_bad_executor_settings(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(CacheError) as excinfo:
        ParslExecutor("threads", cache_dir=blocker / "cache")
    assert str(blocker) in one_line(excinfo)
    with pytest.raises(ConfigurationError) as excinfo:
        ParslExecutor("threads", timeout_per_task=-1)
    assert "timeout_per_task" in one_line(excinfo)
    with pytest.raises(ConfigurationError) as excinfo:
        ParslExecutor("threads", max_workers=-3)
    assert "max_workers" in one_line(excinfo)
    site = tmp_path / "site.yaml"
    site.write_text("type: slurm\npartition: debug\nqueue_size: 3\n")
    with pytest.raises(ConfigurationError) as excinfo:
        ParslExecutor(str(site))
    assert "queue_size" in one_line(excinfo)


def test_nothing_submitted_for_bad_input(tmp_path):
    """Bad input fails in the driver: the executor never starts Parsl."""
    executor = ParslExecutor("local", max_workers=1, cache_dir=tmp_path, progress=False)
    with pytest.raises(InputError):
        ManyBodyComputer.from_manybodyinput(mbe_input(3, program="nosuchcode"), executor=executor)
    assert executor.dfk is None
    assert not session_processes("process_worker_pool")
