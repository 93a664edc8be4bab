"""Presets for one machine: threads in the driver process, or a local HighThroughputExecutor."""

from __future__ import annotations

from parsl.config import Config
from parsl.executors import HighThroughputExecutor, ThreadPoolExecutor
from parsl.providers import LocalProvider

from . import Preset, PresetOptions, python_env_init, register_preset


def build_threads(options: PresetOptions) -> Config:
    """Threads share the driver process: no start-up cost, and in-process engines (PySCF) release the GIL."""
    return Config(
        executors=[ThreadPoolExecutor(label="threads", max_threads=options.workers_per_node())],
        strategy=None,
    )


def build_local(options: PresetOptions) -> Config:
    """Worker processes on this machine: isolation per fragment, the shape every HPC preset shares."""
    return Config(
        executors=[
            HighThroughputExecutor(
                label="local",
                address="127.0.0.1",
                max_workers_per_node=options.workers_per_node(),
                cores_per_worker=options.cores_per_worker,
                encrypted=False,  # loopback only
                heartbeat_period=2,
                heartbeat_threshold=10,
                block_error_handler=False,  # a dead block's tasks are retried on a new one
                provider=LocalProvider(
                    init_blocks=1, min_blocks=0, max_blocks=1, worker_init=python_env_init(options.worker_init, options.cores_per_worker)
                ),
            )
        ],
        strategy_period=0.5,
    )


register_preset(
    Preset("threads", "ThreadPoolExecutor in the driver process", "nothing", PresetOptions, build_threads)
)
register_preset(
    Preset("local", "HighThroughputExecutor with worker processes on this machine", "nothing", PresetOptions, build_local)
)
