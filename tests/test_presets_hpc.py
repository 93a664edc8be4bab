"""The presets, their Parsl config files and site files build valid Parsl Configs.

No scheduler is needed: a Config is only built, never loaded, so PBS Pro and LSF are checked here
on a machine that has neither. Each file in ``parsl_configs/`` is the preset written out
(``qcmb-parsl presets --write-configs``) and builds the very Config its preset builds.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from parsl.config import Config
from parsl.executors import HighThroughputExecutor, MPIExecutor
from parsl.launchers import MpiExecLauncher, SimpleLauncher, SrunLauncher
from parsl.providers import LocalProvider, LSFProvider, PBSProProvider, SlurmProvider, TorqueProvider

from qcmb_parsl.errors import ConfigurationError
from qcmb_parsl.mpi_syntax import mpi_task_config, mpiexec_template
from qcmb_parsl.planning.plan import FragmentTask
from qcmb_parsl.presets import PRESETS, build_preset
from qcmb_parsl.presets.config_files import file_name, render_config_file
from qcmb_parsl.presets.loader import load_config_file, resolve_config
from qcmb_parsl.presets.mpi import SlurmMpiOptions, ranks_for_fragment
from qcmb_parsl.presets.site import load_site_file

pytestmark = pytest.mark.fast  # Configs are built, never loaded

CONFIG_DIR = Path(__file__).resolve().parents[1] / "parsl_configs"

#: preset name -> (options it needs to build, executor, provider, launcher)
EXPECTED = {
    "slurm": ({}, HighThroughputExecutor, SlurmProvider, SrunLauncher),
    "slurm-mpi": ({"ranks_per_node": 4}, MPIExecutor, SlurmProvider, SimpleLauncher),
    "mpi": ({"nodes": 2}, HighThroughputExecutor, LocalProvider, MpiExecLauncher),
    "pbspro": ({}, HighThroughputExecutor, PBSProProvider, MpiExecLauncher),
    "lsf": ({}, HighThroughputExecutor, LSFProvider, MpiExecLauncher),
    "torque": ({}, HighThroughputExecutor, TorqueProvider, MpiExecLauncher),
}
FILES = {
    "slurm.py": EXPECTED["slurm"][1:],
    "slurm_mpi.py": EXPECTED["slurm-mpi"][1:],
    "mpi.py": EXPECTED["mpi"][1:],
    "pbspro.py": EXPECTED["pbspro"][1:],
    "lsf.py": EXPECTED["lsf"][1:],
    "torque.py": EXPECTED["torque"][1:],
}


def _shape(config: Config) -> tuple[type, type, type]:
    assert isinstance(config, Config)
    assert len(config.executors) == 1
    executor = config.executors[0]
    return type(executor), type(executor.provider), type(executor.provider.launcher)


def test_local_preset_encrypts_too() -> None:
    """Loopback is reachable by every user of a shared machine: local workers need the run's keys."""
    config, _ = build_preset("local")
    assert isinstance(config.executors[0], HighThroughputExecutor) and config.executors[0].encrypted


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_builds(name: str) -> None:
    options, *shape = EXPECTED[name]
    config, validated = build_preset(name, **options)
    assert _shape(config) == tuple(shape)
    executor = config.executors[0]
    assert executor.encrypted, "workers on other nodes: traffic must be encrypted"
    assert executor.heartbeat_threshold <= 10 and executor.heartbeat_period <= 2
    assert "/.venv/bin" in executor.provider.worker_init or "bin:$PATH" in executor.provider.worker_init
    assert isinstance(validated, PRESETS[name].options)


@pytest.mark.parametrize("filename", sorted(FILES))
def test_config_file_loads(filename: str) -> None:
    config = load_config_file(CONFIG_DIR / filename)
    assert _shape(config) == FILES[filename]


