"""Batch-scheduler presets: what every cluster preset shares, and the PBS Pro and LSF presets.

Every preset whose workers run on other nodes builds its HighThroughputExecutor here, in one place
(on :mod:`.htex`), so that all of them reach the driver the same way (``address``/``interface``),
encrypt what crosses the network, and notice a lost block within seconds. The Slurm presets
(``slurm.py``, ``mpi.py``) use the same pieces.
"""

from __future__ import annotations

import logging
import math
from typing import Annotated, Any, ClassVar

from parsl.addresses import address_by_interface
from parsl.executors import HighThroughputExecutor
from parsl.launchers import MpiExecLauncher
from parsl.providers import LSFProvider, PBSProProvider
from pydantic import AliasChoices, Field, field_validator, model_validator

from ..errors import ConfigurationError
from ..mpi_syntax import one_pool_per_node_options
from . import OneLine, Preset, Words, python_env_init, register_preset
from .blueprint import Call
from .htex import HtexOptions, htex, htex_config, prefetch

logger = logging.getLogger(__name__)

#: Seconds a scheduler command (sbatch, qsub, bsub, their status queries) may take.
SCHEDULER_CMD_TIMEOUT = 60

#: Shell lines for a job's start: a host list for mpiexec (MpiExecLauncher reads ``$PBS_NODEFILE``)
#: when the scheduler is Slurm or LSF, whose jobs have none under that name.
ALLOCATION_HOSTFILE_INIT = """\
if [ -z "${PBS_NODEFILE:-}" ]; then
    if [ -n "${SLURM_JOB_NODELIST:-}" ]; then
        export PBS_NODEFILE="${TMPDIR:-/tmp}/qcmb_parsl_nodes.$$"
        scontrol show hostnames "$SLURM_JOB_NODELIST" > "$PBS_NODEFILE"
    elif [ -n "${LSB_DJOB_HOSTFILE:-}" ]; then
        export PBS_NODEFILE="$LSB_DJOB_HOSTFILE"
    fi
fi"""


#: A batch job's wall time: what sbatch, qsub and bsub take.
WallTime = Annotated[str, Words("hours:minutes:seconds")]
#: Lines for a job script's head, each a directive of its scheduler (``#SBATCH ...``).
DirectiveLines = Annotated[str, Words("scheduler directive lines")]


def _lines(value: Any) -> Any:
    """QCFractal writes worker_init and scheduler_options as lists of lines; Parsl takes one string."""
    if isinstance(value, (list, tuple)):
        return "\n".join(str(line) for line in value)
    return value


class ClusterOptions(HtexOptions):
    """Options of every preset whose workers may run on other nodes than the driver."""

    max_workers: int | None = Field(
        None,
        ge=1,
        validation_alias=AliasChoices("max_workers", "workers_per_node"),
        description="Fragments at once per node (alias workers_per_node); default: cores / cores_per_worker.",
    )
    address: OneLine | None = Field(
        None,
        description="Driver address the workers connect to; default: workers probe all of its addresses.",
    )
    interface: OneLine | None = Field(
        None, description="Network interface whose address workers connect to (e.g. ib0), instead of address."
    )
    extra_executor_options: dict[str, Any] = Field(
        default_factory=dict, description="Further HighThroughputExecutor arguments, overriding the preset's."
    )

    @field_validator("worker_init", mode="before")
    @classmethod
    def _worker_init_lines(cls, value: Any) -> Any:
        return _lines(value)

    @model_validator(mode="after")
    def _one_address(self) -> ClusterOptions:
        if self.address and self.interface:
            raise ValueError("give address or interface, not both")
        return self

    def executor_address(self) -> str | None:
        """The address workers are told to connect to; None lets them probe every address of the driver."""
        if self.interface:
            try:
                return address_by_interface(self.interface)
            except OSError as exc:
                raise ConfigurationError(f"interface {self.interface!r}: {exc}") from None
        return self.address


