"""The ``torque`` preset: worker pools in PBS/Torque jobs, as QCFractal's ``torque`` executors run them.

QCFractal's compute manager builds its ``torque`` executors on Parsl's TorqueProvider, whose job
scripts ask for ``#PBS -l nodes=N:ppn=1``: the syntax Torque understands, and OpenPBS and PBS Pro
accept too. PBSProProvider's ``select=N:ncpus=M`` (the ``pbspro`` preset) is refused by a Torque
server, so a manager file of type ``torque`` runs here as it runs under QCFractal. Where the server
confines a job to the cores it asked for, ``ppn=1`` leaves each node one core: there, use the
``pbspro`` preset (PBS Pro, OpenPBS) or a ``scheduler_options`` directive of the site for whole nodes.
"""

from __future__ import annotations

from typing import ClassVar

from parsl.providers import TorqueProvider
from pydantic import Field

from . import OneLine, Preset, python_env_init, register_preset
from .batch import BatchOptions, cluster_htex, mpiexec_launcher, worker_sizing
from .blueprint import Call
from .htex import htex_config


class TorqueOptions(BatchOptions):
    """Options of the ``torque`` preset (QCFractal's names for its torque executors)."""

    directive: ClassVar[str] = "#PBS"

    queue: OneLine | None = Field(None, description="Queue the jobs go to.")
    mpiexec_bind_cmd: OneLine = Field(
        "--bind-to", description="mpiexec's binding option (MPICH/Cray: --cpu-bind)."
    )
    mpiexec_overrides: OneLine | None = Field(
        None, description="Further mpiexec options; default: one worker pool per node in this MPI's syntax."
    )


def torque_blueprint(options: TorqueOptions) -> Call:
    """One worker pool per node of each Torque job, started by mpiexec over ``$PBS_NODEFILE``."""
    provider = Call(
        TorqueProvider,
        {
            "account": options.account,
            "queue": options.queue,
            "scheduler_options": options.scheduler_options,
            "worker_init": python_env_init(options.worker_init, options.cores_per_worker),
            "nodes_per_block": options.nodes_per_block,
            **options.block_settings(),
            "launcher": mpiexec_launcher(options.mpiexec_bind_cmd, options.mpiexec_overrides),
        },
    )
    return htex_config(cluster_htex("torque", options, provider, **worker_sizing(options)))


register_preset(
    Preset(
        "torque",
        "HighThroughputExecutor on PBS/Torque jobs (nodes=N:ppn=1), one worker pool per node via mpiexec",
        "Torque, OpenPBS or PBS Pro (qsub, qstat) and an MPI's mpiexec on the nodes",
        TorqueOptions,
        torque_blueprint,
        purpose="batch jobs on a PBS/Torque cluster, as QCFractal's torque executors (nodes=N:ppn=1)",
        file_options={"mpiexec_overrides": "--map-by node"},
    )
)
