"""The ``slurm`` preset as a plain Parsl config file: HighThroughputExecutor on Slurm batch jobs
(SlurmProvider, SrunLauncher).

HTEX + SlurmProvider + SrunLauncher, the shape of ``parsl/configs/frontera.py``: the driver submits
blocks with sbatch, srun starts one worker pool on each node of a block, and each fragment runs in
one worker slot.

Needs: Slurm (sbatch, squeue, srun) reachable from the driver.

Written by ``qcmb-parsl presets --write-configs DIR`` from the preset with its default options. Copy
it, edit the lines marked ``# site``, and pass its path: ``ParslExecutor("my_slurm.py")`` or
``qcmb-parsl run INPUT.json --config my_slurm.py``.
"""

import os
import sys

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.launchers import SrunLauncher
from parsl.providers import SlurmProvider

config = Config(
    executors=[
        HighThroughputExecutor(
            label="slurm",
            # site: where workers reach the driver, e.g. address_by_interface('ib0'); None: they probe all
            address=None,
            encrypted=True,  # CurveZMQ: only this run's workers get tasks
            heartbeat_period=2,  # a lost block is noticed in ~10 s, not Parsl's default 120 s
            heartbeat_threshold=10,
            poll_period=100,  # ms between idle looks at sockets: Parsl's 10 costs the driver CPU
            block_error_handler=False,  # a dead block's tasks are retried on a new one
            cores_per_worker=1,  # site: cores of each fragment (QCEngine's ncores)
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
                scheduler_options="",  # site: further directive lines of this scheduler
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
                launcher=SrunLauncher(
                    # since Slurm 22.05 a step does not inherit --cpus-per-task
                    overrides="--cpus-per-task=$SLURM_CPUS_ON_NODE",
                ),
            ),
        ),
    ],
    strategy_period=0.5,
)