def _settings(config: Config) -> str:
    """Every constructor argument of the Config, its executors, providers and launchers (Parsl's repr
    echoes them), object addresses left out."""
    return re.sub(r" at 0x[0-9a-f]+", "", repr(config))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_file_builds_what_its_preset_builds(name: str) -> None:
    preset = PRESETS[name]
    from_file = load_config_file(CONFIG_DIR / file_name(preset))
    from_preset, _ = build_preset(name, **preset.file_options)
    executor, expected = from_file.executors[0], from_preset.executors[0]
    assert type(executor) is type(expected)
    if hasattr(expected, "provider"):
        assert type(executor.provider) is type(expected.provider)
        assert type(executor.provider.launcher) is type(expected.provider.launcher)
        assert executor.provider.worker_init == expected.provider.worker_init
        assert "export OMP_NUM_THREADS=1" in executor.provider.worker_init  # the BLAS/OpenMP caps
        assert executor.encrypted
    assert _settings(from_file) == _settings(from_preset)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_files_are_written_from_the_presets(name: str) -> None:
    """``qcmb-parsl presets --write-configs parsl_configs`` after changing a preset keeps this green."""
    preset = PRESETS[name]
    assert (CONFIG_DIR / file_name(preset)).read_text() == render_config_file(preset)
    assert sorted(p.name for p in CONFIG_DIR.glob("*.py")) == sorted(file_name(p) for p in PRESETS.values())


def test_slurm_options_reach_the_provider() -> None:
    config, options = build_preset(
        "slurm",
        partition="debug",
        account="chem",
        qos="high",
        walltime=5400,
        workers_per_node=4,
        cores_per_worker=2,
        memory_per_worker=3.5,
        nodes_per_block=2,
        max_blocks=3,
        exclusive=False,
        scheduler_options=["#SBATCH --constraint=cpu"],
        worker_init=["module load nwchem"],
        address="10.1.2.3",
    )
    executor = config.executors[0]
    provider = executor.provider
    assert options.max_workers == 4  # workers_per_node is max_workers' QCFractal name
    assert (
        executor.max_workers_per_node == 4
        and executor.cores_per_worker == 2
        and executor.address == "10.1.2.3"
    )
    assert provider.walltime == "01:30:00" and provider.nodes_per_block == 2 and provider.max_blocks == 3
    assert provider.cores_per_node == 8 and provider.mem_per_node == 14
    for line in ("--partition=debug", "--account=chem", "--qos=high", "--constraint=cpu"):
        assert line in provider.scheduler_options
    assert "--exclusive" not in provider.scheduler_options
    assert provider.worker_init.splitlines()[-1] == "module load nwchem"


def test_slurm_mpi_directives() -> None:
    config, _ = build_preset("slurm-mpi", ranks_per_node=8, cores_per_worker=2, nodes_per_block=2)
    executor = config.executors[0]
    assert executor.mpi_launcher == "srun" and executor.max_workers_per_block == 2
    assert "--ntasks-per-node=8" in executor.provider.scheduler_options
    assert "--cpus-per-task=2" in executor.provider.scheduler_options


