"""Parsl's own machinery dying under a run, stops at every moment, and what a run leaves behind.

Each fault is produced for real on the ``local`` preset: the interchange SIGKILLed, every worker pool
SIGKILLed, the interchange frozen while the driver is told to stop, drivers stopped or killed while
Parsl starts. The run recovers (a fresh Parsl session, the fragments in flight submitted again) or
stops within its stated time, keeps what finished, and leaves no process and nothing in ``$TMPDIR``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
from components import require
from drivers import (
    descendants,
    interchanges,
    session_processes,
    start_cli,
    still_alive,
    stop_driver,
    wait_for_cached,
    wait_until,
)
from molecules import mbe_input

from qcmb_parsl import FailureKind, ManyBodyComputer, ParslExecutor
from qcmb_parsl.cache import FragmentCache
from qcmb_parsl.errors import ConfigurationError
from qcmb_parsl.execution.lifeline import BLOCK_MARK, end_run
from qcmb_parsl.execution.parsl_backend import block_init
from qcmb_parsl.execution.rundirs import prune_run_dirs
from qcmb_parsl.execution.teardown import STOP_SECONDS
from qcmb_parsl.presets import build_preset

N_TASKS = 13  # water trimer, MBE(3), cp and nocp
#: Seconds a loaded machine may add to a stop's stated time (a Python start, a busy scheduler).
LOAD_ALLOWANCE = 15
TEMPLATE = "qcmb_parsl.execution.isolation.template"


def _trimer(directory: Path) -> tuple[dict, Path]:
    mbin = mbe_input(3, method="mp2", basis="cc-pvdz", bsse_type=["cp", "nocp"])
    path = directory / "trimer.json"
    path.write_text(json.dumps(mbin))
    return mbin, path


def _pools() -> list[psutil.Process]:
    return session_processes("process_worker_pool")


def test_lost_interchange_and_pools_are_recovered_and_a_blocked_stop_is_bounded(tmp_path, private_tmpdir):
    """The interchange SIGKILLed: a fresh session, the fragments in flight again. Every pool SIGKILLed:
    Parsl's fresh block. Then the interchange frozen, so Parsl's cleanup blocks for ever, and SIGTERM:
    the run ends it all itself within its stated time, keeps what finished, and a rerun computes
    exactly the rest, upstream's numbers at the end."""
    mbin, inp = _trimer(tmp_path)
    cache, tmp = tmp_path / "cache", private_tmpdir
    args = ["run", str(inp), "--preset", "local", "--workers", "2", "--progress", "log"]
    driver = start_cli(args, tmp_path, cache, TMPDIR=str(tmp))
    processes: set[int] = set()
    sent = None
    try:
        wait_for_cached(cache, 2, driver=driver)
        processes |= descendants(driver.pid)
        for interchange in interchanges(driver.pid):
            interchange.kill()
        wait_until(lambda: (tmp_path / "runinfo" / "001").is_dir(), 60, "a fresh Parsl session")
        wait_for_cached(cache, 4, driver=driver)
        pools = _pools()
        processes |= descendants(driver.pid) | {pool.pid for pool in pools}
        for pool in pools:
            pool.kill()
        wait_for_cached(cache, 5, driver=driver)  # what the pools held came back from a fresh block
        processes |= descendants(driver.pid) | {pool.pid for pool in _pools()}
        for interchange in interchanges(driver.pid):
            interchange.suspend()
        sent = time.monotonic()
    finally:
        stderr = stop_driver(driver, signal.SIGTERM, STOP_SECONDS + 60)
    took = time.monotonic() - (sent or 0)
    assert driver.returncode == 143, stderr
    assert took < STOP_SECONDS + LOAD_ALLOWANCE, f"stopping took {took:.1f} s"
    assert "the interchange of executor 'local'" in stderr, stderr
    assert "was killed by SIGKILL: starting local afresh" in stderr, stderr
    assert "block 0 of executor 'local' ended" in stderr, stderr
    assert "Parsl's cleanup did not end cleanly" in stderr, stderr
    with FragmentCache(cache) as opened:
        kept = len(opened)
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"qcmb-parsl: stopped by SIGTERM: {kept} of {N_TASKS} fragments"), stderr
    assert not still_alive(processes, 60), "no interchange, worker pool, template or engine left"
    wait_until(lambda: not list(tmp.iterdir()), 60, f"$TMPDIR as it was: {list(tmp.iterdir())}")

    rerun = ManyBodyComputer.from_manybodyinput(mbin, executor=ParslExecutor("threads", cache_dir=cache))
    summary = rerun.extras["qcmb_parsl"]
    assert summary["n_cached"] == kept and summary["n_executed"] == N_TASKS - kept
    attempts = [c.extras["qcmb_parsl"]["attempts"] for c in rerun.component_results.values()]
    assert max(attempts) >= 2, "what was in flight when the interchange died was submitted again"
    reference = ManyBodyComputer.from_manybodyinput(mbin)
    assert rerun.return_result == pytest.approx(reference.return_result, abs=1e-9)


