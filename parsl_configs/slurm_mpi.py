"""Parsl's MPIExecutor on Slurm batch jobs: the ``slurm-mpi`` preset as a file to copy and edit.

One worker pool per block (SimpleLauncher); each fragment is an MPI program started from it with
``$PARSL_MPI_PREFIX`` (srun here), which qcmb_parsl turns into QCEngine's ``mpiexec_command``. The
ranks of each fragment come from its ``parsl_resource_specification``: with this file (rather than the
preset, which sizes them per fragment) pass them yourself, e.g. ``{"num_nodes": 1, "ranks_per_node":
32, "launcher_options": "--mpi=pmix"}``. Lines marked ``# site`` are the ones a site changes.
"""

from parsl.config import Config
from parsl.executors import MPIExecutor
from parsl.launchers import SimpleLauncher
from parsl.providers import SlurmProvider

config = Config(
    executors=[
        MPIExecutor(
            label="slurm-mpi",
            # address=address_by_interface("ib0"),  # site: an address of the driver the nodes can reach
            mpi_launcher="srun",  # site: "mpiexec" (MPICH syntax) or "aprun" where srun is not used
            max_workers_per_block=2,  # site: fragments at once per block, at most nodes_per_block
            encrypted=True,
            heartbeat_period=2,
            heartbeat_threshold=10,
            block_error_handler=False,  # a dead block's tasks are retried on a new one
            provider=SlurmProvider(
                partition="compute",  # site: partition name
                account="YOUR_ACCOUNT",  # site: account to charge, or None
                exclusive=True,
                nodes_per_block=2,  # site: nodes per batch job
                init_blocks=1,
                min_blocks=0,
                max_blocks=1,
                walltime="01:00:00",  # site
                # site: MPI ranks per node (usually its cores) and threads per rank
                scheduler_options="#SBATCH --ntasks-per-node=32\n#SBATCH --cpus-per-task=1",
                worker_init="",  # site: e.g. "module load nwchem openmpi"
                cmd_timeout=60,
                launcher=SimpleLauncher(),  # MPIExecutor requires it
            ),
        )
    ],
    strategy_period=0.5,
)