@pytest.mark.parametrize(
    ("name", "options", "field"),
    [
        ("slurm", {"partitoin": "debug"}, "partitoin"),
        ("slurm", {"walltime": "ten minutes"}, "walltime"),
        ("slurm", {"address": "10.0.0.1", "interface": "ib0"}, "address or interface"),
        ("slurm-mpi", {}, "ranks_per_node"),
        ("slurm-mpi", {"ranks_per_node": 2, "ranks_per_fragment_min": 4}, "ranks_per_fragment_min"),
        ("mpi", {"hostfile": "/nonexistent/hosts"}, "hostfile"),
        ("slurm", {"extra_executor_options": {"no_such_argument": 1}}, "extra_executor_options"),
    ],
)
def test_bad_preset_options_are_one_line_errors(name: str, options: dict, field: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        build_preset(name, **options)
    message = str(info.value)
    assert field in message and "\n" not in message


@pytest.mark.parametrize(
    ("name", "options", "option"),
    [
        ("slurm", {"partition": "debug\n#SBATCH --qos=high"}, "partition"),
        ("slurm", {"account": "chem\r"}, "account"),
        ("slurm", {"qos": "a\nb"}, "qos"),
        ("slurm", {"constraint": "cpu\nhostname"}, "constraint"),
        ("slurm", {"walltime": "01:00:00\n"}, "walltime"),
        ("slurm", {"address": "10.0.0.1\n"}, "address"),
        ("slurm-mpi", {"ranks_per_node": 2, "launcher_options": "--mpi=pmix\nrm -rf x"}, "launcher_options"),
        ("pbspro", {"queue": "workq\n#PBS -l x"}, "queue"),
        ("pbspro", {"select_options": "ngpus=4\n"}, "select_options"),
        ("lsf", {"project": "chem\n#BSUB -q x"}, "project"),
        ("mpi", {"mpiexec_overrides": "--map-by node\nhostname"}, "mpiexec_overrides"),
        ("local", {"worker_init": "module load x\r\n"}, "worker_init"),
    ],
)
def test_options_that_become_one_script_line_refuse_line_breaks(name: str, options: dict, option: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        build_preset(name, **options)
    message = str(info.value)
    assert f"preset {name!r}: {option}:" in message and "\n" not in message and "\r" not in message


@pytest.mark.parametrize(
    ("name", "lines", "directive"),
    [
        ("slurm", ["#SBATCH --constraint=cpu", "hostname"], "#SBATCH"),
        ("slurm-mpi", "#PBS -l walltime=1:00:00", "#SBATCH"),
        ("pbspro", ["#SBATCH --qos=high"], "#PBS"),
        ("lsf", "#BSUB -q x\necho hi", "#BSUB"),
    ],
)
def test_scheduler_options_are_directives_of_that_scheduler(name: str, lines, directive: str) -> None:
    extra = {"ranks_per_node": 2} if name == "slurm-mpi" else {}
    with pytest.raises(ConfigurationError) as info:
        build_preset(name, scheduler_options=lines, **extra)
    message = str(info.value)
    assert "scheduler_options" in message and f"not a {directive} directive" in message and "\n" not in message
    config, _ = build_preset(name, scheduler_options=[f"{directive} -x", "", f"{directive} -y"], **extra)
    assert f"{directive} -x\n\n{directive} -y" in config.executors[0].provider.scheduler_options


def test_ranks_grow_with_fragment_size() -> None:
    options = SlurmMpiOptions(ranks_per_node=4, nodes_per_block=2, ranks_per_fragment_min=2)

    def spec(real: tuple[int, ...], basis: tuple[int, ...]) -> dict:
        return ranks_for_fragment(FragmentTask("x", "mc", "nwchem", real, basis, {}), options)

    assert spec((1,), (1,)) == {
        "num_nodes": 1,
        "ranks_per_node": 2,
        "num_ranks": 2,
        "launcher_options": "--mpi=pmix",
    }
    assert spec((1,), (1, 2)) == {
        "num_nodes": 1,
        "ranks_per_node": 4,
        "num_ranks": 4,
        "launcher_options": "--mpi=pmix",
    }
    assert spec((1, 2, 3), (1, 2, 3))["num_ranks"] == 4  # 6 ranks span two nodes: rounded down to one
    assert spec((1, 2, 3, 4), (1, 2, 3, 4)) == {
        "num_nodes": 2,
        "ranks_per_node": 4,
        "num_ranks": 8,
        "launcher_options": "--mpi=pmix",
    }
    capped = SlurmMpiOptions(ranks_per_node=4, ranks_per_fragment_max=3)
    assert (
        ranks_for_fragment(FragmentTask("x", "mc", "nwchem", (1, 2, 3), (1, 2, 3), {}), capped)["num_ranks"]
        == 3
    )


@pytest.mark.parametrize(
    ("prefix", "flavour", "template"),
    [
        (
            "srun --ntasks 2 --ntasks-per-node 2 --nodelist n1 --nodes 1 --mpi=pmix",
            None,
            (
                "srun --ntasks {total_ranks} --ntasks-per-node {ranks_per_node} --nodelist n1"
                " --nodes {nnodes} --mpi=pmix"
            ),
        ),
        (
            "mpiexec -n 4 -ppn 2 -hosts a,b ",
            "mpich",
            "mpiexec -n {total_ranks} -ppn {ranks_per_node} -hosts a,b",
        ),
        (
            "mpiexec -n 4 -ppn 2 -hosts a,b --oversubscribe",
            "openmpi",
            (
                "mpiexec -n {total_ranks} --npernode {ranks_per_node}"
                " --host a:{ranks_per_node},b:{ranks_per_node} --oversubscribe"
            ),
        ),
        (
            "aprun -n 8 -N 4 -node-list a,b ",
            None,
            "aprun -n {total_ranks} -N {ranks_per_node} -node-list a,b",
        ),
    ],
)
def test_mpiexec_template(prefix: str, flavour: str | None, template: str) -> None:
    assert mpiexec_template(prefix, flavour) == template


def test_mpi_task_config_from_parsl_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"ncores": 1, "memory": 2.0, "retries": 0}
    monkeypatch.delenv("PARSL_MPI_PREFIX", raising=False)
    assert mpi_task_config(base) == (base, None)

    monkeypatch.setenv(
        "PARSL_MPI_PREFIX", "srun --ntasks 4 --ntasks-per-node 2 --nodelist a,b --nodes 2 --mpi=pmix"
    )
    monkeypatch.setenv("PARSL_NUM_RANKS", "4")
    monkeypatch.setenv("PARSL_RANKS_PER_NODE", "2.0")  # Parsl writes a derived count as a float
    monkeypatch.setenv("PARSL_NUM_NODES", "2")
    config, ranks = mpi_task_config(base)
    assert ranks == 4
    assert config["use_mpiexec"] and config["nnodes"] == 2 and config["ncores"] == 2
    # what QCEngine builds from it (qcengine.util.create_mpi_invocation)
    from qcengine.config import get_config
    from qcengine.util import create_mpi_invocation

    command = create_mpi_invocation("nwchem", get_config(task_config=config))
    assert command[:5] == ["srun", "--ntasks", "4", "--ntasks-per-node", "2"]
    assert command[-2:] == ["--mpi=pmix", "nwchem"]

    hybrid, _ = mpi_task_config({**base, "ncores": 3})  # 3 threads per rank
    assert hybrid["cores_per_rank"] == 3 and hybrid["ncores"] == 6
    assert create_mpi_invocation("nwchem", get_config(task_config=hybrid))[2] == "4"


def test_site_file_example_loads() -> None:
    config, options, preset = load_site_file(CONFIG_DIR / "site.yaml")
    assert preset.name == "slurm" and _shape(config) == FILES["slurm.py"]
    provider = config.executors[0].provider
    assert options.max_workers == 8 and options.cores_per_worker == 4 and provider.max_blocks == 4
    assert provider.worker_init.rstrip().endswith("module load nwchem")


def test_site_file_resolves_through_the_config_loader(tmp_path: Path) -> None:
    site = tmp_path / "cluster.yaml"
    site.write_text(
        "type: slurm-mpi\nranks_per_node: 2\nmax_nodes: 4\nnodes_per_block: 2\nproject: ignored\n"
    )
    with pytest.raises(ConfigurationError, match="project"):
        resolve_config(str(site), {})
    site.write_text("type: lsf\nproject: chem\nqueue: batch\nmax_nodes: 3\nworkers_per_node: 2\n")
    resolved = resolve_config(str(site), {"address": "10.0.0.5"})
    executor = resolved.config.executors[0]
    assert isinstance(executor.provider, LSFProvider) and executor.address == "10.0.0.5"
    assert resolved.options.account == "chem" and executor.provider.max_blocks == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("type: slurm\npartitoin: debug\n", "partitoin: Extra inputs are not permitted"),
        ('type: slurm\npartition: "debug\\n#SBATCH --qos=high"\n', "partition: must be one line"),
        ("type: pbspro\nscheduler_options:\n  - '#PBS -l x'\n  - hostname\n", "'hostname' is not a #PBS"),
        (
            "type: slurm\nworkers_per_node: -2\n",
            "workers_per_node: Input should be greater than or equal to 1",
        ),
        ("type: slurm\nwalltime: soon\n", "walltime: String should match pattern"),
        ("type: slurm\nmax_nodes: many\n", "max_nodes must be a positive integer"),
        ("type: condor\n", "type: 'condor' is not a known type"),
        ("partition: debug\n", "type: missing"),
        ("type: slurm\n  partition: [debug\n", "invalid YAML at line 2"),
        ("- slurm\n", "expected a mapping"),
    ],
)
def test_bad_site_files_are_one_line_errors(tmp_path: Path, text: str, expected: str) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(text)
    with pytest.raises(ConfigurationError) as info:
        load_site_file(site)
    message = str(info.value)
    assert expected in message and str(site) in message and "\n" not in message


def test_missing_site_file_is_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigurationError, match=r"site file '.*nowhere\.yaml' does not exist$"):
        load_site_file(missing)
