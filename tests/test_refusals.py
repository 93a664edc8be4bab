"""Everything that can be refused before anything starts is: one line, exit status 2, no file written.

Model chemistries are checked on the driver by the programs' own rules (:mod:`qcmb_parsl.engines.checks`),
used by the Python API and the command line alike; ManyBodyInput keywords keep the types and ranges a user
wrote; output files never land on input files; each exit status means one thing. The command-line cases
run ``python -m qcmb_parsl`` in a subprocess, as a user's shell would: each is a refusal, so each is a
measure of the start-up a mistake costs.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from drivers import assert_refused, run_cli
from molecules import mbe_input, water_xyz

from qcmb_parsl import InputError, ManyBodyComputer, ParslExecutor, v2
from qcmb_parsl.engines.checks import PROGRAM_CHECKS, ModelChemistry, check_model_chemistry
from qcmb_parsl.frontend import cli, exits, parser
from qcmb_parsl.presets.loader import resolve_config

WATER = ("H", "O")


def refused(model: ModelChemistry) -> str:
    with pytest.raises(InputError) as info:
        check_model_chemistry(model)
    message = str(info.value)
    assert "\n" not in message and "…" not in message
    return message


def one_error_line(capsys) -> str:
    """The one line an in-process command printed on stderr."""
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("qcmb-parsl: error: "), lines
    return lines[0]


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


# -- model chemistries: the library ---------------------------------------------------------------


@pytest.mark.fast
@pytest.mark.parametrize(
    ("method", "basis", "driver", "keywords", "expected"),
    [
        ("hff", "sto-3g", "energy", {}, "method 'hff' is not known to PySCF; did you mean hf?"),
        ("hf", "6-31gg", "energy", {}, "basis '6-31gg' is not known to PySCF; did you mean 6-31g"),
        ("hf", None, "energy", {}, "no basis set given: PySCF's methods need one, e.g. cc-pvdz"),
        ("b3lpy-d3bj", "sto-3g", "energy", {}, "functional 'b3lpy' of method 'b3lpy-d3bj' is not known"),
        ("b3lyp-d5", "sto-3g", "energy", {}, "dispersion correction '-d5' of method 'b3lyp-d5'"),
        (
            "mp2",
            "sto-3g",
            "hessian",
            {},
            "PySCF has no analytic hessian for 'mp2'; drivers it has: energy, gradient",
        ),
        ("hf", "sto-3g", "properties", {}, "driver 'properties' is not supported by the PySCF harness"),
        (
            "hf",
            "sto-3g",
            "energy",
            {"conv_tl": 1e-9},
            "PySCF keyword 'conv_tl' is not known; did you mean conv_tol",
        ),
        (
            "hf",
            "sto-3g",
            "energy",
            {"conv_tol": "1e-10"},
            "PySCF keyword 'conv_tol' must be a number, got '1e-10'",
        ),
        (
            "hf",
            "sto-3g",
            "energy",
            {"cartesian": 1},
            "PySCF keyword 'cartesian' must be true or false, got 1",
        ),
    ],
    ids=[
        "method",
        "basis",
        "no-basis",
        "functional",
        "dispersion",
        "no-hessian",
        "properties",
        "keyword",
        "keyword-type",
        "keyword-bool",
    ],
)
def test_pyscf_model_chemistry_is_refused_with_the_nearest_valid_values(
    method, basis, driver, keywords, expected
):
    message = refused(ModelChemistry("pyscf", method, basis, driver, keywords, WATER))
    assert message.startswith(expected), message


@pytest.mark.fast
def test_pyscf_basis_must_cover_every_element_present():
    message = refused(ModelChemistry("pyscf", "hf", "sto-3g", "energy", {}, ("H", "O", "Xe")))
    assert message.startswith("basis 'sto-3g' has no functions for Xe in PySCF's library")


@pytest.mark.fast
@pytest.mark.parametrize(
    ("method", "basis", "driver"),
    [
        ("HF", "STO-3G", "gradient"),
        ("b3lyp-d3bj", "6-31g(d,p)", "hessian"),
        ("ccsd(t)", "cc-pvdz", "energy"),
        ("wb97x-v", "def2-svp", "gradient"),
        ("pbe0-d4", "aug-cc-pvdz", "energy"),
    ],
)
def test_what_pyscf_runs_passes(method, basis, driver):
    check_model_chemistry(ModelChemistry("pyscf", method, basis, driver, {"conv_tol": 1e-9}, WATER))


@pytest.mark.fast
def test_stock_programs_are_checked_by_what_qcengine_can_tell_cheaply():
    assert "did you mean hf" in refused(ModelChemistry("nwchem", "hff", "6-31g", "energy"))
    assert "cannot set up method 'mp3'" in refused(ModelChemistry("nwchem", "mp3", "6-31g", "energy"))
    assert refused(ModelChemistry("nwchem", "b3lyp", None, "energy")).startswith("no basis set given")
    assert refused(ModelChemistry("psi4", "mp2", None, "energy")).startswith("no basis set given")
    for program, method, basis in (
        ("nwchem", "b3lyp", "6-31g"),
        ("nwchem", "ccsd(t)", "cc-pvdz"),
        ("psi4", "hf3c", None),
        ("rdkit", "uff", None),
    ):
        check_model_chemistry(ModelChemistry(program, method, basis, "energy"))
    assert {"pyscf", "nwchem", "psi4"} <= set(PROGRAM_CHECKS)


# -- model chemistries: the API -------------------------------------------------------------------


@pytest.mark.fast
def test_the_api_refuses_before_any_executor_starts(tmp_path):
    executor = ParslExecutor("local", max_workers=1, cache_dir=tmp_path / "cache", progress=False)
    try:
        with pytest.raises(InputError, match="basis '6-31gg' is not known to PySCF; did you mean 6-31g"):
            ManyBodyComputer.from_manybodyinput(mbe_input(2, basis="6-31gg"), executor=executor)
        specs = {
            "big": {"program": "pyscf", "driver": "energy", "model": {"method": "hf", "basis": "sto-3g"}},
            "small": {
                "program": "pyscf",
                "driver": "energy",
                "model": {"method": "hf", "basis": "sto-3g"},
                "keywords": {"max_cycle": 50.5},
            },
        }
        mbin = mbe_input(2, bsse_type=["nocp"], levels={1: "small", 2: "big"}, specifications=specs)
        with pytest.raises(
            InputError, match=r"^model chemistry 'small': PySCF keyword 'max_cycle' must be an integer"
        ):
            ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
        assert executor.dfk is None and len(executor.cache) == 0
    finally:
        executor.close()


# -- ManyBodyInput keywords and molecules, as written ---------------------------------------------


@pytest.mark.fast
@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"max_nbody": 1.5}, "max_nbody must be a whole number, got 1.5"),
        ({"max_nbody": "2"}, "max_nbody must be a whole number, got '2'"),
        ({"max_nbody": True}, "max_nbody must be a whole number, got true"),
        ({"bsse_type": "nocpp"}, "bsse_type.0: 'nocpp' is not one of"),
        ({"bsse_type": ["cp", "x"]}, "bsse_type.1: 'x' is not one of"),
        ({"return_total_data": "yes"}, "return_total_data must be true or false, got 'yes'"),
    ],
    ids=["float", "text", "bool", "bsse-text", "bsse-list", "bool-keyword"],
)
def test_manybody_keywords_keep_their_types(version, changes, expected):
    data = mbe_input(2, schema_version=version)
    data["specification"]["keywords"].update(changes)
    computer = ManyBodyComputer if version == 1 else v2.ManyBodyComputer
    with pytest.raises(InputError) as info:
        computer.prepare(data)
    assert expected in str(info.value) and "\n" not in str(info.value), str(info.value)


@pytest.mark.fast
def test_fragment_charges_are_whole_numbers():
    data = mbe_input(2)
    data["molecule"]["fragment_charges"] = [0.5, -0.5]
    with pytest.raises(
        InputError, match=r"fragment 1 has charge 0.5: a charge is a whole number of electrons"
    ):
        ManyBodyComputer.prepare(data)


# -- the command line -----------------------------------------------------------------------------


XYZ_DIMER = water_xyz(2)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            ["--method", "hff", "--basis", "sto-3g"],
            "dimer.xyz: method 'hff' is not known to PySCF; did you mean hf?",
        ),
        (
            ["--method", "hf", "--basis", "6-31gg"],
            "dimer.xyz: basis '6-31gg' is not known to PySCF; did you mean 6-31g",
        ),
        (["--method", "hf"], "dimer.xyz: no basis set given"),
        (
            ["--method", "hf", "--basis", "sto-3g", "--max-nbody", "3"],
            "dimer.xyz: max_nbody=3 must be between 1 and 2",
        ),
    ],
    ids=["method", "basis", "no-basis", "max-nbody"],
)
def test_cli_refuses_a_typo_before_any_file_or_worker(tmp_path, options, expected):
    (tmp_path / "dimer.xyz").write_text(XYZ_DIMER)
    line = assert_refused(run_cli("run", "dimer.xyz", *options, "--preset", "local", cwd=tmp_path), expected)
    assert "input.json" not in line and "(auto)" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dimer.xyz"]  # no input, no result, no runinfo


@pytest.mark.fast
@pytest.mark.parametrize(
    "command",
    [["run", "dimer.json"], ["campaign", "dimer.json", "--out-dir", "out"]],
    ids=["run", "campaign"],
)
def test_the_refusal_path_imports_neither_parsl_nor_the_executors(tmp_path, command):
    """What keeps a refusal under two seconds: the command line reaches it without importing Parsl, and
    a campaign writes nothing (not even its output directory)."""
    (tmp_path / "dimer.json").write_text(json.dumps(mbe_input(2, method="hff")))
    script = (
        "import sys\nfrom qcmb_parsl.frontend.cli import main\n"
        f"status = main({[*command, '--preset', 'local']!r})\n"
        "heavy = ('parsl', 'qcmb_parsl.execution.executors', 'networkx')\n"
        "print(status, sorted(m for m in heavy if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.split() == ["2", "[]"], proc.stdout + proc.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["dimer.json"]


@pytest.mark.fast
@pytest.mark.parametrize("command", ["run", "optimize"])
def test_out_naming_the_input_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    data = mbe_input(2) if command == "run" else {"initial_molecule": {}, "specification": {}}
    path = write_json(tmp_path / "in.json", data)
    before = path.read_text()
    for out in ("in.json", "./in.json", str(path)):
        assert cli.main([command, "in.json", "--out", out, "--preset", "local"]) == 2
        line = one_error_line(capsys)
        assert f"--out {out} is the input in.json: name another result file, e.g. in.result.json" in line
    assert path.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["in.json"]


@pytest.mark.fast
def test_out_naming_a_molecule_file_or_its_built_input_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dimer.xyz").write_text(XYZ_DIMER)
    model = ["--method", "hf", "--basis", "sto-3g", "--preset", "local"]
    assert cli.main(["run", "dimer.xyz", *model, "--out", "dimer.xyz"]) == 2
    assert "--out dimer.xyz is the input dimer.xyz" in one_error_line(capsys)
    assert cli.main(["run", "dimer.xyz", *model, "--out", "dimer.input.json"]) == 2
    assert "the input built from dimer.xyz would be written there too" in one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dimer.xyz"]


@pytest.mark.fast
def test_campaign_outputs_never_land_on_inputs(tmp_path, capsys):
    write_json(tmp_path / "x.json", mbe_input(2))
    write_json(tmp_path / "x.result.json", mbe_input(2))
    inputs = [str(tmp_path / "x.json"), str(tmp_path / "x.result.json")]
    assert cli.main(["campaign", *inputs, "--out-dir", str(tmp_path), "--preset", "threads"]) == 2
    assert "x.result.json would be written over the input" in one_error_line(capsys)


@pytest.mark.fast
def test_json_nested_too_deep_is_bad_input(tmp_path, capsys):
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    assert cli.main(["run", str(tmp_path / "deep.json")]) == 2
    assert "deep.json' is nested too deeply to read" in one_error_line(capsys)


def interleaved_dimer() -> dict:
    """The water dimer with a hydrogen of each water listed among the other's atoms."""
    data = mbe_input(2, schema_version=2)
    molecule = data["molecule"]
    order = [0, 1, 3, 2, 4, 5]
    molecule["symbols"] = [molecule["symbols"][atom] for atom in order]
    molecule["geometry"] = [molecule["geometry"][3 * atom + k] for atom in order for k in range(3)]
    molecule["fragments"] = [[0, 1, 3], [2, 4, 5]]
    return data


