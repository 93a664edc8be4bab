"""The short ways to ask for parallelism: ``parallel=True``, ``n_workers`` and ``ExecutorConfig``."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigurationError
from .executors import FragmentExecutor, ParslExecutor, SequentialExecutor

logger = logging.getLogger(__name__)


class ExecutorConfig(BaseModel):
    """Settings for the local executor that ``parallel=True`` builds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_workers: int | None = Field(None, ge=1, description="Fragments at once; default: all cores.")
    timeout_per_task: float | None = Field(None, gt=0, description="Seconds before a fragment is abandoned.")
    max_retries: int = Field(2, ge=0, description="Retries of fragments whose failure is worth retrying.")
    checkpoint_file: str | None = Field(
        None, description="Replaced by the fragment cache: a cache directory next to this path is used."
    )
    cache_dir: str | None = Field(None, description="Fragment cache directory; default: the user's cache.")
    log_level: str | int | None = Field(None, description="Level of the qcmb_parsl logger (e.g. 'INFO').")


def choose_executor(
    executor: FragmentExecutor | None,
    parallel: bool,
    n_workers: int | None,
    executor_config: ExecutorConfig | None,
) -> tuple[FragmentExecutor, bool]:
    """(executor, whether the caller must close it) for the arguments of ``from_manybodyinput``."""
    if n_workers is not None and n_workers < 1:
        raise ConfigurationError(f"n_workers must be at least 1, got {n_workers}")
    if executor is not None:
        if parallel or n_workers is not None or executor_config is not None:
            raise ConfigurationError(
                "give either executor= or the parallel/n_workers/executor_config shortcuts"
            )
        return executor, False
    if not parallel and n_workers is None and executor_config is None:
        return SequentialExecutor(), True

    settings = executor_config or ExecutorConfig()
    if settings.log_level is not None:
        logging.getLogger("qcmb_parsl").setLevel(settings.log_level)
    cache_dir = settings.cache_dir
    if settings.checkpoint_file is not None:
        cache_dir = cache_dir or str(Path(settings.checkpoint_file).with_suffix(".qcmb-cache"))
        warnings.warn(
            f"checkpoint_file is replaced by the fragment cache; results are kept in {cache_dir}",
            FutureWarning,
            stacklevel=3,
        )
    workers = n_workers or settings.n_workers or os.cpu_count() or 1
    chosen = ParslExecutor(
        "local",
        max_workers=workers,
        cache_dir=cache_dir,
        max_retries=settings.max_retries,
        timeout_per_task=settings.timeout_per_task,
    )
    return chosen, True
