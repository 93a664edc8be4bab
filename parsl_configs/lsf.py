"""The ``lsf`` preset as a plain Parsl config file: HighThroughputExecutor on LSF jobs, one worker pool
per node via mpiexec.

One worker pool per node of each LSF job, started by mpiexec over the job's host file
(``$LSB_DJOB_HOSTFILE``); on Summit-like machines use ``JsrunLauncher``
(``parsl/configs/summit.py``).

Needs: LSF (bsub, bjobs) and an MPI's mpiexec on the nodes.

Written by ``qcmb-parsl presets --write-configs DIR`` from the preset with its default options and
mpiexec_overrides='--map-by node'. Copy it, edit the lines marked ``# site``, and pass its path:
``ParslExecutor("my_lsf.py")`` or ``qcmb-parsl run INPUT.json --config my_lsf.py``.
"""

import os
import sys

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.launchers import MpiExecLauncher
from parsl.providers import LSFProvider

config = Config(
    executors=[
        HighThroughputExecutor(
            label="lsf",
            # site: where workers reach the driver, e.g. address_by_interface('ib0'); None: they probe all
            address=None,
            encrypted=True,  # CurveZMQ: only this run's workers get tasks
            heartbeat_period=2,  # a lost block is noticed in ~10 s, not Parsl's default 120 s
            heartbeat_threshold=10,
            poll_period=100,  # ms between idle looks at sockets: Parsl's 10 costs the driver CPU
            block_error_handler=False,  # a dead block's tasks are retried on a new one
            cores_per_worker=1,  # site: cores of each fragment (QCEngine's ncores)
            provider=LSFProvider(
                project=None,  # site: project to charge
                queue=None,  # site: queue name
                nodes_per_block=1,  # site: nodes per batch job
                cores_per_node=None,  # site: cores requested per node
                cores_per_block=None,  # site: cores_per_node * nodes_per_block
                request_by_nodes=True,  # site: True: '#BSUB -nnodes' (CSM sites such as Summit)
                bsub_redirection=True,  # 'bsub < script', so that the #BSUB lines are read
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
                init_blocks=1,
                min_blocks=0,
                max_blocks=1,  # site: batch jobs at most at once
                walltime="01:00:00",  # site: of each batch job, HH:MM:SS
                cmd_timeout=60,
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
