"""The ``qcmb-parsl`` command end to end: real PySCF, real Parsl executors, subprocesses where it matters.

Subprocesses run with the working directory in a temporary directory (Parsl writes ``runinfo`` there)
and inherit the environment, so ``QCMB_PARSL_CACHE_DIR`` from the autouse fixture applies unless a
test passes ``--cache-dir``. Cheap checks (help texts, cache and presets commands, error lines) call
:func:`qcmb_parsl.frontend.cli.main` in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import qcmanybody.models
import qcmanybody.models.v2
from components import require
from drivers import run_cli
from molecules import mbe_input

from qcmb_parsl import ManyBodyComputer
from qcmb_parsl.frontend.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPT = Path(sys.executable).with_name("qcmb-parsl")
ENERGY_TOL = 1e-9
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_one_line_error(stderr: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("qcmb-parsl: error: "), stderr
    assert "Traceback" not in stderr


def assert_png(path: Path) -> None:
    from matplotlib.image import imread

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000, path
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def dimer_input() -> dict:
    """Water dimer HF/STO-3G, CP and no-CP, without protocols: the CLI must add component_results."""
    data = mbe_input(2, bsse_type=["cp", "nocp"])
    del data["specification"]["protocols"]
    return data


@pytest.fixture(scope="module")
def dimer_run(tmp_path_factory):
    """``qcmb-parsl run`` of the dimer on the ``local`` preset (worker processes), fresh cache."""
    work = tmp_path_factory.mktemp("cli_run")
    cache = work / "cache"
    (work / "dimer.json").write_text(json.dumps(dimer_input()))
    proc = run_cli("run", "dimer.json", "--preset", "local", "--workers", "1", "--cache-dir", str(cache),
               cwd=work)
    assert proc.returncode == 0, proc.stderr
    return work, cache, proc


def test_run_writes_the_result_upstream_computes(dimer_run):
    work, cache, proc = dimer_run
    result_path = work / "dimer.result.json"
    assert f"result: {result_path.name}" in proc.stdout
    result = qcmanybody.models.ManyBodyResult.parse_file(result_path)
    assert result.success
    reference = ManyBodyComputer.from_manybodyinput(dimer_input())  # sequential, in this process
    np.testing.assert_allclose(result.return_result, reference.return_result, atol=ENERGY_TOL, rtol=0)
    ours, ref = result.properties.dict(), reference.properties.dict()
    for name, value in ref.items():
        if isinstance(value, float):
            assert ours[name] == pytest.approx(value, abs=ENERGY_TOL), name

    run = result.extras["qcmb_parsl"]
    assert run["executor"] == "local"
    assert run["n_tasks"] == run["n_executed"] == 5 and run["n_cached"] == 0
    assert run["cache_dir"] == str(cache)
    # the CLI kept the fragment results, each with where it ran
    assert len(result.component_results) == 5
    provenance = [c.extras["qcmb_parsl"] for c in result.component_results.values()]
    assert {p["cache"] for p in provenance} == {"miss"}
    assert all(p["pid"] != os.getpid() for p in provenance)
    # the summary table: both BSSE treatments and the counts
    assert "CP interaction" in proc.stdout and "no-CP interaction" in proc.stdout
    assert "5 fragments: 5 computed, 0 from the cache" in proc.stdout


def test_second_run_is_all_cache_hits_and_report_draws_it(dimer_run, tmp_path, capsys):
    work, cache, _ = dimer_run
    proc = run_cli("run", "dimer.json", "--preset", "threads", "--cache-dir", str(cache), "--out", "again.json",
               cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "5 fragments: 0 computed, 5 from the cache" in proc.stdout
    again = qcmanybody.models.ManyBodyResult.parse_file(work / "again.json")
    assert again.extras["qcmb_parsl"]["n_cached"] == 5
    first = qcmanybody.models.ManyBodyResult.parse_file(work / "dimer.result.json")
    assert again.return_result == first.return_result

    # (`report` runs end to end in a subprocess in test_campaign, from the Slurm example script)
    results = [str(work / "dimer.result.json"), str(work / "again.json")]
    assert main(["report", *results, "--out-dir", str(tmp_path)]) == 0
    assert f"timeline: {tmp_path / 'dimer_timeline.png'}" in capsys.readouterr().out
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    kinds = ("convergence", "timeline")
    assert names == [f"{stem}_{kind}.png" for stem in ("again", "dimer") for kind in kinds]
    for path in tmp_path.glob("*.png"):
        assert_png(path)


@pytest.mark.fast
def test_missing_input_is_one_line_and_exit_2(tmp_path):
    """Through the console script ``pip install -e .`` installed."""
    assert SCRIPT.is_file(), f"{SCRIPT} is missing: `pip install -e .` installs the console script"
    proc = subprocess.run([str(SCRIPT), "run", "missing.json", "--preset", "threads"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr)
    assert "missing.json" in proc.stderr and "does not exist" in proc.stderr


@pytest.mark.fast
def test_bad_inputs_and_options_are_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "malformed.json").write_text('{"molecule": ')
    invalid = dimer_input()
    del invalid["specification"]["keywords"]
    (tmp_path / "invalid.json").write_text(json.dumps(invalid))
    (tmp_path / "dimer.json").write_text(json.dumps(dimer_input()))
    cases = [
        (["run", str(tmp_path / "malformed.json")], "not valid JSON"),
        (["run", str(tmp_path / "invalid.json"), "--preset", "threads"], "keywords"),
        (["campaign", str(tmp_path / "dimer.json"), str(tmp_path / "malformed.json"), "--preset", "threads",
          "--out-dir", str(tmp_path / "out")], "malformed.json"),
        (["run", str(tmp_path / "dimer.json"), "--preset", "nonesuch"], "unknown preset 'nonesuch'"),
        (["run", str(tmp_path / "dimer.json"), "--preset", "threads", "--option", "colour=red"], "colour"),
        (["run", str(tmp_path / "dimer.json"), "--config", str(tmp_path / "none.py")], "does not exist"),
        (["run", str(tmp_path / "dimer.json"), "--frobnicate"], "unrecognized arguments"),
        (["cache", "invalidate"], "give --program, --method or --input"),
        (["report", str(tmp_path / "dimer.json")], "ManyBodyResult"),
    ]
    for argv, reason in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert_one_line_error(err)
        assert reason in err, (argv, err)
    assert not (tmp_path / "out").exists()  # nothing ran: every input is checked first

    assert main(["run", str(tmp_path / "invalid.json"), "--preset", "threads", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("qcmb-parsl: error: ")


@pytest.mark.fast
def test_settings_that_are_not_preset_options_are_refused_by_name(tmp_path):
    (tmp_path / "dimer.json").write_text(json.dumps(dimer_input()))
    options = ["cache_dir=elsewhere", "progress=log", "config=local", "max_retries=5"]
    proc = run_cli("run", "dimer.json", "--preset", "threads", *(f"--option={o}" for o in options), cwd=tmp_path)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr)
    for named in ("cache_dir (use --cache-dir)", "progress (use --progress or --quiet)",
                  "config (use --config or --preset)", "max_retries"):
        assert named in proc.stderr
    assert "not a preset option" in proc.stderr and not (tmp_path / "dimer.result.json").exists()


@pytest.mark.fast
def test_option_with_a_line_break_never_reaches_a_batch_script(tmp_path):
    (tmp_path / "dimer.json").write_text(json.dumps(dimer_input()))
    proc = run_cli("run", "dimer.json", "--preset", "slurm", "--option", "partition=debug\n#SBATCH --qos=high",
               cwd=tmp_path)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr)
    assert "preset 'slurm': partition: must be one line" in proc.stderr


@pytest.mark.fast
def test_directory_as_out_is_refused_before_anything_runs(tmp_path):
    (tmp_path / "dimer.json").write_text(json.dumps(dimer_input()))
    (tmp_path / "results").mkdir()
    proc = run_cli("run", "dimer.json", "--preset", "local", "--out", "results", "--cache-dir", "cache", cwd=tmp_path)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr)
    assert "result file 'results' is a directory" in proc.stderr
    assert not (tmp_path / "runinfo").exists()  # Parsl never started
    assert not (tmp_path / "cache").exists()  # nor was the cache opened
    assert list(tmp_path.rglob("*.partial")) == [] and list((tmp_path / "results").iterdir()) == []


def test_result_replaces_a_symlink_and_never_writes_through_it(dimer_run, tmp_path):
    work, cache, _ = dimer_run
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "linked.json"
    out.symlink_to(victim)
    (tmp_path / ".linked.json.partial").symlink_to(victim)  # a guess at our temporary name
    proc = run_cli("run", str(work / "dimer.json"), "--preset", "threads", "--cache-dir", str(cache),
               "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "precious"
    assert out.is_file() and not out.is_symlink()
    first = qcmanybody.models.ManyBodyResult.parse_file(work / "dimer.result.json")
    assert qcmanybody.models.ManyBodyResult.parse_file(out).return_result == first.return_result
    assert sorted(p.name for p in tmp_path.iterdir()) == [".linked.json.partial", "linked.json", "victim.txt"]


def _cli_with_full_output_dir(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``python -m qcmb_parsl ARGS`` with ``cwd/full`` a 4 KiB tmpfs of its own (a mount namespace
    of the process): the result does not fit there, as on a file system over quota."""
    (cwd / "full").mkdir()
    script = 'mount -t tmpfs -o size=4k tmpfs full && exec "$0" -m qcmb_parsl "$@"'
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, sys.executable, *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "160", **env},
    )


