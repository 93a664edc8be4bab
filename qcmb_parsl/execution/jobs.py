"""From a fragment task to the job a worker runs: resources, limits, retries, isolation.

The job is a plain dict (see :func:`qcmb_parsl.execution.app.compute_fragment`), built the same way
for every back-end, so that a fragment runs under the same rules in the driver's threads, on a
local worker or on a Slurm node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError
from ..planning.plan import FragmentTask
from ..resources import WorkerResources, thread_environment

#: Share of the hard memory limit an engine is told it may use: its own accounting leaves out the
#: interpreter, the libraries and temporaries, which the limit does not.
ENGINE_MEMORY_SHARE = 0.85


@dataclass(frozen=True)
class JobSettings:
    """How every fragment of a run is run.

    Parameters
    ----------
    resources
        Cores, memory and scratch of one fragment (QCEngine's task_config).
    workers_per_node
        Fragments side by side on a node: sizes a fragment's memory when none is given.
    timeout
        Seconds a fragment may run before its process is killed and it is reported as a timeout.
    max_retries
        Further attempts of a fragment whose failure may be transient (a crash or an unknown engine
        error once, a random engine error up to this many times).
    isolate
        Run each engine in a process of its own (default). Off, engines share the worker's process:
        cheaper for floods of tiny fragments, but no timeout or memory limit can be enforced.
    lanes_per_worker
        Fragments one worker runs side by side, each in a process of its own: a call then carries
        work for every lane (see :mod:`qcmb_parsl.execution.lanes`). One worker per node with a lane
        per core makes one call per node.
    """

    resources: WorkerResources
    workers_per_node: int = 1
    timeout: float | None = None
    max_retries: int = 2
    isolate: bool = True
    lanes_per_worker: int = 1

    def __post_init__(self) -> None:
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigurationError(f"timeout_per_task must be positive, got {self.timeout}")
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be zero or positive, got {self.max_retries}")
        if not self.isolate and self.timeout is not None:
            raise ConfigurationError(
                "timeout_per_task needs isolated fragments: drop isolate=False or the timeout"
            )
        if type(self.lanes_per_worker) is not int or self.lanes_per_worker < 1:
            raise ConfigurationError(
                f"lanes_per_worker must be a positive integer, got {self.lanes_per_worker!r}"
            )
        if not self.isolate and self.lanes_per_worker > 1:
            raise ConfigurationError(
                "lanes_per_worker runs fragments side by side in processes of their own: drop isolate=False"
            )
        if not self.isolate and self.resources.memory_per_worker is not None:
            raise ConfigurationError(
                "memory_per_worker is a hard limit only for isolated fragments: "
                "drop isolate=False or the limit"
            )

    @property
    def memory_bytes(self) -> int | None:
        memory = self.resources.memory_per_worker
        return None if memory is None or not self.isolate else int(memory * 2**30)

    def task_config(self) -> dict[str, Any]:
        config = self.resources.task_config()
        memory = self.resources.memory_per_worker
        if memory is not None and self.isolate:
            config["memory"] = round(ENGINE_MEMORY_SHARE * memory, 3)
        return config

    def job(self, task: FragmentTask) -> dict[str, Any]:
        return {
            "label": task.label,
            "program": task.program,
            "atomic_input": task.atomic_input,
            "task_config": self.task_config(),
            "environment": thread_environment(self.resources.cores_per_worker),
            # Every lane is a fragment side by side with the others on its node.
            "workers_per_node": self.workers_per_node * self.lanes_per_worker,
            "timeout": self.timeout,
            "memory_bytes": self.memory_bytes,
            "max_retries": self.max_retries,
            "isolate": self.isolate,
            "lanes": self.lanes_per_worker,
        }
