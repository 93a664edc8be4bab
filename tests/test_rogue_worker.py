"""The local preset's channel: a worker pool someone else starts, without the run's keys, gets no task.

Every user of a shared machine can connect to the interchange's port on loopback. The rogue here is
Parsl's own worker pool (``process_worker_pool.py`` of this venv), started with the very command
Parsl would run for a block but without the run's certificates, on a run whose own provider starts
no block, so that only the rogue could take the fragment. As a control, the same rogue against an
unencrypted interchange takes the fragment and runs it: the test can tell the difference.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from parsl.config import Config

from qcmb_parsl import ParslExecutor
from qcmb_parsl.execution.app import fragment_app
from qcmb_parsl.presets import build_preset

HELIUM = {
    "molecule": {"symbols": ["He"], "geometry": [0.0, 0.0, 0.0]},
    "driver": "energy",
    "model": {"method": "hf", "basis": "sto-3g"},
}
TASK_CONFIG = {"ncores": 1, "memory": 1.0, "retries": 0}
#: Seconds the rogue has to take the fragment when the channel is encrypted (it takes ~3 s when not).
PATIENCE = 20


def local_without_blocks(encrypted: bool) -> Config:
    """The ``local`` preset's Config, its provider starting no block of its own."""
    config, _ = build_preset("local", max_workers=1)
    executor = config.executors[0]
    executor.encrypted = encrypted
    executor.provider.init_blocks = executor.provider.max_blocks = 0
    return config


def rogue_pool(launch_cmd: str, logdir: Path) -> subprocess.Popen:
    """The worker pool Parsl would start for a block, started by hand without the run's certificates."""
    argv = shlex.split(launch_cmd.format(block_id="rogue"))
    for i, arg in enumerate(argv):
        if arg == "--cert_dir":
            argv[i + 1] = "None"
        elif arg.startswith("--logdir="):
            argv[i] = f"--logdir={logdir}"
    argv = [sys.executable, str(Path(sys.executable).with_name(argv[0])), *argv[1:]]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    for child in psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []:
        child.kill()
    proc.kill()
    proc.wait(timeout=30)


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "control-unencrypted"])
def test_rogue_worker_pool_gets_no_fragment(encrypted: bool, tmp_path: Path) -> None:
    with ParslExecutor(local_without_blocks(encrypted), cache=False, progress=False) as executor:
        assert executor.dfk is not None
        job = {
            "label": "he",
            "program": "pyscf",
            "atomic_input": HELIUM,
            "task_config": TASK_CONFIG,
            "environment": {},
            "workers_per_node": 1,
        }
        future = fragment_app(executor.dfk)(job)
        rogue = rogue_pool(executor.dfk.executors["local"].launch_cmd, tmp_path)
        try:
            if encrypted:
                with pytest.raises(TimeoutError):
                    future.result(timeout=PATIENCE)
                assert not future.done()
            else:
                envelope = future.result(timeout=120)
                rogue_pids = {p.pid for p in psutil.Process(rogue.pid).children(recursive=True)} | {rogue.pid}
                assert envelope["failure"] is None and envelope["provenance"]["pid"] in rogue_pids
        finally:
            stop(rogue)
