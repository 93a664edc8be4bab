"""The ``local`` preset as a plain Parsl config file: HighThroughputExecutor with worker processes on
this machine.

Worker processes on this machine: isolation per fragment, the shape every HPC preset shares.

The interchange listens on loopback only, and the channel is encrypted all the same: any user of a
shared machine can reach loopback.

Needs: nothing.

Written by ``qcmb-parsl presets --write-configs DIR`` from the preset with its default options. Copy
it, edit the lines marked ``# site``, and pass its path: ``ParslExecutor("my_local.py")`` or
``qcmb-parsl run INPUT.json --config my_local.py``.
"""

import os
import sys

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider

config = Config(
    executors=[
        HighThroughputExecutor(
            label="local",
            # site: where workers reach the driver, e.g. address_by_interface('ib0'); None: they probe all
            address="127.0.0.1",
            encrypted=True,  # CurveZMQ: only this run's workers get tasks
            heartbeat_period=2,  # a lost block is noticed in ~10 s, not Parsl's default 120 s
            heartbeat_threshold=10,
            poll_period=100,  # ms between idle looks at sockets: Parsl's 10 costs the driver CPU
            block_error_handler=False,  # a dead block's tasks are retried on a new one
            cores_per_worker=1,  # site: cores of each fragment (QCEngine's ncores)
            provider=LocalProvider(
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
                    ]
                ),
            ),
        ),
    ],
    strategy_period=0.5,
)
