"""QCFractal compute-manager files, unmodified, build the Parsl executors their types call for.

The files in ``tests/manager_configs/`` are written the way qcfractalcompute reads them (``cluster``,
``server``, ``executors``). Configs are built, never started, for Slurm, PBS/Torque and LSF; the local
one runs a real many-body expansion, compared with upstream's serial computer. Each file is read by
qcfractalcompute's own models and by the mirror of them used when it is not installed, and both must
agree.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from pathlib import Path

import pytest
import qcmanybody
import yaml
from components import require
from molecules import mbe_input
from parsl.executors import HighThroughputExecutor
from parsl.launchers import MpiExecLauncher, SrunLauncher
from parsl.providers import LocalProvider, LSFProvider, SlurmProvider, TorqueProvider

from qcmb_parsl import ManyBodyComputer, ParslExecutor
from qcmb_parsl.errors import ConfigurationError
from qcmb_parsl.frontend.cli import main
from qcmb_parsl.presets.loader import resolve_config
from qcmb_parsl.presets.manager import read_with_own_models, read_with_qcfractalcompute

CONFIGS = Path(__file__).resolve().parent / "manager_configs"
ENERGY_TOL = 1e-9


def resolve(name: str, **options):
    return resolve_config(str(CONFIGS / name), options)


def executor_of(resolved) -> HighThroughputExecutor:
    assert len(resolved.config.executors) == 1
    executor = resolved.config.executors[0]
    assert isinstance(executor, HighThroughputExecutor) and executor.encrypted
    return executor


@pytest.mark.fast
def test_local_manager_file_builds_the_local_preset() -> None:
    resolved = resolve("local.yaml")
    executor = executor_of(resolved)
    assert resolved.preset.name == "local" and isinstance(executor.provider, LocalProvider)
    assert executor.max_workers_per_node == 2 and executor.cores_per_worker == 1
    assert resolved.options.memory_per_worker == 2
    assert executor.provider.worker_init.rstrip().endswith("export QCMB_MANAGER_FILE_TEST=1")


@pytest.mark.fast
def test_slurm_manager_file_builds_the_slurm_preset(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="qcmb_parsl"):
        resolved = resolve("slurm.yaml", executor="cpu")
    executor = executor_of(resolved)
    provider = executor.provider
    assert resolved.preset.name == "slurm"
    assert isinstance(provider, SlurmProvider) and isinstance(provider.launcher, SrunLauncher)
    assert executor.max_workers_per_node == 8 and executor.cores_per_worker == 4
    assert executor.mem_per_worker == 16 and executor.address == "10.1.2.3"
    assert (provider.partition, provider.account, provider.exclusive) == ("compute", "chem42", False)
    assert provider.walltime == "04:00:00"  # written 4:00:00 unquoted: 14400 seconds to YAML
    assert provider.max_blocks == 3 and provider.nodes_per_block == 1  # max_nodes: one node per block
    assert provider.cores_per_node == 32 and provider.mem_per_node == 128  # per worker x workers per node
    assert "#SBATCH --constraint=cpu" in provider.scheduler_options
    assert provider.worker_init.rstrip().endswith("module load gcc")
    # the server part is said to be left out, with the executor's manager-only fields
    line = next(r.getMessage() for r in caplog.records if "manager file" in r.getMessage())
    assert "executor 'cpu' (slurm) runs on the 'slurm' preset" in line
    for name in ("cluster", "server", "update_frequency", "max_idle_time", "compute_tags"):
        assert name in line

    bigmem = executor_of(resolve("slurm.yaml", executor="bigmem"))
    assert bigmem.provider.partition == "bigmem" and bigmem.provider.walltime == "24:00:00"
    assert bigmem.provider.exclusive  # QCFractal's default
    # options given next to the file win over its fields
    assert executor_of(resolve("slurm.yaml", executor="cpu", max_workers=2)).max_workers_per_node == 2


@pytest.mark.fast
def test_torque_manager_file_builds_torque_jobs() -> None:
    resolved = resolve("torque.yaml")
    executor = executor_of(resolved)
    provider = executor.provider
    assert resolved.preset.name == "torque"
    assert type(provider) is TorqueProvider and isinstance(provider.launcher, MpiExecLauncher)
    assert (provider.account, provider.queue, provider.walltime) == ("chem", "batch", "02:00:00")
    assert provider.max_blocks == 2 and provider.nodes_per_block == 1
    assert executor.max_workers_per_node == 4 and executor.cores_per_worker == 2
    assert provider.scheduler_options == "#PBS -l pmem=4gb"


@pytest.mark.fast
def test_lsf_manager_file_builds_the_lsf_preset() -> None:
    resolved = resolve("lsf.yaml")
    executor = executor_of(resolved)
    provider = executor.provider
    assert resolved.preset.name == "lsf"
    assert isinstance(provider, LSFProvider) and isinstance(provider.launcher, MpiExecLauncher)
    assert provider.queue == "normal" and provider.project is None
    assert provider.request_by_nodes is False and provider.walltime == "4:00:00"
    assert provider.cores_per_node == 64 and provider.cores_per_block == 64  # 4 workers x 16 cores
    assert provider.max_blocks == 2 and executor.mem_per_worker == 96
    assert "#BSUB -R fscratch" in provider.scheduler_options
    assert provider.worker_init.rstrip().endswith("source /opt/site/worker-init.sh")


@pytest.mark.fast
@pytest.mark.parametrize("name", ["local.yaml", "slurm.yaml", "torque.yaml", "lsf.yaml"])
def test_own_models_read_what_qcfractalcompute_reads(name: str) -> None:
    require(
        importlib.util.find_spec("qcfractalcompute") is not None,
        'qcfractalcompute is not installed (pip install -e ".[test]")',
    )
    path = CONFIGS / name
    data = yaml.safe_load(path.read_text())
    assert read_with_own_models(path, data) == read_with_qcfractalcompute(path, data)


@pytest.mark.fast
def test_parsl_run_dir_is_the_run_directory_where_the_manager_puts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``parsl_run_dir`` means what it means to qcfractalcompute's manager (compared with its own
    ``read_configuration`` where it is installed); an option given next to the file wins."""
    data = yaml.safe_load((CONFIGS / "local.yaml").read_text())
    path = tmp_path / "site" / "manager.yaml"
    path.parent.mkdir()
    monkeypatch.delenv("QCF_COMPUTE_BASE_FOLDER", raising=False)
    monkeypatch.setenv("SCRATCH", str(tmp_path / "scratch"))

    def run_dir(options: dict | None = None, **fields) -> str | None:
        path.write_text(yaml.safe_dump({**data, **fields}))
        found = resolve_config(str(path), options or {}).options.run_dir
        if fields and not options and importlib.util.find_spec("qcfractalcompute") is not None:
            from qcfractalcompute.config import read_configuration

            assert found == read_configuration([str(path)]).parsl_run_dir
        return found

    assert run_dir() is None  # not given: this package's runinfo/ where the driver runs
    assert run_dir(parsl_run_dir="parsl") == str(path.parent / "parsl")
    assert run_dir(parsl_run_dir="parsl", base_folder=str(tmp_path)) == str(tmp_path / "parsl")
    assert run_dir(parsl_run_dir="$SCRATCH/parsl") == str(tmp_path / "scratch" / "parsl")
    assert run_dir(parsl_run_dir="~/parsl") == str(Path.home() / "parsl")
    monkeypatch.setenv("QCF_COMPUTE_BASE_FOLDER", str(tmp_path / "env"))
    assert run_dir(parsl_run_dir="parsl", base_folder=str(tmp_path)) == str(tmp_path / "env" / "parsl")
    assert run_dir({"run_dir": "elsewhere"}, parsl_run_dir="parsl") == "elsewhere"


