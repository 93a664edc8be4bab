"""HighThroughputExecutor on PBS Pro jobs: the ``pbspro`` preset as a file to copy and edit.

mpiexec starts one worker pool on each node of a job (over ``$PBS_NODEFILE``). Lines marked ``# site``
are the ones a site changes; compare ``parsl/configs/polaris.py``.
"""

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.launchers import MpiExecLauncher
from parsl.providers import PBSProProvider

config = Config(
    executors=[
        HighThroughputExecutor(
            label="pbspro",
            # address=address_by_interface("bond0"),  # site: an address of the driver the nodes can reach
            max_workers_per_node=8,  # site: fragments at once per node
            cores_per_worker=4,  # site: cores of each fragment
            encrypted=True,
            heartbeat_period=2,
            heartbeat_threshold=10,
            block_error_handler=False,  # a dead block's tasks are retried on a new one
            provider=PBSProProvider(
                account="YOUR_ACCOUNT",  # site: project to charge
                queue="workq",  # site: queue name
                select_options="",  # site: e.g. "ngpus=4"
                scheduler_options="",  # site: further '#PBS ...' lines, e.g. "#PBS -l filesystems=home"
                worker_init="",  # site: e.g. "module load conda; conda activate qcmb"
                nodes_per_block=1,  # site
                cpus_per_node=32,  # site: cores requested per node
                init_blocks=1,
                min_blocks=0,
                max_blocks=4,  # site
                walltime="01:00:00",  # site
                cmd_timeout=60,
                # site: one pool per node: Open MPI "--map-by node"; MPICH/Cray bind_cmd="--cpu-bind",
                # overrides="--ppn 1"
                launcher=MpiExecLauncher(bind_cmd="--bind-to", overrides="--map-by node"),
            ),
        )
    ],
    strategy_period=0.5,
)
