"""The ``threads`` preset as a plain Parsl config file: ThreadPoolExecutor in the driver process.

Threads share the driver process: no start-up cost, and in-process engines (PySCF) release the GIL.

Needs: nothing.

Written by ``qcmb-parsl presets --write-configs DIR`` from the preset with its default options. Copy
it, edit the lines marked ``# site``, and pass its path: ``ParslExecutor("my_threads.py")`` or
``qcmb-parsl run INPUT.json --config my_threads.py``.
"""

import os

from parsl.config import Config
from parsl.executors import ThreadPoolExecutor

config = Config(
    executors=[
        ThreadPoolExecutor(
            label="threads",
            max_threads=os.cpu_count() or 1,  # site: fragments at once
        ),
    ],
    strategy=None,
)