def test_a_config_that_serves_one_session_stops_naming_its_lost_interchange(tmp_path):
    """A parsl.Config object cannot be started afresh: every fragment not finished fails as a lost
    worker naming what was lost, what finished is kept, and a rerun computes exactly the rest."""
    mbin = mbe_input(2, method="mp2", basis="cc-pvdz", bsse_type=["cp"])
    cache = tmp_path / "cache"
    config, _ = build_preset("local", max_workers=1)
    config.run_dir = str(tmp_path / "runinfo")
    with ParslExecutor(config, cache_dir=cache, progress=False) as executor:
        killer = threading.Thread(target=_kill_interchange_after, args=(cache, 1, executor), daemon=True)
        killer.start()
        report = ManyBodyComputer.from_manybodyinput(mbin, executor=executor, on_failure="return")
        killer.join(60)
    assert report.failures and all(f.kind is FailureKind.LOST_WORKER for f in report.failures)
    reason = report.failures[0].one_line()
    assert "not run: the interchange of executor 'local'" in reason and "was killed by SIGKILL" in reason
    assert "a parsl.Config object serves one session" in reason, reason
    kept = len(report.results) - len(report.failures)
    assert kept >= 1 and len(FragmentCache(cache)) == kept

    rerun = ManyBodyComputer.from_manybodyinput(mbin, executor=ParslExecutor("threads", cache_dir=cache))
    summary = rerun.extras["qcmb_parsl"]
    assert summary["n_cached"] == kept and summary["n_executed"] == 3 - kept
    reference = ManyBodyComputer.from_manybodyinput(mbin)
    assert rerun.return_result == pytest.approx(reference.return_result, abs=1e-9)


def test_blocks_that_never_serve_stop_the_run_naming_them(tmp_path):
    """A block whose worker pools never connect (here its worker_init fails) is replaced by Parsl for
    ever: the run gives up after three in a row, each fragment failed as a lost worker naming them."""
    mbin = mbe_input(2, bsse_type=["nocp"], max_nbody=1)
    executor = ParslExecutor(
        "local", max_workers=1, cache=False, progress=False, worker_init="exit 3", run_dir=str(tmp_path / "runinfo")
    )
    with executor:
        report = ManyBodyComputer.from_manybodyinput(mbin, executor=executor, on_failure="return")
    assert len(report.failures) == 2 and all(f.kind is FailureKind.LOST_WORKER for f in report.failures)
    reason = report.failures[0].reason()
    assert reason.startswith("not run: 3 blocks of executor 'local' ended without any worker pool connecting"), reason
    assert "exit code 3" in reason and "submit_scripts" in reason, reason