@pytest.mark.fast
@pytest.mark.parametrize("command", ["run", "optimize"])
def test_qcelemental_prints_nothing_on_stdout_before_a_refusal(tmp_path, capsys, command):
    """QCElemental prints "Warning: ... reordering atoms" on stdout before it refuses non-contiguous
    fragments: stdout is a command's results, and the one error line says it already."""
    dimer = interleaved_dimer()
    if command == "optimize":
        dimer = {
            "initial_molecule": dimer["molecule"],
            "specification": {"specification": dimer["specification"]},
        }
    path = write_json(tmp_path / "interleaved.json", dimer)
    assert cli.main([command, str(path), "--preset", "threads"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "would need to reorder atoms" in captured.err and captured.err.count("\n") == 1


@pytest.mark.fast
def test_a_config_file_that_exits_is_a_one_line_error_naming_it(tmp_path, capsys):
    write_json(tmp_path / "dimer.json", mbe_input(2))
    (tmp_path / "site.py").write_text("import sys\nsys.exit(3)\n")
    assert cli.main(["run", str(tmp_path / "dimer.json"), "--config", str(tmp_path / "site.py")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "site.py" in err and "exited (sys.exit(3))" in err


@pytest.mark.fast
def test_an_unexpected_error_has_an_exit_status_of_its_own(monkeypatch, capsys):
    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(parser, "cmd_presets", broken)
    assert cli.main(["presets"]) == exits.EXIT_UNEXPECTED != 1
    err = capsys.readouterr().err
    assert err == (
        "qcmb-parsl: error: unexpected ZeroDivisionError: division by zero "
        "(rerun with --debug for the traceback)\n"
    )


@pytest.mark.fast
def test_an_unencrypted_htex_of_the_users_gets_one_warning(tmp_path, caplog):
    config = tmp_path / "site.py"
    config.write_text(
        "from parsl.config import Config\n"
        "from parsl.executors import HighThroughputExecutor\n"
        "config = Config(executors=[HighThroughputExecutor(label='htex', encrypted=False)])\n"
    )
    with caplog.at_level(logging.WARNING, logger="qcmb_parsl"):
        resolve_config(str(config), {})
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert (
        "encrypted=False" in warnings[0].getMessage() and "anyone who can reach" in warnings[0].getMessage()
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="qcmb_parsl"):
        resolve_config("local", {})
    assert not caplog.records
