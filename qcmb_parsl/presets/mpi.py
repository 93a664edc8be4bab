"""MPI presets: ``mpi`` (worker pools started by mpiexec inside an allocation the user already holds)
and ``slurm-mpi`` (Parsl's MPIExecutor on Slurm, each fragment a multi-rank MPI program).

``mpi`` is for a driver that itself runs inside ``salloc``/``qsub -I``/a batch script: mpiexec puts
one worker pool on each host of the allocation, no scheduler is called. ``slurm-mpi`` is for engines
that scale across ranks (NWChem): a fragment's ranks are chosen per task by
:func:`ranks_for_fragment`, and :func:`qcmb_parsl.mpi_syntax.mpi_task_config` hands them to QCEngine.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from parsl.executors import MPIExecutor
from parsl.launchers import SimpleLauncher
from parsl.providers import LocalProvider
from pydantic import Field, model_validator

from ..errors import ConfigurationError
from . import OneLine, Preset, python_env_init, register_preset
from .batch import ALLOCATION_HOSTFILE_INIT, ClusterOptions, cluster_htex, mpiexec_launcher, worker_sizing
from .blueprint import Call
from .htex import htex_config
from .slurm import SlurmOptions, slurm_provider

if TYPE_CHECKING:
    from ..planning.plan import FragmentTask

logger = logging.getLogger(__name__)


def allocation_node_count() -> int:
    """Nodes of the allocation this process runs in (Slurm, PBS, LSF), 1 outside any."""
    if os.environ.get("SLURM_JOB_NUM_NODES"):
        return int(os.environ["SLURM_JOB_NUM_NODES"])
    for variable in ("PBS_NODEFILE", "LSB_DJOB_HOSTFILE"):
        path = os.environ.get(variable)
        if path and Path(path).is_file():
            return max(len({line.strip() for line in Path(path).read_text().splitlines() if line.strip()}), 1)
    return 1


class MpiOptions(ClusterOptions):
    """Options of the ``mpi`` preset."""

    nodes: int | None = Field(
        None, ge=1, description="Worker pools to start (one per node); default: the allocation's node count."
    )
    hostfile: OneLine | None = Field(
        None,
        description="Host list for mpiexec; default: the allocation's ($PBS_NODEFILE, Slurm or LSF hosts).",
    )
    mpiexec_bind_cmd: OneLine = Field(
        "--bind-to", description="mpiexec's binding option (MPICH/Cray: --cpu-bind)."
    )
    mpiexec_overrides: OneLine | None = Field(
        None,
        description="Further mpiexec options; default: one pool per host, in the syntax of this mpiexec.",
    )


def mpi_blueprint(options: MpiOptions) -> Call:
    """HTEX + LocalProvider + MpiExecLauncher: one block on the hosts of the allocation the driver
    runs in (``salloc -N 4``, ``qsub -I``, a batch script), one worker pool per host; no scheduler is
    called. MpiExecLauncher reads the hosts from ``$PBS_NODEFILE``; under Slurm or LSF the
    worker_init writes one."""
    init = [ALLOCATION_HOSTFILE_INIT, options.worker_init]
    if options.hostfile:
        hostfile = Path(options.hostfile).expanduser().resolve()
        if not hostfile.is_file():
            raise ConfigurationError(f"preset 'mpi': hostfile {str(hostfile)!r} does not exist")
        init.insert(0, f"export PBS_NODEFILE={shlex.quote(str(hostfile))}")
    nodes = options.nodes or allocation_node_count()
    launcher = mpiexec_launcher(options.mpiexec_bind_cmd, options.mpiexec_overrides)
    logger.info("mpi preset: %d worker pool(s) via mpiexec %s", nodes, launcher.arguments)
    provider = Call(
        LocalProvider,
        {
            "nodes_per_block": nodes,
            "init_blocks": 1,
            "min_blocks": 0,
            "max_blocks": 1,
            "worker_init": python_env_init("\n".join(filter(None, init)), options.cores_per_worker),
            "launcher": launcher,
        },
    )
    return htex_config(cluster_htex("mpi", options, provider, **worker_sizing(options)))


class SlurmMpiOptions(SlurmOptions):
    """Options of the ``slurm-mpi`` preset: blocks as in ``slurm``, plus how many ranks each fragment gets."""

    max_workers: int | None = Field(
        None,
        ge=1,
        description="Fragments at once per block; default nodes_per_block (MPI tasks get whole nodes).",
    )
    ranks_per_node: int = Field(
        ..., ge=1, description="MPI ranks each node of a block offers (usually its cores)."
    )
    ranks_per_fragment_min: int = Field(
        1, ge=1, description="Ranks of the smallest fragment (one fragment's basis)."
    )
    ranks_per_fragment_max: int | None = Field(
        None, ge=1, description="Ranks of the largest fragments; default: every rank of a block."
    )
    cores_per_worker: int = Field(
        1, ge=1, description="Cores (threads) of each MPI rank: QCEngine's cores_per_rank, OMP_NUM_THREADS."
    )
    mpi_launcher: Literal["srun", "mpiexec", "aprun"] = Field(
        "srun", description="Launcher of each fragment."
    )
    launcher_options: OneLine | None = Field(
        None,
        description="Options of each fragment's launch; default for srun: --mpi=pmix (needed by Open MPI).",
    )

    @model_validator(mode="after")
    def _ranks(self) -> SlurmMpiOptions:
        if self.ranks_per_fragment_min > self.max_ranks():
            raise ValueError(
                f"ranks_per_fragment_min ({self.ranks_per_fragment_min}) exceeds the ranks of a block "
                f"({self.ranks_per_node} x {self.nodes_per_block} nodes)"
            )
        if (
            self.ranks_per_fragment_max is not None
            and self.ranks_per_fragment_max < self.ranks_per_fragment_min
        ):
            raise ValueError("ranks_per_fragment_max is below ranks_per_fragment_min")
        return self

    def workers_per_node(self, cores: int | None = None) -> int:
        """One: a fragment holds its nodes alone, so it may size its memory to the whole node."""
        return 1

    def requested_memory_per_node(self) -> int | None:
        """A fragment's memory is its node's: one fragment per node at a time."""
        return None if self.memory_per_worker is None else math.ceil(self.memory_per_worker)

    def fragment_launcher_options(self) -> str:
        """launcher_options, or srun's PMIx default: Open MPI built without Slurm's PMI fails otherwise."""
        if self.launcher_options is not None:
            return self.launcher_options
        return "--mpi=pmix" if self.mpi_launcher == "srun" else ""

    def max_ranks(self) -> int:
        """Ranks the largest fragment gets: the option, capped by what one block holds."""
        block = self.ranks_per_node * self.nodes_per_block
        return min(self.ranks_per_fragment_max or block, block)


def ranks_for_fragment(task: FragmentTask, options: SlurmMpiOptions) -> dict[str, Any]:
    """MPIExecutor resource specification: more ranks for fragments with more basis functions.

    The size measure is the number of fragments whose basis functions are present
    (``len(task.basis_fragments)``): a counterpoise monomer in the dimer basis costs about what the
    dimer costs. Ranks grow linearly
    from ``ranks_per_fragment_min`` for one fragment's basis and are capped by ``max_ranks``; beyond one
    node they are rounded down to whole nodes. Parsl's MPIExecutor gives each task whole nodes, so ranks
    short of a node leave that node's other cores idle while the fragment runs.
    """
    ranks = min(options.ranks_per_fragment_min * len(task.basis_fragments), options.max_ranks())
    nodes = math.ceil(ranks / options.ranks_per_node)
    if nodes > 1:
        ranks = (ranks // options.ranks_per_node) * options.ranks_per_node
        nodes = ranks // options.ranks_per_node
    logger.debug("%s: %d ranks on %d node(s)", task.label, ranks, nodes)
    return {
        "num_nodes": nodes,
        "ranks_per_node": ranks // nodes,
        "num_ranks": ranks,
        "launcher_options": options.fragment_launcher_options(),
    }


def slurm_mpi_blueprint(options: SlurmMpiOptions) -> Call:
    """MPIExecutor on SlurmProvider: one worker pool per block (SimpleLauncher, which MPIExecutor
    requires); each fragment is an MPI program started from it with ``$PARSL_MPI_PREFIX``, which
    qcmb_parsl turns into QCEngine's ``mpiexec_command``. The ranks of each fragment come from its
    ``parsl_resource_specification``: the preset sizes them per fragment; with this file pass them
    yourself (``ParslExecutor(file, resource_specification=...)``), e.g. ``{"num_nodes": 1,
    "ranks_per_node": 32, "launcher_options": "--mpi=pmix"}``."""
    provider = slurm_provider(
        options,
        launcher=Call(SimpleLauncher),
        scheduler_options=f"#SBATCH --ntasks-per-node={options.ranks_per_node}\n"
        f"#SBATCH --cpus-per-task={options.cores_per_worker}",
    )
    executor = cluster_htex(
        "slurm-mpi",
        options,
        provider,
        executor_class=MPIExecutor,
        mpi_launcher=options.mpi_launcher,
        max_workers_per_block=options.max_workers or options.nodes_per_block,
    )
    return htex_config(executor)


register_preset(
    Preset(
        "mpi",
        "HighThroughputExecutor with worker pools started by mpiexec on the hosts of the current allocation",
        "an MPI's mpiexec; run the driver inside the allocation (salloc, qsub -I, a batch script)",
        MpiOptions,
        mpi_blueprint,
        purpose="a driver inside an allocation you already have (salloc, qsub -I): pools on every host",
        file_options={"nodes": 1, "mpiexec_overrides": "--map-by node"},
    )
)
register_preset(
    Preset(
        "slurm-mpi",
        "MPIExecutor on Slurm batch jobs: each fragment a multi-rank MPI program (ranks by fragment size)",
        "Slurm with srun --mpi=pmix (or mpiexec) and an MPI build of the engine (NWChem)",
        SlurmMpiOptions,
        slurm_mpi_blueprint,
        ranks_for_fragment,
        file_options={"ranks_per_node": 32},
        purpose="fragments as multi-rank MPI programs (NWChem under mpiexec), ranks by fragment size",
    )
)
