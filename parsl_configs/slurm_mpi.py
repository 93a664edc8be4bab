"""The ``slurm-mpi`` preset as a plain Parsl config file: MPIExecutor on Slurm batch jobs: each
fragment a multi-rank MPI program (ranks by fragment size).

MPIExecutor on SlurmProvider: one worker pool per block (SimpleLauncher, which MPIExecutor
requires); each fragment is an MPI program started from it with ``$PARSL_MPI_PREFIX``, which
qcmb_parsl turns into QCEngine's ``mpiexec_command``. The ranks of each fragment come from its
``parsl_resource_specification``: the preset sizes them per fragment; with this file pass them
yourself (``ParslExecutor(file, resource_specification=...)``), e.g. ``{"num_nodes": 1,
"ranks_per_node": 32, "launcher_options": "--mpi=pmix"}``.

Needs: Slurm with srun --mpi=pmix (or mpiexec) and an MPI build of the engine (NWChem).

Written by ``qcmb-parsl presets --write-configs DIR`` from the preset with its default options and
ranks_per_node=32. Copy it, edit the lines marked ``# site``, and pass its path:
``ParslExecutor("my_slurm_mpi.py")`` or ``qcmb-parsl run INPUT.json --config my_slurm_mpi.py``.
"""

import os
import sys

from parsl.config import Config
from parsl.executors import MPIExecutor
from parsl.launchers import SimpleLauncher
from parsl.providers import SlurmProvider

config = Config(
    executors=[
        MPIExecutor(
            label="slurm-mpi",
            # site: where workers reach the driver, e.g. address_by_interface('ib0'); None: they probe all
            address=None,
            encrypted=True,  # CurveZMQ: only this run's workers get tasks
            heartbeat_period=2,  # a lost block is noticed in ~10 s, not Parsl's default 120 s
            heartbeat_threshold=10,
            poll_period=100,  # ms between idle looks at sockets: Parsl's 10 costs the driver CPU
            block_error_handler=False,  # a dead block's tasks are retried on a new one
            mpi_launcher="srun",  # site: "mpiexec" (MPICH syntax) or "aprun" where srun is not used
            max_workers_per_block=1,  # site: fragments at once per block, at most nodes_per_block
            provider=SlurmProvider(
                partition=None,  # site: partition name
                account=None,  # site: account to charge
                qos=None,  # site: quality of service
                constraint=None,  # site: node features the jobs need
                exclusive=True,  # site: whole nodes for each job
                nodes_per_block=1,  # site: nodes per batch job
                cores_per_node=None,  # site: cores requested per node
                mem_per_node=None,
                init_blocks=1,
                min_blocks=0,
                max_blocks=1,  # site: batch jobs at most at once
                walltime="01:00:00",  # site: of each batch job, HH:MM:SS
                cmd_timeout=60,
                # site: further directive lines of this scheduler
                scheduler_options="\n".join(
                    [
                        "#SBATCH --ntasks-per-node=32",
                        "#SBATCH --cpus-per-task=1",
                    ]
                ),
                # site: add module loads; keep the caps equal to cores_per_worker
                worker_init="\n".join(
                    [
                        f"export PATH={os.path.dirname(sys.executable)}:$PATH",
                        "export OMP_NUM_THREADS=1",
                        "export MKL_NUM_THREADS=1",
                        "export OPENBLAS_NUM_THREADS=1",
                        "export VECLIB_MAXIMUM_THREADS=1",
                        "export NUMEXPR_NUM_THREADS=1",
                    ]
                ),
                launcher=SimpleLauncher(),  # MPIExecutor requires it
            ),
        ),
    ],
    strategy_period=0.5,
)