def _kill_interchange_after(cache: Path, count: int, executor: ParslExecutor) -> None:
    wait_for_cached(cache, count)
    for interchange in interchanges(os.getpid()):
        interchange.kill()


def test_drivers_stopped_while_parsl_starts_leave_nothing(tmp_path, private_tmpdir):
    """Ctrl-C and SIGHUP as the interchange's wrapper appears, SIGKILL as the worker pool appears:
    three drivers at once, each inside Parsl's start-up. Nothing of theirs is left within 60 s, their
    ``$TMPDIR`` is as it was, and the stopped ones say so in one line."""
    mbin = mbe_input(2, method="mp2", basis="cc-pvdz")
    cases = [
        (signal.SIGINT, "lifeline.py --driver", 130),
        (signal.SIGHUP, "lifeline.py --driver", 129),
        (signal.SIGKILL, "process_worker_pool", -signal.SIGKILL),
    ]
    drivers = []
    for signum, _, _ in cases:
        name = signal.Signals(signum).name
        directory, tmp = tmp_path / name, private_tmpdir / name
        directory.mkdir()
        tmp.mkdir()
        (directory / "dimer.json").write_text(json.dumps(mbin))
        args = ["run", "dimer.json", "--preset", "local", "--workers", "1", "-q"]
        drivers.append(start_cli(args, directory, directory / "cache", TMPDIR=str(tmp)))
    pending = dict(enumerate(drivers))
    deadline = time.monotonic() + 180
    while pending and time.monotonic() < deadline:
        for index, driver in list(pending.items()):
            signum, appears, _ = cases[index]
            if not _of_driver(driver.pid, appears):
                continue
            if signum == signal.SIGINT:
                time.sleep(0.3)
                os.killpg(driver.pid, signum)  # Ctrl-C reaches the terminal's whole process group
            else:
                time.sleep(0.3 if signum == signal.SIGHUP else 0)
                driver.send_signal(signum)
            del pending[index]
        time.sleep(0.05)
    assert not pending, "every driver reached Parsl's start-up"
    for driver, (signum, _, status) in zip(drivers, cases, strict=True):
        _, stderr = driver.communicate(timeout=STOP_SECONDS + 60)
        assert driver.returncode == status, stderr
        if signum != signal.SIGKILL:
            assert f"qcmb-parsl: stopped by {signal.Signals(signum).name}" in stderr.strip().splitlines()[-1]
    for driver, (signum, _, _) in zip(drivers, cases, strict=True):
        tmp = private_tmpdir / signal.Signals(signum).name
        pid = driver.pid
        wait_until(lambda: not _of_driver(pid, ""), 60, f"the processes of the {signum.name} driver end")  # noqa: B023
        wait_until(lambda: not list(tmp.iterdir()), 60, f"$TMPDIR as it was: {list(tmp.iterdir())}")  # noqa: B023


def _of_driver(driver: int, name: str) -> list[psutil.Process]:
    """Live processes of this test session started for ``driver`` whose command line holds ``name``:
    its lifeline's wrapper names it, its blocks' processes carry its mark."""
    found = []
    for process in session_processes(name):
        try:
            mark = process.environ().get("QCMB_PARSL_RUN", "")
            if f"--driver {driver} " in " ".join(process.cmdline()) or mark.startswith(f"{driver}-"):
                found.append(process)
        except psutil.Error:
            continue
    return found