def _require_unshare() -> None:
    probe = shutil.which("unshare") and subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True, timeout=30
    )
    require(bool(probe) and probe.returncode == 0, "unshare --user --mount is not available here")


def test_result_that_cannot_be_written_says_where_the_work_is(dimer_run, tmp_path):
    _require_unshare()
    work, _, _ = dimer_run
    first = qcmanybody.models.ManyBodyResult.parse_file(work / "dimer.result.json")
    (tmp_path / "dimer.json").write_text(json.dumps(dimer_input()))

    # with the cache: its fragments are there, and a rerun computes nothing
    proc = _cli_with_full_output_dir("run", "dimer.json", "--preset", "threads", "--cache-dir", "cache", "--quiet",
                                     "--out", "full/dimer.result.json", cwd=tmp_path, env={})
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr)
    assert "cannot write result file 'full/dimer.result.json'" in proc.stderr
    assert "No space left on device" in proc.stderr and f"in the cache {tmp_path / 'cache'}" in proc.stderr
    again = run_cli("run", "dimer.json", "--preset", "threads", "--cache-dir", "cache", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "5 fragments: 0 computed, 5 from the cache" in again.stdout

    # without a cache: the result goes to the temporary directory, and the message names the file
    (tmp_path / "full").rmdir()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = _cli_with_full_output_dir("run", "dimer.json", "--preset", "threads", "--no-cache", "--quiet",
                                     "--out", "full/dimer.result.json", cwd=tmp_path, env={"TMPDIR": str(scratch)})
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr)
    [kept] = scratch.glob("dimer.*.result.json")
    assert f"the result was written to {kept} instead" in proc.stderr
    result = qcmanybody.models.ManyBodyResult.parse_file(kept)
    np.testing.assert_allclose(result.return_result, first.return_result, atol=ENERGY_TOL, rtol=0)
    assert result.extras["qcmb_parsl"]["n_executed"] == 5


