"""Trusted execution on real runs: every engine in its own process, hard limits, clean stops, no orphans.

Each fault is produced for real: engine processes killed with SIGKILL, fragments that outgrow their
memory or their time, drivers stopped with SIGINT, SIGTERM and SIGKILL in a subprocess.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from drivers import (
    as_in_a_terminal,
    descendants,
    session_processes,
    start_cli,
    still_alive,
    stop_driver,
    wait_for_cached,
    wait_until,
)
from hpc_services import parsl_processes
from molecules import mbe_input

from qcmb_parsl import FailureKind, ManyBodyComputer, ParslExecutor, SequentialExecutor
from qcmb_parsl.cache import FragmentCache
from qcmb_parsl.execution._parsl import lifeline_command
from qcmb_parsl.resources import WorkerResources

TEMPLATE_COMMAND = "qcmb_parsl.execution.isolation.template"
BACKENDS = ["sequential", "threads", "local"]


def make_executor(backend: str, **options):
    if backend == "sequential":
        return SequentialExecutor(**options)
    return ParslExecutor(backend, max_workers=2, progress=False, **{"cache": False, **options})


def templates() -> list[psutil.Process]:
    """The fragment templates of this test session (other sessions on the machine have theirs)."""
    return session_processes(TEMPLATE_COMMAND)


def engine_processes() -> list[psutil.Process]:
    """Fragment processes: children of a template (each computes one fragment)."""
    children = []
    for template in templates():
        try:
            children.extend(p for p in template.children() if p.status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            continue
    return children


def fragment_name(process: psutil.Process) -> str | None:
    """The fragment a process computes now: its working directory is the scratch inside its own
    directory, whose progress record names the job it computes and whose input lists every job it was
    given (one, or a bundle of tiny ones)."""
    try:
        directory = Path(process.cwd()).parent
        index = json.loads((directory / "progress.json").read_text())["index"]
        jobs = json.loads((directory / "input.json").read_text())["jobs"]
        return jobs[index]["atomic_input"]["molecule"].get("name")
    except (OSError, ValueError, KeyError, IndexError, psutil.Error):
        return None


# -- crashes ------------------------------------------------------------------------------------


class EngineKiller(threading.Thread):
    """SIGKILLs the engine process of ``count`` different fragments, once each, as they compute."""

    def __init__(self, count: int):
        super().__init__(daemon=True)
        self.count = count
        self.killed: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while len(self.killed) < self.count and not self.stop.is_set():
            for process in engine_processes():
                name = fragment_name(process)
                if name is not None and name not in self.killed and len(self.killed) < self.count:
                    process.send_signal(signal.SIGKILL)
                    self.killed.append(name)
            time.sleep(0.05)


@pytest.mark.parametrize("backend", BACKENDS)
def test_engines_killed_mid_fragment_are_retried_and_numbers_match_upstream(backend, caplog):
    caplog.set_level(logging.INFO, logger="qcmb_parsl.execution.runner")
    mbin = mbe_input(3, method="mp2", basis="6-31g", bsse_type=["cp"])
    reference = ManyBodyComputer.from_manybodyinput(mbin)
    killer = EngineKiller(count=3)
    with make_executor(backend) as executor:
        killer.start()
        result = ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
    killer.stop.set()
    assert len(killer.killed) == 3
    assert result.return_result == pytest.approx(reference.return_result, abs=1e-9)
    for label, component in result.component_results.items():
        assert component.return_result == pytest.approx(reference.component_results[label].return_result, abs=1e-9)
    attempts = sorted(c.extras["qcmb_parsl"]["attempts"] for c in result.component_results.values())
    assert attempts.count(2) == 3 and attempts.count(1) == len(attempts) - 3, attempts
    retried = [c.extras["qcmb_parsl"] for c in result.component_results.values() if c.extras["qcmb_parsl"]["attempts"] == 2]
    for provenance in retried:  # the crash before the success is on record, and was said at -v
        assert [e["signal"] for e in provenance["earlier_attempts"]] == ["SIGKILL"], provenance
    said = [r.getMessage() for r in caplog.records if "succeeded on attempt 2 after" in r.getMessage()]
    assert len(said) == 3 and all("engine process killed by SIGKILL" in line for line in said), said


def test_engine_killed_twice_is_reported_as_crashed_with_both_attempts():
    """A crash is retried once; a second crash is the fragment's failure, with each attempt's evidence."""
    mbin = mbe_input(2, method="mp2", basis="cc-pvdz", bsse_type=["nocp"], max_nbody=1)
    stop = threading.Event()

    def kill_every_engine() -> None:
        while not stop.is_set():
            for process in engine_processes():
                process.send_signal(signal.SIGKILL)
            time.sleep(0.02)

    killer = threading.Thread(target=kill_every_engine, daemon=True)
    killer.start()
    try:
        report = ManyBodyComputer.from_manybodyinput(mbin, executor=SequentialExecutor(), on_failure="return")
    finally:
        stop.set()
    assert report.failures and all(f.kind is FailureKind.CRASHED for f in report.failures)
    failure = report.failures[0]
    assert failure.attempts == 2 and len(failure.evidence) == 2
    assert all(e.signal == "SIGKILL" for e in failure.evidence)
    assert "killed by SIGKILL" in failure.one_line()


# -- hard limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_timeout_kills_the_engine_and_is_reported_per_fragment(backend):
    mbin = mbe_input(3, method="ccsd(t)", basis="cc-pvdz", bsse_type=["cp"], max_nbody=2)
    timeout = 1.5
    start = time.monotonic()
    with make_executor(backend, timeout_per_task=timeout) as executor:
        report = ManyBodyComputer.from_manybodyinput(mbin, executor=executor, on_failure="return")
        elapsed = time.monotonic() - start
        assert report.failures and all(f.kind is FailureKind.TIMEOUT for f in report.failures), [
            f.one_line() for f in report.failures
        ]
        assert "timed out after 1.5 s (timeout_per_task)" in report.failures[0].one_line()
        assert all(f.attempts == 1 for f in report.failures), "a timeout is not worth repeating"
        assert not engine_processes(), "no engine is still computing"
    n_tasks = report.summary.n_tasks
    workers = 1 if backend == "sequential" else 2
    assert elapsed < n_tasks / workers * (timeout + 1) + 30


@pytest.mark.parametrize("backend", ["sequential", "local"])
def test_fragment_over_its_memory_fails_alone(backend, tmp_path):
    """MP2/cc-pVDZ trimer needs ~70 MiB, its monomers and dimers ~30: a 50 MiB limit fails only it."""
    mbin = mbe_input(3, method="mp2", basis="cc-pvdz", bsse_type=["nocp"])
    reference = ManyBodyComputer.from_manybodyinput(mbe_input(3, method="mp2", basis="cc-pvdz", bsse_type=["nocp"]))
    if backend == "sequential":
        executor = SequentialExecutor(WorkerResources(memory_per_worker=0.05), cache=tmp_path)
    else:
        executor = ParslExecutor("local", max_workers=2, memory_per_worker=0.05, cache_dir=tmp_path, progress=False)
    with executor:
        report = ManyBodyComputer.from_manybodyinput(mbin, executor=executor, on_failure="return")
    assert [f.kind for f in report.failures] == [FailureKind.MEMORY]
    failure = report.failures[0]
    assert failure.label == '["(auto)", [1, 2, 3], [1, 2, 3]]'
    assert "over its limit of 0.05 GiB (memory_per_worker)" in failure.one_line()
    assert report.summary.n_failed == 1 and len(FragmentCache(tmp_path)) == len(report.results) - 1
    for label, result in report.results.items():
        if result.success:
            reference_energy = reference.component_results[label].return_result
            assert result.result["return_result"] == pytest.approx(reference_energy, abs=1e-9)


def test_threads_give_every_fragment_its_own_process_wide_settings(tmp_path):
    """PySCF's harness is not thread safe (process-wide temporary directory, threads): under the
    threads preset each fragment still runs alone in its own process (bundles of tiny fragments
    turned off here: they share one process, one fragment after another), so CCSD(T) scratch files of
    fragments side by side never meet."""
    mbin = mbe_input(2, method="ccsd(t)", basis="6-31g", bsse_type=["cp", "nocp"])
    reference = ManyBodyComputer.from_manybodyinput(mbin)
    with ParslExecutor(
        "threads", max_workers=2, cache=False, progress=False, scratch_directory=str(tmp_path), bundle_seconds=0
    ) as ex:
        result = ManyBodyComputer.from_manybodyinput(mbin, executor=ex)
    assert result.return_result == pytest.approx(reference.return_result, abs=1e-9)
    pids = {c.extras["qcmb_parsl"]["engine_pid"] for c in result.component_results.values()}
    assert len(pids) == len(result.component_results) and os.getpid() not in pids
    assert not list(tmp_path.iterdir()), "each fragment's private directory is removed"


# -- stopping the driver ---------------------------------------------------------------------------


def _write_input(directory: Path) -> Path:
    path = directory / "trimer.json"
    path.write_text(json.dumps(mbe_input(3, method="mp2", basis="cc-pvdz", bsse_type=["cp", "nocp"])))
    return path


@pytest.mark.parametrize(
    ("preset", "signum"),
    [("threads", signal.SIGINT), ("threads", signal.SIGHUP), ("local", signal.SIGINT), ("local", signal.SIGTERM)],
    ids=["threads-SIGINT", "threads-SIGHUP", "local-SIGINT", "local-SIGTERM"],
)
def test_stopped_driver_keeps_finished_fragments_and_a_rerun_does_the_rest(preset, signum, tmp_path, private_tmpdir):
    """SIGHUP (a closed terminal) is a stop like SIGTERM; no stop leaves anything in $TMPDIR."""
    cache, tmp = tmp_path / "cache", private_tmpdir
    inp = _write_input(tmp_path)
    args = ["run", str(inp), "--preset", preset, "--workers", "1", "--progress", "log"]
    driver = start_cli(args, tmp_path, cache, TMPDIR=str(tmp))
    try:
        wait_for_cached(cache, 3)
        processes = descendants(driver.pid)
        sent = time.monotonic()
    finally:
        # Ctrl-C in a terminal reaches every process of the foreground group; kill or timeout the driver.
        stderr = stop_driver(driver, signum, 60, group=signum == signal.SIGINT)
    took = time.monotonic() - sent
    assert driver.returncode == 128 + signum, stderr
    assert took < 10, f"stopping took {took:.1f} s"
    last = stderr.strip().splitlines()[-1]
    with FragmentCache(cache) as opened:
        kept = len(opened)
    assert last.startswith(f"qcmb-parsl: stopped by {signal.Signals(signum).name}: {kept} of 13 fragments"), stderr
    assert "running the same command again resumes" in last
    assert not still_alive(processes, 60), "no interchange, worker pool, template or engine left"
    wait_until(lambda: not list(tmp.iterdir()), 60, f"$TMPDIR as it was: {list(tmp.iterdir())}")

    rerun = subprocess.run(
        [sys.executable, "-m", "qcmb_parsl", "run", str(inp), "--preset", "threads", "-q"],
        cwd=tmp_path,
        env={**os.environ, "QCMB_PARSL_CACHE_DIR": str(cache)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads((tmp_path / "trimer.result.json").read_text())["extras"]["qcmb_parsl"]
    assert summary["n_cached"] == kept and summary["n_executed"] == 13 - kept


@pytest.mark.parametrize(
    ("preset", "monitoring"), [("threads", []), ("local", ["--monitoring"])], ids=["threads", "local-monitoring"]
)
def test_killed_driver_leaves_nothing_running(preset, monitoring, tmp_path, private_tmpdir):
    """SIGKILL gives the driver no chance to clean up: the interchange, pools, engines and Parsl's
    monitoring processes (its database and router, started by the driver) notice, and the fragments'
    private directories go with them ($TMPDIR as it was)."""
    cache, tmp = tmp_path / "cache", private_tmpdir
    inp = _write_input(tmp_path)
    before = parsl_processes()
    args = ["run", str(inp), "--preset", preset, "--workers", "2", "-q", *monitoring]
    driver = start_cli(args, tmp_path, cache, TMPDIR=str(tmp))
    try:
        wait_for_cached(cache, 2)
        processes = descendants(driver.pid) | {p.pid for p in session_processes("process_worker_pool")}
        if preset == "local":
            assert parsl_processes() - before, "the local preset's interchange and pool are up"
        driver.kill()
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert not still_alive(processes, 60), "interchange, pool, templates and engines exit on their own"
    wait_until(lambda: not list(tmp.iterdir()), 60, f"$TMPDIR as it was: {list(tmp.iterdir())}")


@pytest.mark.fast
def test_lifeline_programs_run_quietly_and_never_outlive_their_driver():
    """The interchange's wrapper and the helpers' guard write nothing to the driver's terminal. A
    wrapper whose driver is gone before it looks starts nothing; one whose driver ends takes its
    command along; neither keeps the driver's output open, so whatever reads it (a pipeline, a
    ``capture_output``) ends with the driver."""
    ended = subprocess.Popen(["true"])
    ended.wait()  # a driver already gone: the guard has nothing to wait for
    for arguments in (["--driver", str(os.getpid()), "true"], ["--guard", str(ended.pid), "no-such-run"]):
        proc = subprocess.run(lifeline_command(*arguments), capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and proc.stderr == "", (arguments, proc.stderr)
    wrapper = " ".join(lifeline_command("--driver", "$$", "sleep", SLEEPER))
    for shell in (f"{wrapper} & exit 0", f"{wrapper} & sleep 1; exit 0"):
        start = time.monotonic()
        subprocess.run(["bash", "-c", shell], capture_output=True, timeout=60)
        assert time.monotonic() - start < 30, f"{shell!r}: its output was held open"
        assert not still_alive({p.pid for p in _sleepers()}, 10), f"{shell!r}: the command outlived the driver"


#: A duration no other process on the machine sleeps for.
SLEEPER = "4321.0987"


def _sleepers() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", SLEEPER]]


def test_stop_on_sequential_path_is_prompt_and_loses_nothing(tmp_path):
    """Ctrl-C in a script using the reference path: the running engine dies with the run."""
    script = tmp_path / "script.py"
    script.write_text(
        "import json, sys\n"
        "from qcmb_parsl import ManyBodyComputer, SequentialExecutor\n"
        f"mbin = json.loads(open({str(_write_input(tmp_path))!r}).read())\n"
        f"executor = SequentialExecutor(cache={str(tmp_path / 'cache')!r})\n"
        "try:\n"
        "    ManyBodyComputer.from_manybodyinput(mbin, executor=executor)\n"
        "except KeyboardInterrupt as stop:\n"
        "    print(stop, file=sys.stderr)\n"
        "    sys.exit(130)\n"
    )
    driver = subprocess.Popen(
        [sys.executable, str(script)], cwd=tmp_path, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=as_in_a_terminal,
    )
    try:
        wait_for_cached(tmp_path / "cache", 2)
        processes = descendants(driver.pid)
    finally:
        stderr = stop_driver(driver, signal.SIGINT, 15)
    assert driver.returncode == 130 and "stopped by SIGINT" in stderr, stderr
    assert not still_alive(processes, 15)
    assert len(FragmentCache(tmp_path / "cache")) >= 2
