"""Worker pools started by mpiexec on the hosts of an allocation you already hold: the ``mpi`` preset.

Run the driver inside the allocation (``salloc -N 4``, ``qsub -I``, or a batch script); mpiexec starts
one worker pool per host and no scheduler is called. MpiExecLauncher reads the hosts from
``$PBS_NODEFILE``; under Slurm or LSF the worker_init below writes one. Lines marked ``# site`` are
the ones a site changes. Use it as ``ParslExecutor("parsl_configs/mpi.py")``.
"""

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.launchers import MpiExecLauncher
from parsl.providers import LocalProvider

config = Config(
    executors=[
        HighThroughputExecutor(
            label="mpi",
            # address=address_by_interface("ib0"),  # site: an address of this node the others can reach
            max_workers_per_node=8,  # site: fragments at once per node
            cores_per_worker=4,  # site: cores of each fragment
            encrypted=True,
            heartbeat_period=2,
            heartbeat_threshold=10,
            block_error_handler=False,  # a dead block's tasks are retried on a new one
            provider=LocalProvider(
                nodes_per_block=4,  # site: nodes of the allocation (one worker pool each)
                init_blocks=1,
                min_blocks=0,
                max_blocks=1,
                # site: add e.g. "module load nwchem" or activating the Python environment
                worker_init="""
if [ -z "${PBS_NODEFILE:-}" ] && [ -n "${SLURM_JOB_NODELIST:-}" ]; then
    export PBS_NODEFILE="${TMPDIR:-/tmp}/qcmb_parsl_nodes.$$"
    scontrol show hostnames "$SLURM_JOB_NODELIST" > "$PBS_NODEFILE"
fi
""",
                # site: Open MPI places one pool per host with "--map-by node", MPICH with "-ppn 1";
                # Cray/MPICH use bind_cmd="--cpu-bind"
                launcher=MpiExecLauncher(bind_cmd="--bind-to", overrides="--map-by node"),
            ),
        )
    ],
    strategy_period=0.5,
)
