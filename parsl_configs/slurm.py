"""HighThroughputExecutor on Slurm batch jobs: the ``slurm`` preset as a file to copy and edit.

The driver runs on a login node and submits blocks with sbatch; srun starts one worker pool on each
node of a block; each fragment runs in one worker slot. Lines marked ``# site`` are the ones a site
changes. Use it as ``ParslExecutor("parsl_configs/slurm.py")``.
"""

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.launchers import SrunLauncher
from parsl.providers import SlurmProvider

config = Config(
    executors=[
        HighThroughputExecutor(
            label="slurm",
            # address=address_by_interface("ib0"),  # site: an address of the driver the nodes can reach;
            #                                        # unset, the workers probe all of them
            max_workers_per_node=8,  # site: fragments at once per node
            cores_per_worker=4,  # site: cores of each fragment (QCEngine's ncores)
            encrypted=True,  # workers connect across the network
            heartbeat_period=2,  # a lost block is noticed in ~10 s, not the default 120 s
            heartbeat_threshold=10,
            block_error_handler=False,  # a dead block's tasks are retried on a new one
            provider=SlurmProvider(
                partition="compute",  # site: partition name
                account="YOUR_ACCOUNT",  # site: account to charge, or None
                # qos="normal",  # site
                exclusive=True,
                nodes_per_block=1,  # site: nodes per batch job
                cores_per_node=32,  # site: max_workers_per_node * cores_per_worker
                init_blocks=1,
                min_blocks=0,
                max_blocks=4,  # site: batch jobs at most at once
                walltime="01:00:00",  # site
                scheduler_options="",  # site: further '#SBATCH ...' lines
                # site: the environment of the workers, e.g. "module load nwchem\nsource ~/venv/bin/activate"
                worker_init="",
                cmd_timeout=60,
                launcher=SrunLauncher(overrides="--cpus-per-task=$SLURM_CPUS_ON_NODE"),
            ),
        )
    ],
    strategy_period=0.5,
)
