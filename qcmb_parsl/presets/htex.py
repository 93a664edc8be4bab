"""What every HighThroughputExecutor preset shares: encryption, short heartbeats, and the Config around it.

``local`` and every cluster preset build their executor here, so they all encrypt the channel between
interchange and workers (CurveZMQ: a process that connects without the run's keys gets no task, on a
shared login node as across the network) and notice a lost block within seconds.
"""

from __future__ import annotations

from typing import Any

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from pydantic import Field

from . import PresetOptions
from .blueprint import Call

#: Seconds between heartbeats, and without one before a worker pool (and its block) counts as lost.
#: Measured here: with these a cancelled Slurm block was replaced and its tasks retried; with Parsl's
#: defaults (30 s / 120 s) the lost tasks had not come back after two minutes.
HEARTBEAT_PERIOD = 2
HEARTBEAT_THRESHOLD = 10
#: Seconds between Parsl's scaling decisions: the first block is submitted ~4 s sooner than at 5 s.
STRATEGY_PERIOD = 0.5
#: Milliseconds between the idle looks of the executor's result thread and the interchange at their
#: sockets (a message wakes them at once, whatever this is). Parsl's 10 ms cost the driver 1.3 ms of CPU
#: per tiny fragment on a busy machine, 100 ms 0.2 ms (measured: 1,000 He fragments on local).
POLL_PERIOD = 100


class HtexOptions(PresetOptions):
    """Options of every preset built on a HighThroughputExecutor."""

    prefetch_capacity: int = Field(
        0,
        ge=0,
        description="Fragments each worker pool holds beyond those it runs, so a worker starts the next "
        "without a round trip to the interchange; 0 keeps the longest-first order exact.",
    )


def prefetch(options: HtexOptions) -> dict[str, Any]:
    """The executor argument for ``prefetch_capacity``, left out at Parsl's default (the config files
    stay as short as a site expects)."""
    return {"prefetch_capacity": options.prefetch_capacity} if options.prefetch_capacity else {}


def htex(
    label: str,
    provider: Call,
    *,
    address: str | None,
    executor_class: type[HighThroughputExecutor] = HighThroughputExecutor,
    **settings: Any,
) -> Call:
    """The executor of an HTEX preset: encrypted, short heartbeats, unless ``settings`` say otherwise.

    A dead block must not fail every task of the run (``block_error_handler=False``): its tasks come
    back as lost managers, are retried, and the strategy starts a new block. The provider comes last,
    so that a config file reads executor settings first.
    """
    shared = {
        "encrypted": True,
        "heartbeat_period": HEARTBEAT_PERIOD,
        "heartbeat_threshold": HEARTBEAT_THRESHOLD,
        "poll_period": POLL_PERIOD,
        "block_error_handler": False,
    }
    arguments = {"label": label, "address": address, **shared, **settings, "provider": provider}
    return Call(executor_class, arguments)


def htex_config(executor: Call) -> Call:
    """A Config around one HTEX (or MPIExecutor) executor."""
    return Call(Config, {"executors": [executor], "strategy_period": STRATEGY_PERIOD})