class BatchOptions(ClusterOptions):
    """Options of presets that submit blocks (batch jobs) to a scheduler; names as in QCFractal.

    ``directive`` is how the scheduler's lines start in a job script: every line of
    ``scheduler_options`` must be one of them.
    """

    directive: ClassVar[str]

    account: OneLine | None = Field(None, description="Account (allocation, project) charged for the jobs.")
    walltime: WallTime = Field(
        "01:00:00", pattern=r"^(\d+-)?\d+:\d{2}:\d{2}$", description="Wall time of each block, HH:MM:SS."
    )
    nodes_per_block: int = Field(1, ge=1, description="Nodes in each batch job (block).")
    init_blocks: int = Field(1, ge=0, description="Blocks submitted at start.")
    max_blocks: int = Field(1, ge=1, description="Blocks (batch jobs) at most at once.")
    scheduler_options: DirectiveLines = Field(
        "", description="Extra scheduler directive lines for each job script."
    )

    @field_validator("scheduler_options", mode="before")
    @classmethod
    def _scheduler_lines(cls, value: Any) -> Any:
        return _lines(value)

    @field_validator("scheduler_options")
    @classmethod
    def _directives_only(cls, value: str) -> str:
        """Only this scheduler's directives: any other line ends the directives the scheduler reads."""
        for line in value.splitlines():
            if line.strip() and not line.startswith(f"{cls.directive} "):
                raise ValueError(
                    f"line {line!r} is not a {cls.directive} directive (each line: {cls.directive} ...)"
                )
        return value

    @field_validator("walltime", mode="before")
    @classmethod
    def _seconds_to_hms(cls, value: Any) -> Any:
        """QCFractal accepts a wall time in seconds too."""
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value // 3600:02d}:{value % 3600 // 60:02d}:{value % 60:02d}"
        return value

    @model_validator(mode="after")
    def _blocks(self) -> BatchOptions:
        if self.init_blocks > self.max_blocks:
            raise ValueError(f"init_blocks ({self.init_blocks}) exceeds max_blocks ({self.max_blocks})")
        return self

    def block_settings(self) -> dict[str, Any]:
        """Provider arguments every batch preset shares: how many jobs, how long, how patiently."""
        return {
            "init_blocks": self.init_blocks,
            "min_blocks": 0,
            "max_blocks": self.max_blocks,
            "walltime": self.walltime,
            "cmd_timeout": SCHEDULER_CMD_TIMEOUT,
        }

    def requested_cores_per_node(self) -> int | None:
        """Cores to request per node when the number of workers is fixed; None: leave to the scheduler."""
        if self.max_workers is None:
            return None
        return self.max_workers * self.cores_per_worker

    def requested_memory_per_node(self) -> int | None:
        """GiB to request per node when both workers and their memory are fixed."""
        if self.max_workers is None or self.memory_per_worker is None:
            return None
        return math.ceil(self.max_workers * self.memory_per_worker)


def cluster_htex(
    label: str,
    options: ClusterOptions,
    provider: Call,
    executor_class: type[HighThroughputExecutor] = HighThroughputExecutor,
    **settings: Any,
) -> Call:
    """The executor of a cluster preset (:func:`.htex.htex`) at the options' address, the user's
    ``extra_executor_options`` last; ``settings`` are the preset's own executor arguments."""
    address = options.executor_address()
    if executor_class is HighThroughputExecutor:
        settings = {**prefetch(options), **settings}
    logger.debug(
        "%s: %s, workers connect to %s",
        label,
        executor_class.__name__,
        address or "any address of the driver",
    )
    try:
        return htex(
            label,
            provider,
            address=address,
            executor_class=executor_class,
            **settings,
            **options.extra_executor_options,
        )
    except TypeError as exc:
        raise ConfigurationError(f"extra_executor_options for {executor_class.__name__}: {exc}") from None


def worker_sizing(options: ClusterOptions) -> dict[str, Any]:
    """HTEX arguments that size a node's workers; with no max_workers each node divides its own cores."""
    sizing: dict[str, Any] = {"cores_per_worker": options.cores_per_worker}
    if options.max_workers is not None:
        sizing["max_workers_per_node"] = options.max_workers
    if options.memory_per_worker is not None:
        sizing["mem_per_worker"] = options.memory_per_worker
    return sizing


def mpiexec_launcher(bind_cmd: str, overrides: str | None) -> Call:
    """MpiExecLauncher starting one worker pool per host; ``overrides`` None: this MPI's syntax for it."""
    options = one_pool_per_node_options() if overrides is None else overrides
    return Call(MpiExecLauncher, {"bind_cmd": bind_cmd, "overrides": options})


class PBSProOptions(BatchOptions):
    """Options of the ``pbspro`` preset."""

    directive: ClassVar[str] = "#PBS"

    queue: OneLine | None = Field(None, description="Queue the jobs go to.")
    cpus_per_node: int | None = Field(
        None, ge=1, description="ncpus requested per node; default: max_workers * cores_per_worker."
    )
    select_options: OneLine = Field("", description="Extra resources of the select statement (e.g. ngpus=4).")
    mpiexec_bind_cmd: OneLine = Field(
        "--bind-to", description="mpiexec's binding option (MPICH/Cray: --cpu-bind)."
    )
    mpiexec_overrides: OneLine | None = Field(
        None, description="Further mpiexec options; default: one worker pool per node in this MPI's syntax."
    )