def test_failed_fragments_exit_1(tmp_path, capsys):
    """An SCF that cannot converge in one cycle: valid input, every fragment fails in the engine."""
    (tmp_path / "unconverged.json").write_text(json.dumps(mbe_input(2, keywords={"max_cycle": 1})))
    assert main(["run", str(tmp_path / "unconverged.json"), "--preset", "threads", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert_one_line_error(err)
    assert "fragments failed" in err and "did not converge" in err
    assert not (tmp_path / "unconverged.result.json").exists()


def test_v2_input_is_detected_and_gives_a_v2_result(tmp_path, capsys):
    data = mbe_input(2, schema_version=2)
    del data["specification"]["protocols"]
    data["schema_version"] = 2
    (tmp_path / "v2.json").write_text(json.dumps(data))
    assert main(["run", str(tmp_path / "v2.json"), "--preset", "threads", "--quiet"]) == 0
    text = (tmp_path / "v2.result.json").read_text()
    result = qcmanybody.models.v2.ManyBodyResult.model_validate_json(text)
    assert result.schema_version == 2
    assert len(result.cluster_results) == 3  # the protocol the CLI adds in v2
    assert "CP interaction" in capsys.readouterr().out


@pytest.mark.fast
@pytest.mark.parametrize(
    "command",
    [[], ["run"], ["optimize"], ["campaign"], ["cache"], ["cache", "stats"], ["cache", "list"], ["cache", "invalidate"],
     ["cache", "clear"], ["presets"], ["report"]],
    ids=lambda c: " ".join(c) or "top",
)
def test_help_of_every_command(command, capsys):
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: qcmb-parsl")


def test_cache_commands(dimer_run, tmp_path, capsys):
    work, cache, _ = dimer_run
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    dimer = str(work / "dimer.json")

    assert main(["cache", "stats", "--cache-dir", str(copy)]) == 0
    out = capsys.readouterr().out
    assert f"directory: {copy}" in out and "entries:   5" in out

    assert main(["cache", "list", dimer, "--cache-dir", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "5 of 5 distinct fragments" in out
    assert out.count("pyscf") == 5 and out.count("sto-3g") == 5

    assert main(["cache", "invalidate", "--program", "psi4", "--cache-dir", str(copy)]) == 0
    assert "invalidated 0 entries" in capsys.readouterr().out
    trimer = tmp_path / "trimer.json"
    trimer.write_text(json.dumps(mbe_input(3, bsse_type=["nocp"])))
    assert main(["cache", "list", str(trimer), "--cache-dir", str(copy)]) == 0
    assert "3 of 7 distinct fragments" in capsys.readouterr().out  # the dimer's no-CP fragments
    argv = ["cache", "invalidate", "--input", str(trimer), "--method", "hf", "--cache-dir", str(copy)]
    assert main(argv) == 0
    assert "invalidated 3 entries" in capsys.readouterr().out

    assert main(["cache", "list", "--cache-dir", str(copy)]) == 0
    assert "2 entries in" in capsys.readouterr().out
    assert main(["cache", "clear", "--cache-dir", str(copy)]) == 0
    assert f"cleared 2 entries from {copy}" in capsys.readouterr().out
    assert main(["cache", "stats", "--cache-dir", str(copy)]) == 0
    assert "entries:   0" in capsys.readouterr().out


@pytest.mark.fast
def test_presets_is_a_table_of_what_each_is_for_and_needs(capsys):
    from qcmb_parsl.presets import PRESETS

    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("│ ") and not line.startswith("│  ")]
    assert [row.split("│")[1].strip() for row in rows] == [
        "threads", "local", "mpi", "slurm", "slurm-mpi", "pbspro", "torque", "lsf"
    ]
    assert set(PRESETS) == {row.split("│")[1].strip() for row in rows}
    assert "batch jobs on a Slurm cluster" in out and "Slurm (sbatch, squeue, srun)" in out
    assert "qcmb-parsl presets NAME" in out
    assert "cores_per_worker" not in out, "options are for `presets NAME`"


@pytest.mark.fast
@pytest.mark.parametrize("name", ["threads", "slurm", "slurm-mpi"])
def test_presets_name_shows_its_options_in_words(name, capsys):
    from qcmb_parsl.presets import PRESETS

    assert main(["presets", name]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{name}: {PRESETS[name].summary}")
    assert f"needs: {PRESETS[name].needs}" in out
    for option in PRESETS[name].options.model_fields:
        assert f"│ {option} " in out
    assert "│ cores_per_worker  " in out and "integer ≥ 1" in out and "true or false" in out
    for internal in ("Annotated", "Optional", "function", "NoneType", "typing"):
        assert internal not in out
    if name != "threads":
        assert "hours:minutes:seconds" in out and "text, one line" in out and "01:00:00" in out
    if name == "slurm-mpi":
        assert "one of srun, mpiexec, aprun" in out and "required" in out


@pytest.mark.fast
def test_presets_of_an_unknown_name_is_one_line_and_exit_2(capsys):
    assert main(["presets", "slurmm"]) == 2
    assert_one_line_error(capsys.readouterr().err)


@pytest.mark.fast
def test_version_names_ours_and_the_packages_we_run_on(capsys):
    from importlib.metadata import version

    import qcmb_parsl

    assert main(["--version"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"qcmb-parsl {qcmb_parsl.__version__} (")
    assert qcmb_parsl.__version__ == version("qcmb_parsl")
    assert f"parsl {version('parsl')}" in line and f"qcmanybody {version('qcmanybody')}" in line


# -- the examples, cheaply -------------------------------------------------------------------------


def run_example(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def test_example_water_pentamer_cp(tmp_path):
    proc = run_example(
        "water_pentamer_cp.py", "--waters", "3", "--max-nbody", "2", "--basis", "sto-3g",
        "--preset", "threads", "--workers", "2", "--quiet", "--out", "trimer.json", cwd=tmp_path,
    )
    assert "(H2O)3 CP MBE(2) hf/sto-3g on pyscf" in proc.stdout
    result = qcmanybody.models.ManyBodyResult.parse_file(tmp_path / "trimer.json")
    assert result.extras["qcmb_parsl"]["n_tasks"] == len(result.component_results) == 6
    if shutil.which("psi4") is None:
        refused = subprocess.run(
            [sys.executable, str(EXAMPLES / "water_pentamer_cp.py"), "--program", "psi4"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )
        assert refused.returncode == 2 and "psi4 is not installed" in refused.stderr


def test_example_multilevel(tmp_path):
    # One worker: the PySCF harness sets PySCF's process-wide scratch directory per fragment, which
    # CCSD fragments running side by side in one process (the threads preset) would share.
    proc = run_example("multilevel.py", "--basis", "sto-3g", "--preset", "threads", "--workers", "1",
                       "--quiet", cwd=tmp_path)
    assert "1-body level: ccsd(t)/sto-3g, 3 fragment calculations" in proc.stdout
    assert "2-body level: mp2/sto-3g, 6 fragment calculations" in proc.stdout
    assert "3-body level: hf/sto-3g, 7 fragment calculations" in proc.stdout
    assert "16 fragments: 16 computed" in proc.stdout


def test_example_progress_tracking(tmp_path):
    proc = run_example("progress_tracking.py", "--waters", "2", "--basis", "sto-3g", "--preset", "threads",
                       "--workers", "2", cwd=tmp_path)
    lines = proc.stdout.splitlines()
    for run in ("first run", "second run"):
        mine = [line for line in lines if line.startswith(f"  {run} [")]
        counters = [line.split("[")[1].split("]")[0].strip() for line in mine]
        assert counters == [f"{i}/5" for i in range(1, 6)]
    assert "first run: callback called 5 times for 5 fragments (5 computed, 0 from the cache)" in proc.stdout
    assert "second run: callback called 5 times for 5 fragments (0 computed, 5 from the cache)" in proc.stdout
