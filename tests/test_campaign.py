"""Campaigns: many inputs in one Parsl session, identical fragments computed once, resumable.

Real PySCF and real Parsl (``threads``). The inputs share fragments on purpose: the water dimer with CP
and no-CP, the same dimer with no-CP only (every fragment also in the first), and a trimer (v2) whose
first two waters are that dimer (its no-CP monomers 1, 2 and dimer 1-2 are the dimer's). The campaign
runs end to end the way examples/slurm_campaign.sbatch runs it, in a subprocess.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import qcmanybody.models
import qcmanybody.models.v2
from molecules import mbe_input

from qcmb_parsl import ParslExecutor
from qcmb_parsl.cache import fragment_key
from qcmb_parsl.engines.programs import program_versions
from qcmb_parsl.frontend.campaign import LABEL_SEPARATOR, run_campaign
from qcmb_parsl.frontend.cli import main
from qcmb_parsl.frontend.files import SUMMARY_COLUMNS, load_result, read_input
from qcmb_parsl.schema import detect_input_version, keep_fragment_results

ROOT = Path(__file__).resolve().parents[1]
SBATCH = ROOT / "examples" / "slurm_campaign.sbatch"
ENERGY_TOL = 1e-9

INPUTS = {
    "a_dimer": mbe_input(2, bsse_type=["cp", "nocp"]),  # 5 fragments
    "b_dimer_nocp": mbe_input(2, bsse_type=["nocp"]),  # 3, all of them among a_dimer's
    # 6 fragments, 3 of them among a_dimer's
    "c_trimer_nocp_v2": mbe_input(3, bsse_type=["nocp"], max_nbody=2, schema_version=2),
}
N_TASKS = {"a_dimer": 5, "b_dimer_nocp": 3, "c_trimer_nocp_v2": 6}


def write_inputs(directory: Path, names=tuple(INPUTS)) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / f"{name}.json").write_text(json.dumps(INPUTS[name]))
    return directory


def distinct_fragments(directory: Path) -> int:
    """Distinct fragment calculations over all inputs of ``directory``, by the executor's cache key."""
    keys = set()
    for path in sorted(directory.glob("*.json")):
        tasks = read_input(path).prepare().fragment_tasks()
        versions = program_versions({task.program for task in tasks})
        keys.update(fragment_key(task.program, versions[task.program], task.atomic_input) for task in tasks)
    return len(keys)


def read_summary(path: Path) -> dict[str, dict[str, str]]:
    with path.open() as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == SUMMARY_COLUMNS
        return {Path(row["input"]).stem: row for row in reader}


def campaign_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qcmb_parsl", "campaign", *args],
        cwd=cwd, capture_output=True, text=True, timeout=180, env={**os.environ, "COLUMNS": "160"},
    )