def pbspro_blueprint(options: PBSProOptions) -> Call:
    """One worker pool per node of each PBS Pro job, started by mpiexec over ``$PBS_NODEFILE``
    (compare ``parsl/configs/polaris.py``)."""
    cpus = options.cpus_per_node or options.requested_cores_per_node() or options.cores_per_worker
    provider = Call(
        PBSProProvider,
        {
            "account": options.account,
            "queue": options.queue,
            "scheduler_options": options.scheduler_options,
            "select_options": options.select_options,
            "worker_init": python_env_init(options.worker_init, options.cores_per_worker),
            "nodes_per_block": options.nodes_per_block,
            "cpus_per_node": cpus,
            **options.block_settings(),
            "launcher": mpiexec_launcher(options.mpiexec_bind_cmd, options.mpiexec_overrides),
        },
    )
    return htex_config(cluster_htex("pbspro", options, provider, **worker_sizing(options)))


class LSFOptions(BatchOptions):
    """Options of the ``lsf`` preset."""

    directive: ClassVar[str] = "#BSUB"

    account: OneLine | None = Field(
        None,
        validation_alias=AliasChoices("account", "project"),
        description="LSF project charged for the jobs (alias project, QCFractal's name).",
    )
    queue: OneLine | None = Field(None, description="Queue the jobs go to.")
    cores_per_node: int | None = Field(
        None,
        ge=1,
        description="Cores per node; needed when request_by_nodes is false. Default: from workers.",
    )
    request_by_nodes: bool = Field(
        True, description="Request whole nodes (#BSUB -nnodes); false: cores with span[ptile=cores_per_node]."
    )
    bsub_redirection: bool = Field(
        True, description="Submit as `bsub < script`, so that #BSUB lines are read."
    )
    mpiexec_bind_cmd: OneLine = Field("--bind-to", description="mpiexec's binding option.")
    mpiexec_overrides: OneLine | None = Field(
        None, description="Further mpiexec options; default: one worker pool per node in this MPI's syntax."
    )


def lsf_blueprint(options: LSFOptions) -> Call:
    """One worker pool per node of each LSF job, started by mpiexec over the job's host file
    (``$LSB_DJOB_HOSTFILE``); on Summit-like machines use ``JsrunLauncher`` (``parsl/configs/summit.py``)."""
    cores_per_node = options.cores_per_node or options.requested_cores_per_node()
    if not options.request_by_nodes and cores_per_node is None:
        raise ConfigurationError("preset 'lsf': request_by_nodes false needs cores_per_node (or max_workers)")
    worker_init = "\n".join(filter(None, [ALLOCATION_HOSTFILE_INIT, options.worker_init]))
    provider = Call(
        LSFProvider,
        {
            "project": options.account,
            "queue": options.queue,
            "nodes_per_block": options.nodes_per_block,
            "cores_per_node": cores_per_node,
            "cores_per_block": None if cores_per_node is None else cores_per_node * options.nodes_per_block,
            "request_by_nodes": options.request_by_nodes,
            "bsub_redirection": options.bsub_redirection,
            "scheduler_options": options.scheduler_options,
            "worker_init": python_env_init(worker_init, options.cores_per_worker),
            **options.block_settings(),
            "launcher": mpiexec_launcher(options.mpiexec_bind_cmd, options.mpiexec_overrides),
        },
    )
    return htex_config(cluster_htex("lsf", options, provider, **worker_sizing(options)))


register_preset(
    Preset(
        "pbspro",
        "HighThroughputExecutor on PBS Pro jobs, one worker pool per node via mpiexec",
        "PBS Pro (qsub, qstat) and an MPI's mpiexec on the nodes",
        PBSProOptions,
        pbspro_blueprint,
        purpose="batch jobs on a PBS Pro or OpenPBS cluster (select=N:ncpus=M)",
        file_options={"mpiexec_overrides": "--map-by node"},
    )
)
register_preset(
    Preset(
        "lsf",
        "HighThroughputExecutor on LSF jobs, one worker pool per node via mpiexec",
        "LSF (bsub, bjobs) and an MPI's mpiexec on the nodes",
        LSFOptions,
        lsf_blueprint,
        purpose="batch jobs on an LSF cluster",
        file_options={"mpiexec_overrides": "--map-by node"},
    )
)
