"""A stop before the run loop: while a command or a call imports, reads its files or plans.

Planning 10^5 fragments takes half a minute, and a batch system's SIGTERM or a user's Ctrl-C can come
then as well as during the run. It must end the same way as a stop during the run: one line, the
signal's exit status, and nothing written. The drivers here are real processes stopped by real
signals; to stop them at a known moment, one of the package's own steps (reading an input, planning
the fragments) is wrapped to say it has begun and wait there for the signal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from drivers import as_in_a_terminal
from molecules import mbe_input, water_xyz

from qcmb_parsl import ManyBodyComputer, RunInterrupted
from qcmb_parsl.execution.stops import stop_before_run, stop_on_signals

#: A driver whose step ``TARGET`` (module, attribute) says ``paused`` and waits for a signal.
DRIVER = """
import signal, sys
from importlib import import_module
module, name = sys.argv[1].rsplit(".", 1)
target = import_module(module)
real = getattr(target, name)
def paused(*args, **kwargs):
    print("paused", flush=True)
    signal.pause()
    return real(*args, **kwargs)
setattr(target, name, paused)
from qcmb_parsl.frontend.cli import main
sys.exit(main(sys.argv[2:]))
"""
MODEL = ["--method", "hf", "--basis", "sto-3g", "--preset", "threads"]
STOP_TIMEOUT = 60


def optimization_input() -> dict:
    """The water dimer's OptimizationInput: the many-body specification of its ManyBodyInput."""
    dimer = mbe_input(2, bsse_type=["nocp"], max_nbody=2, schema_version=2)
    return {"initial_molecule": dimer["molecule"], "specification": {"specification": dimer["specification"]}}


def stop_at(step: str, signum: int, args: list[str], cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    """Start ``qcmb-parsl ARGS`` in ``cwd`` with ``step`` paused, send ``signum`` once it is there, and
    wait."""
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, step, *args],
        cwd=cwd,
        env={**os.environ, "QCMB_PARSL_CACHE_DIR": str(cache)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_in_a_terminal,
    )
    try:
        assert driver.stdout is not None
        first = driver.stdout.readline()
        assert first == "paused\n", f"{first!r}, exit status {driver.wait()}: {driver.stderr.read()}"
        driver.send_signal(signum)
        stdout, stderr = driver.communicate(timeout=STOP_TIMEOUT)
    finally:
        if driver.poll() is None:
            driver.kill()
    return subprocess.CompletedProcess(driver.args, driver.returncode, first + stdout, stderr)


@pytest.mark.fast
@pytest.mark.parametrize(
    ("command", "step", "signum"),
    [
        ("run-xyz", "qcmb_parsl.computer.plan_tasks", signal.SIGTERM),
        ("run-json", "qcmb_parsl.frontend.files.read_input", signal.SIGHUP),
        ("campaign", "qcmb_parsl.computer.plan_tasks", signal.SIGINT),
        ("optimize", "qcmb_parsl.optimization.driver.optimization_input", signal.SIGTERM),
    ],
    ids=["run-planning", "run-reading", "campaign-planning", "optimize-reading"],
)
def test_a_stop_before_the_run_loop_is_one_line_and_writes_nothing(command, step, signum, tmp_path):
    """The cache is opened (and checked) before planning, in the user's cache directory: the working
    directory is where a run writes, and it must be as it was."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "dimer.xyz").write_text(water_xyz(2))
    (work / "dimer.json").write_text(json.dumps(mbe_input(2)))
    (work / "opt.json").write_text(json.dumps(optimization_input()))
    args = {
        "run-xyz": ["run", "dimer.xyz", *MODEL],
        "run-json": ["run", "dimer.json", "--preset", "threads"],
        "campaign": ["campaign", "dimer.xyz", "--out-dir", "results", *MODEL],
        "optimize": ["optimize", "opt.json", "--preset", "threads"],
    }[command]
    before = sorted(path.name for path in work.iterdir())

    proc = stop_at(step, signum, args, work, tmp_path / "cache")

    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, proc.stderr
    assert proc.stderr.splitlines() == [
        f"qcmb-parsl: stopped by {name}: nothing was computed yet and nothing was written; running the "
        "same command again starts from the beginning"
    ]
    assert sorted(path.name for path in work.iterdir()) == before  # no input, result, runinfo or out-dir


@pytest.mark.fast
def test_the_api_raises_run_interrupted_for_a_stop_while_planning(monkeypatch, private_cache_dir):
    """In a script, Ctrl-C while an input is planned is the RunInterrupted a stop during the run is."""
    from qcmb_parsl import computer

    real = computer.plan_tasks

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(computer, "plan_tasks", interrupted)
    with pytest.raises(RunInterrupted) as info:
        ManyBodyComputer.from_manybodyinput(mbe_input(2))
    assert info.value.exit_status == 130 and info.value.report is None
    assert str(info.value).startswith("stopped by SIGINT: nothing was computed yet")
    assert not private_cache_dir.exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.fast
def test_the_first_run_loop_takes_the_stop_over_and_gives_the_signals_back():
    """Inside stop_before_run the signals are ours; a run loop inside takes them over, and after it they
    are as they were, so a stop after a run never says that nothing was computed."""
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    with stop_before_run():
        ours = signal.getsignal(signal.SIGTERM)
        assert ours not in (signal.SIG_DFL, None)
        with stop_before_run():  # a call that computes inside a command that does
            assert signal.getsignal(signal.SIGTERM) is ours
        assert signal.getsignal(signal.SIGTERM) is ours
        with stop_on_signals():
            assert signal.getsignal(signal.SIGTERM) is ours
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


@pytest.mark.fast
def test_an_application_handler_stays_in_charge_before_the_run_too():
    def own(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, own)
    try:
        with stop_before_run():
            assert signal.getsignal(signal.SIGTERM) is own
            with stop_on_signals():
                assert signal.getsignal(signal.SIGTERM) is own
        assert signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, previous)