@pytest.fixture(scope="module")
def campaign_run(tmp_path_factory):
    """The campaign as examples/slurm_campaign.sbatch runs it (bash, no Slurm), executor swapped for threads.

    The script runs ``qcmb-parsl campaign`` and then ``qcmb-parsl report`` on every result.
    """
    work = tmp_path_factory.mktemp("campaign")
    write_inputs(work / "inputs")
    env = {
        **os.environ,
        "VENV": str(Path(sys.executable).parent.parent),
        "INPUTS": "inputs",
        "OUT_DIR": "out",
        "EXECUTOR": f"--preset threads --workers 2 --cache-dir {work / 'cache'}",
        "COLUMNS": "160",
    }
    proc = subprocess.run(["bash", str(SBATCH)], cwd=work, env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    return work, proc


def test_campaign_computes_each_distinct_fragment_once(campaign_run):
    work, proc = campaign_run
    rows = read_summary(work / "out" / "campaign_summary.csv")
    assert list(rows) == list(INPUTS)
    assert {row["status"] for row in rows.values()} == {"computed"}
    assert {name: int(row["n_tasks"]) for name, row in rows.items()} == N_TASKS

    executed = sum(int(row["n_executed"]) for row in rows.values())
    shared = sum(int(row["n_shared"]) for row in rows.values())
    assert executed == distinct_fragments(work / "inputs") == 8 < sum(N_TASKS.values())
    assert shared == sum(N_TASKS.values()) - executed == 6
    assert sum(int(row["n_cached"]) for row in rows.values()) == 0
    # every fragment of b_dimer_nocp is also a_dimer's: whichever input it was computed for, once
    assert int(rows["b_dimer_nocp"]["n_shared"]) + int(rows["a_dimer"]["n_shared"]) >= 3
    assert "this session: 14 fragments: 8 computed, 0 from the cache, 6 shared" in proc.stdout

    # each input's result is upstream's, as one run of that input alone gives it (from the cache)
    with ParslExecutor("threads", max_workers=2, cache_dir=work / "cache", progress=False) as executor:
        for name, row in rows.items():
            result = load_result(work / "out" / f"{name}.result.json")
            assert row["result_file"] == str(Path("out") / f"{name}.result.json")
            computer = read_input(work / "inputs" / f"{name}.json").computer_class
            alone = computer.from_manybodyinput(INPUTS[name], executor=executor)
            assert alone.extras["qcmb_parsl"]["n_cached"] == N_TASKS[name]
            assert result.return_result == pytest.approx(alone.return_result, abs=ENERGY_TOL)
            assert float(row["return_energy"]) == pytest.approx(alone.return_result, abs=ENERGY_TOL)
            nocp = alone.properties.nocp_corrected_interaction_energy
            assert float(row["nocp_interaction_energy"]) == pytest.approx(nocp, abs=ENERGY_TOL)
            assert row["max_nbody"] == "2"
            run = result.extras["qcmb_parsl"]
            assert {k: str(run[k]) for k in ("n_tasks", "n_cached", "n_executed", "n_shared")} == {
                k: row[k] for k in ("n_tasks", "n_cached", "n_executed", "n_shared")
            }
            assert run["campaign"]["n_tasks"] == 14 and run["input_sha256"]
    trimer = load_result(work / "out" / "c_trimer_nocp_v2.result.json")
    assert isinstance(trimer, qcmanybody.models.v2.ManyBodyResult)
    assert isinstance(load_result(work / "out" / "a_dimer.result.json"), qcmanybody.models.ManyBodyResult)
    cp = float(rows["a_dimer"]["cp_interaction_energy"])
    assert cp < 0 and rows["b_dimer_nocp"]["cp_interaction_energy"] == ""


def test_campaign_resumes(campaign_run, tmp_path):
    work, _ = campaign_run
    shutil.copytree(work / "inputs", tmp_path / "inputs")
    shutil.copytree(work / "out", tmp_path / "out")
    shutil.copytree(work / "cache", tmp_path / "cache")
    kept = tmp_path / "out" / "a_dimer.result.json"
    kept_bytes = kept.read_bytes()
    (tmp_path / "out" / "b_dimer_nocp.result.json").write_text("{}")  # not a valid result: recompute
    (tmp_path / "out" / "c_trimer_nocp_v2.result.json").unlink()  # missing: compute

    proc = campaign_cli("inputs", "--preset", "threads", "--out-dir", "out", "--cache-dir", "cache",
                        cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = read_summary(tmp_path / "out" / "campaign_summary.csv")
    assert [row["status"] for row in rows.values()] == ["skipped", "computed", "computed"]
    assert rows["a_dimer"]["n_executed"] == "5"  # the counts of the run that computed it
    for name in ("b_dimer_nocp", "c_trimer_nocp_v2"):
        assert rows[name]["n_cached"] == rows[name]["n_tasks"] and rows[name]["n_executed"] == "0"
    assert kept.read_bytes() == kept_bytes
    assert "2 computed, 1 skipped" in proc.stdout

    # an edited input is computed again; --force recomputes the rest (all from the cache)
    edited = json.loads(json.dumps(INPUTS["a_dimer"]))
    edited["specification"]["keywords"]["bsse_type"] = ["cp"]
    (tmp_path / "inputs" / "a_dimer.json").write_text(json.dumps(edited))
    argv = ["campaign", str(tmp_path / "inputs"), "--preset", "threads", "--out-dir", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    assert main(argv) == 0
    rows = read_summary(tmp_path / "out" / "campaign_summary.csv")
    assert [row["status"] for row in rows.values()] == ["computed", "skipped", "skipped"]
    assert rows["a_dimer"]["nocp_interaction_energy"] == ""
    assert main([*argv, "--force"]) == 0
    rows = read_summary(tmp_path / "out" / "campaign_summary.csv")
    assert [row["status"] for row in rows.values()] == ["computed"] * 3
    assert all(row["n_cached"] == row["n_tasks"] for row in rows.values())


def test_progress_callback_counts_every_fragment_cache_hits_included(tmp_path):
    inputs = write_inputs(tmp_path / "inputs", ("a_dimer", "b_dimer_nocp"))
    calls: list[tuple[str, int, int]] = []
    with ParslExecutor("threads", max_workers=2, progress=False) as executor:
        first = run_campaign([inputs], executor, tmp_path / "out",
                             progress_callback=lambda *c: calls.append(c))
        assert first.summary.n_executed == 5 and first.summary.n_shared == 3
        assert [completed for _, completed, _ in calls] == list(range(1, 9))
        assert {total for _, _, total in calls} == {8}
        labels = [label for label, _, _ in calls]
        assert len(set(labels)) == 8
        assert {label.split(LABEL_SEPARATOR)[0] for label in labels} == {"a_dimer", "b_dimer_nocp"}

        calls.clear()
        again = run_campaign([inputs], executor, tmp_path / "out", force=True,
                             progress_callback=lambda *c: calls.append(c))
        assert again.summary.n_cached == 8 and again.summary.n_executed == 0
        assert [completed for _, completed, _ in calls] == list(range(1, 9))

        # the one-input API: the same count, cache hits included
        calls.clear()
        from qcmb_parsl import ManyBodyComputer

        result = ManyBodyComputer.from_manybodyinput(INPUTS["a_dimer"], executor=executor,
                                                     progress_callback=lambda *c: calls.append(c))
        assert result.extras["qcmb_parsl"]["n_cached"] == 5
        assert [(completed, total) for _, completed, total in calls] == [(i, 5) for i in range(1, 6)]


def test_failed_input_is_reported_and_the_others_are_written(tmp_path, capsys):
    inputs = write_inputs(tmp_path / "inputs", ("b_dimer_nocp",))
    # valid, but no fragment converges in one SCF cycle
    (inputs / "unconverged.json").write_text(json.dumps(mbe_input(2, keywords={"max_cycle": 1})))
    argv = ["campaign", str(inputs), "--preset", "threads", "--out-dir", str(tmp_path / "out"), "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("qcmb-parsl: error: 1 of 2 inputs failed") and "unconverged.json" in err[-1]
    rows = read_summary(tmp_path / "out" / "campaign_summary.csv")
    assert rows["unconverged"]["status"] == "failed" and "fragments failed" in rows["unconverged"]["error"]
    assert rows["unconverged"]["result_file"] == "" and rows["unconverged"]["n_failed"] == "3"
    assert rows["b_dimer_nocp"]["status"] == "computed"
    assert sorted(p.name for p in (tmp_path / "out").glob("*.result.json")) == ["b_dimer_nocp.result.json"]


def test_planted_symlinks_in_the_output_directory_are_never_followed(campaign_run, tmp_path):
    """Someone who can write into the output directory plants links named like our files; the
    campaign replaces the links with its own files and never writes into what they point at."""
    work, _ = campaign_run
    shutil.copytree(work / "inputs", tmp_path / "inputs")
    shutil.copytree(work / "cache", tmp_path / "cache")
    out = tmp_path / "out"
    out.mkdir()
    planted = ["a_dimer.result.json.partial", "campaign_summary.csv.partial", "b_dimer_nocp.result.json",
               "campaign_summary.csv"]
    for name in planted:
        (tmp_path / f"victim-{name}").write_text("precious")
        (out / name).symlink_to(tmp_path / f"victim-{name}")

    proc = campaign_cli("inputs", "--preset", "threads", "--out-dir", "out", "--cache-dir", "cache", "--quiet",
                        cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [(tmp_path / f"victim-{name}").read_text() for name in planted] == ["precious"] * len(planted)
    rows = read_summary(out / "campaign_summary.csv")
    assert {row["status"] for row in rows.values()} == {"computed"}
    for name in INPUTS:
        path = out / f"{name}.result.json"
        assert path.is_file() and not path.is_symlink()
        expected = load_result(work / "out" / f"{name}.result.json").return_result
        assert load_result(path).return_result == pytest.approx(expected, abs=ENERGY_TOL)
    assert not (out / "campaign_summary.csv").is_symlink()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_unusable_output_places_stop_the_campaign_before_it_computes(tmp_path):
    write_inputs(tmp_path / "inputs", ("b_dimer_nocp",))
    (tmp_path / "a-file").write_text("")
    proc = campaign_cli("inputs", "--preset", "local", "--out-dir", "a-file", "--cache-dir", "cache", cwd=tmp_path)
    assert proc.returncode == 2 and "output directory 'a-file' is a file" in proc.stderr, proc.stderr
    (tmp_path / "out" / "b_dimer_nocp.result.json").mkdir(parents=True)
    proc = campaign_cli("inputs", "--preset", "local", "--out-dir", "out", "--cache-dir", "cache", cwd=tmp_path)
    assert proc.returncode == 2 and "b_dimer_nocp.result.json' is a directory" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runinfo").exists()  # Parsl never started


@pytest.mark.fast
def test_schema_version_detection():
    v1, v2 = mbe_input(2), mbe_input(2, schema_version=2)
    assert detect_input_version(v1) == 1  # component_results protocol
    assert detect_input_version(v2) == 2  # cluster_results protocol
    bare = json.loads(json.dumps(v1))
    del bare["specification"]["protocols"]
    assert detect_input_version(bare) == 1  # no marker: validates as v1
    assert detect_input_version({**bare, "schema_version": 2}) == 2
    spec_v2 = {**bare, "specification": {**bare["specification"], "schema_version": 2}}
    assert detect_input_version(spec_v2) == 2
    named = json.loads(json.dumps(bare))
    named["specification"]["specification"]["schema_name"] = "qcschema_atomic_specification"
    assert detect_input_version(named) == 2
    only_v2 = json.loads(json.dumps(bare))
    only_v2["specification"]["program"] = ""  # a field only v2's ManyBodySpecification has
    assert detect_input_version(only_v2) == 2


@pytest.mark.fast
def test_fragment_results_protocol_is_added_not_overridden():
    bare = mbe_input(2)
    del bare["specification"]["protocols"]
    assert keep_fragment_results(bare, 1)["specification"]["protocols"] == {"component_results": "all"}
    assert keep_fragment_results(bare, 2)["specification"]["protocols"] == {"cluster_results": "all"}
    assert "protocols" not in bare["specification"]  # the caller's dict is left alone
    explicit = mbe_input(2)
    explicit["specification"]["protocols"] = {"component_results": "none"}
    assert keep_fragment_results(explicit, 1)["specification"]["protocols"] == {"component_results": "none"}


def test_slurm_example_script_and_its_pictures(campaign_run):
    work, proc = campaign_run
    text = SBATCH.read_text()
    assert text.startswith("#!/bin/bash\n") and "#SBATCH --time=" in text and "#SBATCH --account=" in text
    assert "qcmb-parsl campaign" in text and "--config site.yaml" in text
    pictures = sorted(p.name for p in (work / "out").glob("*.png"))
    assert pictures == sorted(f"{name}_{kind}.png" for name in INPUTS for kind in ("timeline", "convergence"))
    for path in (work / "out").glob("*.png"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    assert "timeline: out/a_dimer_timeline.png" in proc.stdout


@pytest.mark.fast
def test_example_inputs_are_valid_and_share_fragments():
    inputs = ROOT / "examples" / "inputs"
    files = sorted(inputs.glob("*.json"))
    assert len(files) == 3
    versions = {path.stem: read_input(path).schema_version for path in files}
    assert versions == {"water_dimer": 1, "water_trimer_nocp": 1, "water_trimer_cp_v2": 2}
    n_tasks = sum(len(read_input(path).prepare().fragment_tasks()) for path in files)
    assert distinct_fragments(inputs) < n_tasks
