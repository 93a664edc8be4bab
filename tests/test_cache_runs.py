"""The fragment cache in real runs: reruns, kill and resume, corruption, sharing across inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import diskcache
import pytest
from molecules import mbe_input

from qcmb_parsl import ManyBodyComputer, ParslExecutor
from qcmb_parsl.cache import FragmentCache

SCRIPTS = Path(__file__).parent / "scripts"


def run(mbin, cache_dir, preset="threads"):
    with ParslExecutor(preset, max_workers=2, cache_dir=cache_dir, progress=False) as executor:
        return ManyBodyComputer.from_manybodyinput(mbin, executor=executor)


def counts(result) -> tuple[int, int, int]:
    run_info = result.extras["qcmb_parsl"]
    return run_info["n_tasks"], run_info["n_cached"], run_info["n_executed"]


def test_second_run_executes_nothing_and_equals_first(tmp_path):
    mbin = mbe_input(3, bsse_type=["cp", "nocp"], basis="6-31g")
    first = run(mbin, tmp_path, preset="local")
    n_tasks, n_cached, n_executed = counts(first)
    assert (n_cached, n_executed) == (0, n_tasks)
    second = run(mbin, tmp_path, preset="local")
    assert counts(second) == (n_tasks, n_tasks, 0)
    assert second.return_result == first.return_result
    assert second.properties == first.properties
    hits = [c.extras["qcmb_parsl"]["cache"] for c in second.component_results.values()]
    assert hits == ["hit"] * n_tasks
    assert {c.extras["qcmb_parsl"]["cache"] for c in first.component_results.values()} == {"miss"}


def test_killed_run_resumes_with_only_missing_fragments(tmp_path):
    mbin = mbe_input(3, bsse_type=["cp"], basis="cc-pvdz")
    mbin_path = tmp_path / "input.json"
    mbin_path.write_text(json.dumps(mbin))
    cache_dir = tmp_path / "cache"
    driver = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "run_mbe.py"), str(mbin_path), str(cache_dir)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and driver.poll() is None:
            if (cache_dir / "cache.db").exists() and len(FragmentCache(cache_dir)) >= 2:
                break
            time.sleep(0.05)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert driver.returncode == -signal.SIGKILL, "the driver finished before it could be killed"

    done_before = len(FragmentCache(cache_dir))
    result = run(mbin, cache_dir)
    n_tasks, n_cached, n_executed = counts(result)
    assert 2 <= done_before < n_tasks
    assert (n_cached, n_executed) == (done_before, n_tasks - done_before)
    reference = ManyBodyComputer.from_manybodyinput(mbin)
    assert result.return_result == pytest.approx(reference.return_result, abs=1e-9)


def test_corrupted_entry_is_recomputed(tmp_path):
    mbin = mbe_input(2)
    first = run(mbin, tmp_path)
    with diskcache.Cache(str(tmp_path)) as raw:
        victim = next(iter(raw.iterkeys()))
        raw.set(victim, '{"result_json": "truncated')
    second = run(mbin, tmp_path)
    n_tasks, n_cached, n_executed = counts(second)
    assert (n_cached, n_executed) == (n_tasks - 1, 1)
    assert second.return_result == pytest.approx(first.return_result, abs=1e-12)
    computer = ManyBodyComputer.prepare(mbin)
    keys = computer.cache_keys()
    requests = {keys[task.label]: task.atomic_input for task in computer.fragment_tasks()}
    assert len(FragmentCache(tmp_path).get_many({victim: requests[victim]})) == 1


def test_hits_across_bsse_types_and_inputs(tmp_path):
    run(mbe_input(2, bsse_type=["nocp"]), tmp_path)
    cp = run(mbe_input(2, bsse_type=["cp"]), tmp_path)
    assert counts(cp) == (3, 1, 2), "the dimer in its own basis is the same calculation for CP and no-CP"
    trimer = run(mbe_input(3, bsse_type=["nocp"], max_nbody=2), tmp_path)
    n_tasks, n_cached, n_executed = counts(trimer)
    assert n_cached == 3 and n_executed == n_tasks - 3, "the dimer's fragments are shared by the trimer"


@pytest.mark.parametrize("change", [{"basis": "6-31g"}, {"keywords": {"conv_tol": 1e-11}}, {"method": "mp2"}])
def test_different_model_or_keywords_miss(tmp_path, change):
    run(mbe_input(2), tmp_path)
    changed = run(mbe_input(2, **change), tmp_path)
    n_tasks, n_cached, n_executed = counts(changed)
    assert (n_cached, n_executed) == (0, n_tasks)


def test_cache_off_and_identical_fragments_computed_once(tmp_path):
    mbin = mbe_input(2, bsse_type=["cp"])
    with ParslExecutor("threads", max_workers=2, cache=False, progress=False) as executor:
        assert executor.cache is None
        result = ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
    assert counts(result)[1] == 0
    assert not any(tmp_path.iterdir()) or not (tmp_path / "cache.db").exists()
