"""Results for people: one unit everywhere, blanks explained, replaced files said, where the wall time
went, and progress that a script or a notebook shows without any set-up.

Runs are real: PySCF HF/STO-3G on the water dimer, through the command line in this process (the
``threads`` preset) or a script in a subprocess. Cost: about 15 s on an idle 2-core machine.
"""

from __future__ import annotations

import builtins
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from qcmb_parsl import ManyBodyComputer, SequentialExecutor
from qcmb_parsl.clusters import water_cluster
from qcmb_parsl.execution.progress import BarProgress, LogProgress, make_progress
from qcmb_parsl.frontend.cli import main
from qcmb_parsl.frontend.pictures import describe_workers
from qcmb_parsl.frontend.tables import energy_table
from qcmb_parsl.frontend.units import UNITS, convert, unit_name

ROOT = Path(__file__).resolve().parents[1]
DIMER_XYZ = ROOT / "examples" / "molecules" / "water_dimer.xyz"


def dimer_input(bsse: list[str], **keywords) -> dict:
    return {
        "molecule": water_cluster(2),
        "specification": {
            "specification": {"program": "pyscf", "driver": "energy", "model": {"method": "hf", "basis": "sto-3g"}},
            "keywords": {"bsse_type": bsse, **keywords},
            "driver": "energy",
        },
    }


def rendered(table) -> str:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


@pytest.mark.fast
def test_units_by_their_names_and_nothing_else():
    assert [unit_name(text) for text in ("kcal/mol", "KJ/MOL", "eh", "hartree")] == ["kcal/mol", "kJ/mol", "Eh", "Eh"]
    assert convert(1.0, "kcal/mol") == pytest.approx(627.509474, rel=1e-8)
    assert convert(1.0, "kJ/mol") == pytest.approx(2625.499639, rel=1e-8)
    assert set(UNITS) == {"kcal/mol", "kJ/mol", "Eh"}
    with pytest.raises(ValueError, match="unknown energy unit 'ev': choose kcal/mol, kJ/mol, Eh"):
        unit_name("ev")


@pytest.mark.fast
@pytest.mark.parametrize("command", ["run x.json", "campaign x.json", "report x.json"])
def test_a_bad_unit_is_one_line_and_exit_2(command, capsys):
    assert main([*command.split(), "--units", "ev"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--units" in err and "'ev'" in err


def test_blank_cp_total_is_explained():
    with SequentialExecutor() as executor:
        cp_only = ManyBodyComputer.from_manybodyinput(dimer_input(["cp"]), executor=executor)
    text = rendered(energy_table(cp_only))
    assert "CP interaction (kcal/mol)" in text and "CP total (Eh)" in text
    assert "CP total left blank" in text and "return_total_data" in text and "--total-energies" in text
    ie = cp_only.properties.cp_corrected_interaction_energy
    assert f"{convert(ie, 'kcal/mol'):.4f}" in text
    assert f"{convert(ie, 'kJ/mol'):.4f}" in rendered(energy_table(cp_only, "kJ/mol"))


def test_run_says_units_startup_and_a_replaced_result(tmp_path, capsys):
    xyz = tmp_path / "dimer.xyz"
    xyz.write_text(DIMER_XYZ.read_text())
    args = ["run", str(xyz), "--method", "hf", "--basis", "sto-3g", "--preset", "threads", "--workers", "2",
            "--no-cache", "--quiet"]
    assert main(args) == 0
    first = capsys.readouterr()
    assert "CP interaction (kcal/mol)" in first.out and "CP total left blank" in first.out
    assert "s start-up (Parsl, 2 workers and their engine templates)" in first.out
    assert "s computing fragments (" in first.out and "replaced" not in first.err

    assert main([*args, "--units", "Eh", "--total-energies"]) == 0
    second = capsys.readouterr()
    assert "CP interaction (Eh)" in second.out and "left blank" not in second.out
    assert f"replaced earlier result {tmp_path / 'dimer.result.json'}" in second.err
    assert f"replaced earlier result {tmp_path / 'dimer.input.json'}" in second.err
    run = json.loads((tmp_path / "dimer.result.json").read_text())["extras"]["qcmb_parsl"]
    computed = [r["extras"]["qcmb_parsl"] for r in json.loads((tmp_path / "dimer.result.json").read_text())[
        "cluster_results"].values()]
    first_engine = min(p["started"] for p in computed)
    assert run["startup_time"] == pytest.approx(first_engine - run["started"], abs=1e-6)
    assert run["engine_time"] == pytest.approx(sum(p["wall_time"] for p in computed), abs=1e-6)
    assert run["workers"] == 2 and 0 < run["fragments_time"] <= run["wall_time"]


@pytest.mark.fast
def test_timeline_title_counts_workers_not_rows():
    assert describe_workers(["vm:10"]) == "1 worker"
    assert describe_workers(["vm:10", "vm:11"]) == "2 workers"
    assert describe_workers(["vm:10 #1", "vm:10 #2"]) == "2 lanes of 1 worker"


SCRIPT = """
import sys
from qcmb_parsl import ManyBodyComputer, ParslExecutor
from qcmb_parsl.clusters import water_cluster

mbin = {"molecule": water_cluster(2), "specification": {"specification": {"program": "pyscf",
        "driver": "energy", "model": {"method": "hf", "basis": "sto-3g"}}, "keywords": {"bsse_type": ["cp"]},
        "driver": "energy"}}
for progress in (False, "auto"):
    print(f"progress={progress}", file=sys.stderr)
    with ParslExecutor("threads", max_workers=2, cache=False, progress=progress) as executor:
        ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
print("done")
"""


def test_a_script_without_logging_shows_progress_on_stderr(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == "done\n", proc.stderr
    quiet, shown = proc.stderr.split("progress=auto\n")
    assert quiet == "progress=False\n"
    lines = shown.splitlines()
    assert lines[0] == "threads: starting 2 workers…"
    assert lines[-1].startswith("threads: 3/3 fragments done (0 cached, 0 running, 0 failed) after ")


@pytest.mark.fast
def test_log_lines_leave_a_configured_logging_alone(caplog):
    progress = logging.getLogger("qcmb_parsl.progress")
    handlers = list(progress.handlers)
    with caplog.at_level(logging.INFO, logger="qcmb_parsl.progress"):
        display = make_progress("log", 2, "here")
        assert isinstance(display, LogProgress) and progress.handlers == handlers
        display.starting(1)
        display.close()
    assert caplog.messages == ["here: starting 1 worker…"]


class ZMQInteractiveShell:
    """How rich recognises a Jupyter kernel: the class name of ``get_ipython()``."""


@pytest.mark.fast
def test_a_notebook_gets_the_bar_where_rich_can_draw_it(monkeypatch):
    import importlib.util

    monkeypatch.setattr(builtins, "get_ipython", ZMQInteractiveShell, raising=False)
    widgets = importlib.util.find_spec("ipywidgets") is not None
    display = make_progress("auto", 2, "notebook")
    try:
        assert isinstance(display, BarProgress if widgets else LogProgress)
    finally:
        display.close()
