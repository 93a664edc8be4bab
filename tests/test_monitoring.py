"""Parsl's monitoring database: on with one option on every preset, and each fragment's provenance
names the rows Parsl wrote for it (run id and task id), read back with sqlite3 after real runs."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from molecules import mbe_input
from parsl.monitoring import MonitoringHub

from qcmb_parsl import ManyBodyComputer, ParslExecutor
from qcmb_parsl.frontend.arguments import make_executor
from qcmb_parsl.frontend.cli import build_parser
from qcmb_parsl.presets import PRESETS, parse_options

ROOT = Path(__file__).resolve().parents[1]


def fragment_provenance(result: Any) -> dict[str, dict[str, Any]]:
    return {label: c.extras["qcmb_parsl"] for label, c in result.component_results.items()}


def task_rows(database: Path, run_id: str) -> dict[int, tuple[str, str]]:
    """task_id -> (app name, last state) of one run, from Parsl's own tables."""
    with sqlite3.connect(database) as db:
        names = dict(db.execute("SELECT task_id, task_func_name FROM task WHERE run_id = ?", (run_id,)))
        states = db.execute(
            "SELECT task_id, task_status_name FROM status WHERE run_id = ? ORDER BY timestamp", (run_id,)
        ).fetchall()
    last = dict(states)  # later rows overwrite earlier ones
    return {task: (name, last.get(task, "")) for task, name in names.items()}


@pytest.mark.fast
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_has_the_option_and_it_is_off_by_default(name: str) -> None:
    preset = PRESETS[name]
    plain = preset.config(parse_options(preset.options, preset.file_options, name))
    monitored = preset.config(
        parse_options(preset.options, {**preset.file_options, "monitoring": True}, name)
    )
    assert plain.monitoring is None
    assert isinstance(monitored.monitoring, MonitoringHub)
    assert monitored.monitoring.logging_endpoint is None  # Parsl's default: runinfo/monitoring.db
    monitored.monitoring = None  # and nothing else changes
    assert re.sub(r" at 0x[0-9a-f]+", "", repr(monitored)) == re.sub(r" at 0x[0-9a-f]+", "", repr(plain))


@pytest.mark.fast
@pytest.mark.parametrize("command", ["run", "campaign"])
def test_command_line_flag_turns_it_on(command: str) -> None:
    args = build_parser().parse_args([command, "input.json", "--preset", "threads", "--monitoring", "-q"])
    assert make_executor(args).options.monitoring is True
    args = build_parser().parse_args([command, "input.json", "--preset", "threads", "-q"])
    assert make_executor(args).options.monitoring is False


def test_one_done_task_row_per_executed_fragment_on_local(tmp_path: Path, monkeypatch) -> None:
    """Water dimer HF/STO-3G CP on the local preset, one app call per fragment (no bundles)."""
    monkeypatch.chdir(tmp_path)
    mbin = mbe_input(2, bsse_type=["cp"])
    with ParslExecutor("local", max_workers=2, monitoring=True, bundle_seconds=0, progress=False) as executor:
        result = ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
        run_directory = Path(executor.dfk.run_dir)
    provenance = fragment_provenance(result)
    assert result.extras["qcmb_parsl"]["n_executed"] == len(provenance) == 3

    (run_id,) = {p["parsl_run_id"] for p in provenance.values()}
    database = tmp_path / "runinfo" / "monitoring.db"
    assert run_directory.parent == database.parent
    rows = task_rows(database, run_id)
    assert sorted(rows) == sorted(p["parsl_task_id"] for p in provenance.values())
    assert set(rows.values()) == {("compute_fragment", "exec_done")}
    with sqlite3.connect(database) as db:
        ((rundir, completed),) = db.execute(
            "SELECT rundir, tasks_completed_count FROM workflow WHERE run_id = ?", (run_id,)
        ).fetchall()
    assert (Path(rundir), completed) == (run_directory, 3)


def test_config_file_without_a_hub_gets_one(tmp_path: Path, monkeypatch) -> None:
    """The option on a Parsl config file (here the threads preset's own file): the same rows, and a
    cache hit keeps the run and task ids of the run that computed it."""
    monkeypatch.chdir(tmp_path)
    source = ROOT / "parsl_configs" / "threads.py"
    mbin = mbe_input(2, bsse_type=["nocp"], max_nbody=1)
    with ParslExecutor(source, max_workers=1, monitoring=True, progress=False) as executor:
        first = fragment_provenance(ManyBodyComputer.from_manybodyinput(mbin, executor=executor))
        second = fragment_provenance(ManyBodyComputer.from_manybodyinput(mbin, executor=executor))
    (run_id,) = {p["parsl_run_id"] for p in first.values()}
    rows = task_rows(tmp_path / "runinfo" / "monitoring.db", run_id)
    assert rows == {p["parsl_task_id"]: ("compute_fragment", "exec_done") for p in first.values()}
    assert len(rows) == len(first) == 2
    assert {p["cache"] for p in second.values()} == {"hit"}
    ids = {label: (p["parsl_run_id"], p["parsl_task_id"]) for label, p in first.items()}
    assert {label: (p["parsl_run_id"], p["parsl_task_id"]) for label, p in second.items()} == ids
