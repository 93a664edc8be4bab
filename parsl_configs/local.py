"""Worker processes on this machine through Parsl's HighThroughputExecutor.

Copy this file, edit it, and pass its path: ``ParslExecutor("my_local.py")``. The worker processes
must find this Python environment: ``worker_init`` puts its ``bin`` first on PATH.
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
            address="127.0.0.1",
            max_workers_per_node=os.cpu_count(),  # fragments at once on this machine
            cores_per_worker=1,
            encrypted=False,  # loopback only; turn on for any address other machines can reach
            heartbeat_period=2,
            heartbeat_threshold=10,
            block_error_handler=False,  # a dead block's tasks are retried on a new one
            provider=LocalProvider(
                init_blocks=1,
                min_blocks=0,
                max_blocks=1,
                worker_init=f"export PATH={os.path.dirname(sys.executable)}:$PATH",
            ),
        )
    ],
    strategy_period=0.5,
)
