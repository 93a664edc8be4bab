"""The ``slurm`` preset: worker pools in Slurm batch jobs, started with srun on every node of a block.

The shape of Parsl's own Slurm configs (``parsl/configs/frontera.py``): a HighThroughputExecutor on a
SlurmProvider with an SrunLauncher. The driver stays on the login node and submits blocks; each
fragment runs in one worker slot of ``cores_per_worker`` cores.
"""

from __future__ import annotations

from typing import ClassVar

from parsl.launchers import SrunLauncher
from parsl.providers import SlurmProvider
from pydantic import Field

from . import OneLine, Preset, python_env_init, register_preset
from .batch import BatchOptions, cluster_htex, worker_sizing
from .blueprint import Call
from .htex import htex_config

#: srun options of the step that starts the worker pools. Since Slurm 22.05 a step no longer inherits
#: the job's --cpus-per-task, so without this each pool's step is one CPU wide (and, where Slurm
#: confines steps with cgroups, its workers share that CPU).
POOL_STEP_OPTIONS = "--cpus-per-task=$SLURM_CPUS_ON_NODE"


class SlurmOptions(BatchOptions):
    """Options of the ``slurm`` preset (QCFractal's names where it has one)."""

    directive: ClassVar[str] = "#SBATCH"

    partition: OneLine | None = Field(
        None, description="Partition the jobs go to; default: the cluster's default."
    )
    qos: OneLine | None = Field(None, description="Quality of service of the jobs.")
    constraint: OneLine | None = Field(None, description="Node features the jobs need (--constraint).")
    exclusive: bool = Field(True, description="Whole nodes for each job (--exclusive).")


def slurm_provider(
    options: SlurmOptions, *, launcher: Call, scheduler_options: str = "", cores_per_node: int | None = None
) -> Call:
    """The SlurmProvider both Slurm presets share; they differ in launcher and directives."""
    return Call(
        SlurmProvider,
        {
            "partition": options.partition,
            "account": options.account,
            "qos": options.qos,
            "constraint": options.constraint,
            "exclusive": options.exclusive,
            "nodes_per_block": options.nodes_per_block,
            "cores_per_node": cores_per_node,
            "mem_per_node": options.requested_memory_per_node(),
            **options.block_settings(),
            "scheduler_options": "\n".join(filter(None, [scheduler_options, options.scheduler_options])),
            "worker_init": python_env_init(options.worker_init, options.cores_per_worker),
            "launcher": launcher,
        },
    )


def slurm_blueprint(options: SlurmOptions) -> Call:
    """HTEX + SlurmProvider + SrunLauncher, the shape of ``parsl/configs/frontera.py``: the driver
    submits blocks with sbatch, srun starts one worker pool on each node of a block, and each
    fragment runs in one worker slot."""
    provider = slurm_provider(
        options,
        launcher=Call(SrunLauncher, {"overrides": POOL_STEP_OPTIONS}),
        cores_per_node=options.requested_cores_per_node(),
    )
    return htex_config(cluster_htex("slurm", options, provider, **worker_sizing(options)))


register_preset(
    Preset(
        "slurm",
        "HighThroughputExecutor on Slurm batch jobs (SlurmProvider, SrunLauncher)",
        "Slurm (sbatch, squeue, srun) reachable from the driver",
        SlurmOptions,
        slurm_blueprint,
        purpose="batch jobs on a Slurm cluster, submitted and cancelled for you",
    )
)
