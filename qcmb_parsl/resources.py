"""Per-fragment resources: what each worker may use, as QCEngine's task_config and thread limits.

QCManyBody upstream passes no task_config, so QCEngine gives every fragment all cores and most of the
memory. With several fragments per node at once that oversubscribes the node; these settings size
each fragment to its worker slot instead.
"""

from __future__ import annotations

from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict, Field

#: Environment variables that cap the threads of BLAS, OpenMP and the engines that read them.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


class WorkerResources(BaseModel):
    """What one worker (one fragment at a time) may use; field names follow QCFractal's compute manager."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cores_per_worker: int = Field(1, ge=1, description="Cores (threads) each fragment calculation may use.")
    memory_per_worker: float | None = Field(
        None, gt=0, description="GiB each fragment may use; default: 80% of its node's memory over workers."
    )
    scratch_directory: str | None = Field(
        None, description="Node-local scratch for engines; default: QCEngine's."
    )

    def task_config(self) -> dict[str, Any]:
        """QCEngine task_config for one fragment; memory None means "decide on the node" (see below)."""
        config: dict[str, Any] = {
            "ncores": self.cores_per_worker,
            "memory": self.memory_per_worker,
            "retries": 0,
        }
        if self.scratch_directory:
            config["scratch_directory"] = self.scratch_directory
        return config


def node_task_config(task_config: dict[str, Any], workers_per_node: int) -> dict[str, Any]:
    """Fill the memory left open by the driver from the node the fragment runs on.

    The driver cannot know a compute node's memory; the worker can: 80% of it, shared by the
    workers of the node.
    """
    if task_config.get("memory") is not None:
        return task_config
    memory = round(0.8 * psutil.virtual_memory().total / 2**30 / max(workers_per_node, 1), 2)
    return {**task_config, "memory": memory}


def thread_environment(ncores: int) -> dict[str, str]:
    """Environment that keeps BLAS and OpenMP inside an engine at ``ncores`` threads."""
    return {name: str(ncores) for name in THREAD_VARIABLES}
