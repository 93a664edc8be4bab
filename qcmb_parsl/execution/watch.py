"""The driver's eye on a Parsl session's machinery: an interchange that died, blocks that never served.

Parsl trusts its machinery. When a HighThroughputExecutor's interchange dies (the OOM killer on a
login node, an operator's ``kill -9``) the driver waits for ever for results that cannot come, and
Parsl's status poller blocks for ever on the interchange's command channel (Parsl issues #3374 and
#3663). A worker pool or block that is lost Parsl handles itself: the interchange misses its
heartbeats (10 s in the presets), the fragments the pool held come back as lost workers and are
retried without spending their budget, and the strategy starts a new block. But a block that ends
without any of its pools ever connecting (a broken ``worker_init``, a node that cannot reach the
interchange) is replaced by another just like it, for ever.

:class:`SessionWatch` looks without asking anyone: the exit status of the interchange's process (the
lifeline's wrapper dies the way the interchange died) and the block states Parsl's poller already
holds. A look costs a system call per executor and can never block.
"""

from __future__ import annotations

import logging
import signal

from parsl.executors.base import ParslExecutor
from parsl.executors.status_handling import BlockProviderExecutor
from parsl.jobs.states import JobState, JobStatus

from ._parsl import block_executors, block_statuses, interchange_process
from .backends import Loss

logger = logging.getLogger(__name__)

#: Blocks ending without any worker pool connecting, with no fragment finished meanwhile, before the
#: run gives up on an executor: Parsl would replace them for ever.
MAX_SILENT_BLOCKS = 3


class SessionWatch:
    """What has been lost of one Parsl session's executors, looked at as often as the runner likes."""

    def __init__(self, executors: list[ParslExecutor]):
        self._executors = executors
        self._seen: set[tuple[str, str]] = set()
        self._silent: dict[str, list[str]] = {}
        self._finished = 0

    def lost(self, finished: int) -> Loss | None:
        """The first loss found, or None. ``finished``: fragments finished so far in the run (blocks
        that end silently while fragments still finish elsewhere are no reason to give up)."""
        if finished != self._finished:
            self._finished = finished
            self._silent.clear()
        for executor in self._executors:
            process = interchange_process(executor)
            if process is not None and process.poll() is not None:
                return Loss(
                    f"the interchange of executor {executor.label!r} (pid {process.pid}) "
                    f"{_ended(process.returncode)}",
                    restart=True,
                )
        for blocks in block_executors(self._executors):
            loss = self._look_at_blocks(blocks)
            if loss is not None:
                return loss
        return None

    def _look_at_blocks(self, executor: BlockProviderExecutor) -> Loss | None:
        for block, status in block_statuses(executor).items():
            key = (executor.label, block)
            if not status.terminal or status.state is JobState.SCALED_IN or key in self._seen:
                continue
            self._seen.add(key)
            if status.state is not JobState.MISSING:
                logger.warning(
                    "block %s of executor %r ended (%s): what it ran is retried on another block",
                    block,
                    executor.label,
                    _state(status),
                )
                continue
            silent = self._silent.setdefault(executor.label, [])
            silent.append(block)
            logger.warning(
                "block %s of executor %r ended without any worker pool connecting (%s)",
                block,
                executor.label,
                _state(status),
            )
            if len(silent) >= MAX_SILENT_BLOCKS:
                return Loss(
                    f"{len(silent)} blocks of executor {executor.label!r} ended without any worker pool "
                    f"connecting (the last: {_state(status)})",
                    restart=False,
                )
        return None


def _ended(returncode: int) -> str:
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with status {returncode}"


def _state(status: JobStatus) -> str:
    """A block's state in a few words, with where its output went when the provider says."""
    where = f"; its stderr: {status.stderr_path}" if status.stderr_path else ""
    code = f" with exit code {status.exit_code}" if status.exit_code is not None else ""
    return f"{status.state.name.lower()}{code}{where}"