@pytest.mark.fast
@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d["executors"]["cpu"].update(walltme="01:00:00"), "executors.cpu.walltme: Extra inputs"),
        (lambda d: d["executors"]["cpu"].pop("compute_tags"), "executors.cpu.compute_tags: Field required"),
        (lambda d: d["executors"]["cpu"].update(type="sge"), "executors.cpu: Input tag 'sge'"),
        (lambda d: d.pop("server"), "server: Field required"),
    ],
)
def test_invalid_manager_files_are_one_line_errors_by_both_models(
    tmp_path: Path, edit, expected: str
) -> None:
    data = yaml.safe_load((CONFIGS / "slurm.yaml").read_text())
    edit(data)
    path = tmp_path / "manager.yaml"
    path.write_text(yaml.safe_dump(data))
    readers = [read_with_own_models]
    if importlib.util.find_spec("qcfractalcompute") is not None:
        readers.append(read_with_qcfractalcompute)
    for read in readers:
        with pytest.raises(ConfigurationError) as info:
            read(path, data)
        message = str(info.value)
        assert message.startswith(f"manager file {str(path)!r}: ") and expected in message, message
        assert "\n" not in message


@pytest.mark.fast
def test_executor_choice_and_what_cannot_run_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"has executors cpu, bigmem: choose one with executor=NAME"):
        resolve("slurm.yaml")
    with pytest.raises(ConfigurationError, match=r"has no executor 'gpu'; its executors: cpu, bigmem"):
        resolve("slurm.yaml", executor="gpu")
    with pytest.raises(ConfigurationError, match=r"describes one executor"):
        resolve_config(
            str(Path(__file__).resolve().parents[1] / "parsl_configs" / "site.yaml"), {"executor": "x"}
        )

    data = yaml.safe_load((CONFIGS / "lsf.yaml").read_text())
    data["executors"]["cpuqueue"]["scheduler_options"] = ["-R fscratch"]  # not a #BSUB line
    path = tmp_path / "lsf.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigurationError, match=r"executor 'cpuqueue'.*scheduler_options.*#BSUB"):
        resolve_config(str(path), {})
    data["executors"]["cpuqueue"] = {"type": "custom", "path": "site_executor", "compute_tags": ["*"]}
    data["executors"]["cpuqueue"].update(cores_per_worker=1, memory_per_worker=1)
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigurationError, match=r"of type 'custom'.*use one of local, slurm, torque, lsf"):
        resolve_config(str(path), {})


