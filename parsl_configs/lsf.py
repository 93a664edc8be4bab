"""HighThroughputExecutor on LSF jobs: the ``lsf`` preset as a file to copy and edit.

mpiexec starts one worker pool on each host of a job; MpiExecLauncher reads ``$PBS_NODEFILE``, which
the worker_init points at LSF's ``$LSB_DJOB_HOSTFILE``. Lines marked ``# site`` are the ones a site
changes; on Summit-like machines use ``JsrunLauncher`` (``parsl/configs/summit.py``).
"""

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.launchers import MpiExecLauncher
from parsl.providers import LSFProvider

config = Config(
    executors=[
        HighThroughputExecutor(
            label="lsf",
            # address=address_by_interface("ib0"),  # site: an address of the driver the nodes can reach
            max_workers_per_node=8,  # site: fragments at once per node
            cores_per_worker=4,  # site: cores of each fragment
            encrypted=True,
            heartbeat_period=2,
            heartbeat_threshold=10,
            block_error_handler=False,  # a dead block's tasks are retried on a new one
            provider=LSFProvider(
                project="YOUR_PROJECT",  # site: project to charge
                queue="normal",  # site: queue name
                nodes_per_block=1,  # site
                request_by_nodes=False,  # site: True for '#BSUB -nnodes' (CSM sites such as Summit)
                cores_per_node=32,  # site: cores per node
                cores_per_block=32,  # site: cores_per_node * nodes_per_block
                bsub_redirection=True,  # 'bsub < script', so that the #BSUB lines are read
                scheduler_options="",  # site: further '#BSUB ...' lines
                worker_init='export PBS_NODEFILE="$LSB_DJOB_HOSTFILE"',  # site: add module loads etc.
                init_blocks=1,
                min_blocks=0,
                max_blocks=4,  # site
                walltime="01:00:00",  # site
                cmd_timeout=60,
                launcher=MpiExecLauncher(
                    bind_cmd="--bind-to", overrides="--map-by node"
                ),  # site: MPICH "-ppn 1"
            ),
        )
    ],
    strategy_period=0.5,
)
