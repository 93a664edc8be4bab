"""The package as a user installs it: the wheel built from this checkout, in a fresh environment.

A full install of the wheel's dependencies into a fresh venv downloads and unpacks PySCF, Parsl, NumPy,
SciPy, matplotlib and the rest (minutes, see the report of the change that added this test), so the
fresh environment here sees this test environment's dependencies through a ``.pth`` line instead. A
path named in a ``.pth`` file is added to ``sys.path`` without its own ``.pth`` files being read, so the
editable install of this checkout (a ``.pth`` hook in that directory) is not active there: qcmb_parsl
can only come from the wheel, and the test checks that it does. What this proves: the wheel holds every
module and the console script, and its metadata declares what runs. What it does not: that pip resolves
the declared ranges to working versions (the environment the tests run in is one such resolution).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENERGY_TOL = 1e-9


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of this checkout, built as ``make dist`` builds it (an isolated build environment)."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (built,) = out.glob("qcmb_parsl-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_env(wheel, tmp_path_factory) -> Path:
    """A new venv with the wheel installed (no editable install), the tests' dependencies visible."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    Path(site, "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                           "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The dependencies' scripts (Parsl's interchange and worker pool) for this environment's Python, as
    # installing them here would write them: workers then run the wheel's qcmb_parsl too.
    shebang = f"#!{sys.executable}\n"
    for script in Path(sys.executable).parent.iterdir():
        target = venv / "bin" / script.name
        if script.is_file() and not target.exists() and script.read_bytes().startswith(shebang.encode()):
            target.write_text(f"#!{python}\n" + script.read_text().removeprefix(shebang))
            target.chmod(0o755)
    return venv


def test_wheel_holds_the_package_and_its_metadata(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    sources = {str(p.relative_to(ROOT)) for p in (ROOT / "qcmb_parsl").rglob("*.py")}
    assert sources <= set(names), sorted(sources - set(names))
    (metadata,) = [name for name in names if name.endswith(".dist-info/METADATA")]
    lines = zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
    assert "Project-URL: Documentation, https://qcmb-parsl.readthedocs.io/" in lines
    assert "Classifier: Topic :: Scientific/Engineering :: Chemistry" in lines
    requirements = [line for line in lines if line.startswith("Requires-Dist: ") and "extra ==" not in line]
    assert any(line.startswith("Requires-Dist: parsl[monitoring]") for line in requirements)
    pinned = [line for line in requirements if "==" in line]
    assert not pinned, f"exact pins clash with any environment that has these packages: {pinned}"


def test_readme_runs_from_the_installed_wheel(fresh_env, tmp_path):
    """Every block of the README, from the installed wheel; the quick start gives upstream's numbers."""
    from qcmanybody.models.v2 import ManyBodyInput
    from test_docs import checkout_copy, run_page

    from qcmb_parsl.v2 import ManyBodyComputer

    checkout_copy(tmp_path)
    env = {**os.environ, "PATH": f"{fresh_env / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    where = subprocess.run(["python", "-c", "import qcmb_parsl; print(qcmb_parsl.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True, timeout=120).stdout
    assert where.startswith(str(fresh_env)), f"qcmb_parsl came from {where}, not the installed wheel"

    run_page(ROOT / "README.md", tmp_path, fresh_env)

    molecules = tmp_path / "examples" / "molecules"
    result = json.loads((molecules / "water_trimer.result.json").read_text())
    built = ManyBodyInput(**json.loads((molecules / "water_trimer.input.json").read_text()))
    reference = ManyBodyComputer.from_manybodyinput(built)  # sequential, in this process
    assert result["return_result"] == pytest.approx(reference.return_result, abs=ENERGY_TOL, rel=0)
    assert result["extras"]["qcmb_parsl"]["n_tasks"] > 0
    assert result["extras"]["qcmb_parsl"]["molecule_file"] == "examples/molecules/water_trimer.xyz"

    # the input written beside the result repeats the run exactly: same input, every fragment cached
    built_path = "examples/molecules/water_trimer.input.json"
    again = subprocess.run(["qcmb-parsl", "run", built_path, "--preset", "threads", "-q"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert " 0 computed" in again.stdout
    assert "result: examples/molecules/water_trimer.result.json" in again.stdout
    repeated = json.loads((molecules / "water_trimer.result.json").read_text())
    assert repeated["return_result"] == result["return_result"]
    assert repeated["extras"]["qcmb_parsl"]["input_sha256"] == result["extras"]["qcmb_parsl"]["input_sha256"]