@pytest.mark.fast
def test_command_line_asks_which_executor(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "dimer.json").write_text(json.dumps(mbe_input(2)))
    status = main(["run", str(tmp_path / "dimer.json"), "--config", str(CONFIGS / "slurm.yaml")])
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.count("\n") == 0
    assert "choose one with executor=NAME (on the command line --option executor=NAME)" in err
    assert not (tmp_path / "dimer.result.json").exists()


def test_local_manager_file_runs_a_real_expansion(tmp_path: Path) -> None:
    """Water dimer HF/STO-3G on the local manager file's executor: upstream's serial numbers."""
    manager = shutil.copy(CONFIGS / "local.yaml", tmp_path / "manager.yaml")
    mbin = mbe_input(2, bsse_type=["cp", "nocp"])
    with ParslExecutor(manager, progress=False, cache_dir=tmp_path / "cache") as executor:
        assert executor.preset.name == "local" and executor.max_workers == 2
        result = ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
    reference = qcmanybody.ManyBodyComputer.from_manybodyinput(mbe_input(2, bsse_type=["cp", "nocp"]))
    assert result.return_result == pytest.approx(reference.return_result, abs=ENERGY_TOL, rel=0)
    ours, ref = result.properties.dict(), reference.properties.dict()
    compared = [name for name, value in ref.items() if isinstance(value, float)]
    assert len(compared) > 5
    for name in compared:
        assert ours[name] == pytest.approx(ref[name], abs=ENERGY_TOL, rel=0), name
    run = result.extras["qcmb_parsl"]
    assert run["executor"] == "manager" and run["n_executed"] == run["n_tasks"] == 5
    provenance = [c.extras["qcmb_parsl"] for c in result.component_results.values()]
    assert {p["executor"] for p in provenance} == {"manager"}
