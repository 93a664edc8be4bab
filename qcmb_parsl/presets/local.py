"""Presets for one machine: threads in the driver process, or a local HighThroughputExecutor."""

from __future__ import annotations

from typing import Any

from parsl.config import Config
from parsl.executors import ThreadPoolExecutor
from parsl.providers import LocalProvider

from . import Preset, PresetOptions, python_env_init, register_preset, worker_count
from .blueprint import Call
from .htex import HtexOptions, htex, htex_config, prefetch


def threads_blueprint(options: PresetOptions) -> Call:
    """Threads share the driver process: no start-up cost, and in-process engines (PySCF) release the GIL."""
    executor = Call(ThreadPoolExecutor, {"label": "threads", "max_threads": worker_count(options)})
    return Call(Config, {"executors": [executor], "strategy": None})


def local_blueprint(options: HtexOptions) -> Call:
    """Worker processes on this machine: isolation per fragment, the shape every HPC preset shares.

    The interchange listens on loopback only, and the channel is encrypted all the same: any user
    of a shared machine can reach loopback.
    """
    provider = Call(
        LocalProvider,
        {
            "init_blocks": 1,
            "min_blocks": 0,
            "max_blocks": 1,
            "worker_init": python_env_init(options.worker_init, options.cores_per_worker),
        },
    )
    sizing: dict[str, Any] = {"cores_per_worker": options.cores_per_worker, **prefetch(options)}
    if options.max_workers is not None:
        sizing["max_workers_per_node"] = options.max_workers
    return htex_config(htex("local", provider, address="127.0.0.1", **sizing))


register_preset(
    Preset(
        "threads",
        "ThreadPoolExecutor in the driver process",
        "nothing",
        PresetOptions,
        threads_blueprint,
        purpose="one machine, no start-up: quick runs and small molecules",
    )
)
register_preset(
    Preset(
        "local",
        "HighThroughputExecutor with worker processes on this machine",
        "nothing",
        HtexOptions,
        local_blueprint,
        purpose="one machine (a laptop, a workstation, a node of your own job): a process per worker",
    )
)