# -- what a run leaves, and where ------------------------------------------------------------------


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory this process cannot write: read-only to a user, a read-only mount for root."""
    directory = tmp_path / "read-only"
    directory.mkdir()
    directory.chmod(0o555)
    mounted = False
    if os.access(directory, os.W_OK):  # root: permissions do not stop it, a read-only file system does
        mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(directory)], check=False)
        require(mount.returncode == 0, "root without a read-only mount: cannot make a directory read-only")
        mounted = True
    yield directory
    if mounted:
        subprocess.run(["umount", str(directory)], check=True)
    directory.chmod(0o755)


def test_a_working_directory_that_cannot_hold_runinfo_is_refused_before_anything_runs(tmp_path, read_only_dir):
    inp = tmp_path / "dimer.json"
    inp.write_text(json.dumps(mbe_input(2)))
    cache = tmp_path / "cache"
    args = ["run", str(inp), "--preset", "threads", "--out", str(tmp_path / "dimer.result.json"), "-q"]
    env = {**os.environ, "QCMB_PARSL_CACHE_DIR": str(cache)}
    refused = subprocess.run(
        [sys.executable, "-m", "qcmb_parsl", *args], cwd=read_only_dir, env=env, capture_output=True, text=True
    )
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip() == (
        f"qcmb-parsl: error: Parsl's run directory 'runinfo' cannot be written here: {str(read_only_dir)!r} is "
        "read-only; run from a directory you can write, or give the run directory elsewhere "
        "(option run_dir, --option run_dir=DIR)"
    )
    assert not (cache / "cache.db").exists(), "nothing was computed"
    elsewhere = ["--option", f"run_dir={tmp_path / 'runs'}"]
    ran = subprocess.run(
        [sys.executable, "-m", "qcmb_parsl", *args, *elsewhere],
        cwd=read_only_dir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "runs" / "000" / "parsl.log").is_file()


@pytest.mark.fast
def test_runinfo_keeps_the_newest_sessions_and_what_is_not_a_session(tmp_path):
    run_dir = tmp_path / "runinfo"
    long_ago = time.time() - 3600
    for number in range(12):
        log = run_dir / f"{number:03d}" / "parsl.log"
        log.parent.mkdir(parents=True)
        log.write_text("")
        if number != 3:  # 003 is another driver's session, still writing its log
            os.utime(log, (long_ago, long_ago))
    (run_dir / "monitoring.db").write_text("")
    prune_run_dirs(str(run_dir), keep=5)
    assert sorted(entry.name for entry in run_dir.iterdir()) == ["003", "008", "009", "010", "011", "monitoring.db"]
    with pytest.raises(ConfigurationError, match="keep_runs"):
        ParslExecutor("threads", keep_runs=0)


@pytest.mark.fast
def test_a_block_script_killed_outright_leaves_no_directory_once_its_run_ends(private_tmpdir, monkeypatch):
    """A bounded stop SIGKILLs a block's script when its grace is over, and its EXIT trap never runs:
    the run's end removes the directory the script made, and leaves another run's alone. (A short
    ``$TMPDIR``: below pytest's ``tmp_path`` there is no room for a block's directory.)"""
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmpdir))
    environment = {**os.environ, "TMPDIR": str(private_tmpdir)}
    for token in ("this-run", "another-run"):
        script = f'{block_init(token)}\nmkdir "$TMPDIR/pymp-x"\nkill -KILL $$'
        subprocess.run(["bash", "-c", script], env=environment, check=False, timeout=30)
    left = {path.name: (path / BLOCK_MARK).read_text().strip() for path in private_tmpdir.iterdir()}
    assert sorted(left.values()) == ["another-run", "this-run"], left
    end_run("this-run", [])
    assert [(path / BLOCK_MARK).read_text().strip() for path in private_tmpdir.iterdir()] == ["another-run"]


def test_leaving_with_ends_the_fragment_template():
    """Closed means closed: the template (about 170 MiB) that ran fragments in this process ends
    (threads here; the sequential executor leaves its ``with`` the same way)."""
    mbin = mbe_input(2, bsse_type=["nocp"], max_nbody=1)
    with ParslExecutor("threads", max_workers=1, cache=False, progress=False) as executor:
        ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
        held = [p for p in psutil.Process().children() if TEMPLATE in " ".join(p.cmdline())]
        assert held, "the fragments ran in a template of this process"
    assert not still_alive({p.pid for p in held}, 30)
