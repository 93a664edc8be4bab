"""Threads in the driver process: the cheapest way to run fragments in parallel on one machine.

Copy this file, edit it, and pass its path: ``ParslExecutor("my_threads.py")``.
"""

import os

from parsl.config import Config
from parsl.executors import ThreadPoolExecutor

config = Config(
    executors=[
        ThreadPoolExecutor(
            label="threads",
            max_threads=os.cpu_count(),  # fragments at once; each gets cores_per_worker threads
        )
    ],
    strategy=None,
)
