"""The ``mpi`` preset as a plain Parsl config file: HighThroughputExecutor with worker pools started by
mpiexec on the hosts of the current allocation.

HTEX + LocalProvider + MpiExecLauncher: one block on the hosts of the allocation the driver runs in
(``salloc -N 4``, ``qsub -I``, a batch script), one worker pool per host; no scheduler is called.
MpiExecLauncher reads the hosts from ``$PBS_NODEFILE``; under Slurm or LSF the worker_init writes
one.

Needs: an MPI's mpiexec; run the driver inside the allocation (salloc, qsub -I, a batch script).

Written by ``qcmb-parsl presets --write-configs DIR`` from the preset with its default options and
nodes=1, mpiexec_overrides='--map-by node'. Copy it, edit the lines marked ``# site``, and pass its
path: ``ParslExecutor("my_mpi.py")`` or ``qcmb-parsl run INPUT.json --config my_mpi.py``.
"""

import os
import sys

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.launchers import MpiExecLauncher
from parsl.providers import LocalProvider

config = Config(
    executors=[
        HighThroughputExecutor(
            label="mpi",
            # site: where workers reach the driver, e.g. address_by_interface('ib0'); None: they probe all
            address=None,
            encrypted=True,  # CurveZMQ: only this run's workers get tasks
            heartbeat_period=2,  # a lost block is noticed in ~10 s, not Parsl's default 120 s
            heartbeat_threshold=10,
            poll_period=100,  # ms between idle looks at sockets: Parsl's 10 costs the driver CPU
            block_error_handler=False,  # a dead block's tasks are retried on a new one
            cores_per_worker=1,  # site: cores of each fragment (QCEngine's ncores)
            provider=LocalProvider(
                nodes_per_block=1,  # site: nodes per batch job
                init_blocks=1,
                min_blocks=0,
                max_blocks=1,
                # site: add module loads; keep the caps equal to cores_per_worker
                worker_init="\n".join(
                    [
                        f"export PATH={os.path.dirname(sys.executable)}:$PATH",
                        "export OMP_NUM_THREADS=1",
                        "export MKL_NUM_THREADS=1",
                        "export OPENBLAS_NUM_THREADS=1",
                        "export VECLIB_MAXIMUM_THREADS=1",
                        "export NUMEXPR_NUM_THREADS=1",
                        'if [ -z "${PBS_NODEFILE:-}" ]; then',
                        '    if [ -n "${SLURM_JOB_NODELIST:-}" ]; then',
                        '        export PBS_NODEFILE="${TMPDIR:-/tmp}/qcmb_parsl_nodes.$$"',
                        '        scontrol show hostnames "$SLURM_JOB_NODELIST" > "$PBS_NODEFILE"',
                        '    elif [ -n "${LSB_DJOB_HOSTFILE:-}" ]; then',
                        '        export PBS_NODEFILE="$LSB_DJOB_HOSTFILE"',
                        "    fi",
                        "fi",
                    ]
                ),
                launcher=MpiExecLauncher(
                    bind_cmd="--bind-to",  # site: MPICH and Cray: "--cpu-bind"
                    # site: one pool per host: Open MPI "--map-by node", MPICH "-ppn 1"
                    overrides="--map-by node",
                ),
            ),
        ),
    ],
    strategy_period=0.5,
)
