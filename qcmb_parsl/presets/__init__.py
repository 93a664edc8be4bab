"""Named executor presets: data (an options model) plus one builder each, turning options into a Parsl Config.

A preset is what ``ParslExecutor("slurm", partition="debug")`` names. Each one also exists as a plain
Parsl config file in ``parsl_configs/`` for a site to copy and edit; the builders here are the
parameterised form of those files.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from parsl.config import Config
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..planning.plan import FragmentTask

__all__ = ["Preset", "PresetOptions", "PRESETS", "register_preset", "get_preset", "build_preset", "parse_options", "python_env_init"]


class PresetOptions(BaseModel):
    """Options every preset understands; field names follow QCFractal's compute manager."""

    model_config = ConfigDict(extra="forbid")

    max_workers: int | None = Field(None, ge=1, description="Fragments run at once per node (workers per node).")
    cores_per_worker: int = Field(1, ge=1, description="Cores each fragment calculation may use.")
    memory_per_worker: float | None = Field(None, gt=0, description="GiB each fragment may use.")
    scratch_directory: str | None = Field(None, description="Node-local scratch directory for the engines.")
    worker_init: str = Field("", description="Shell lines run before workers start (module loads, venvs).")

    def workers_per_node(self, cores: int | None = None) -> int:
        """Explicit max_workers, else as many workers as the node's cores allow."""
        if self.max_workers is not None:
            return self.max_workers
        return max((cores or os.cpu_count() or 1) // self.cores_per_worker, 1)


@dataclass(frozen=True)
class Preset:
    """A named way to build a Parsl Config from validated options."""

    name: str
    summary: str
    needs: str
    options: type[PresetOptions]
    build: Callable[[PresetOptions], Config]
    #: Per-fragment ``parsl_resource_specification`` (e.g. MPI ranks by fragment size); None: nothing.
    resource_specification: Callable[[FragmentTask, PresetOptions], dict[str, Any]] | None = None


PRESETS: dict[str, Preset] = {}


def register_preset(preset: Preset) -> Preset:
    PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))} "
            "(or give a Parsl config .py file, a QCFractal-style site .yaml file, or a parsl.Config)"
        ) from None


def parse_options(model: type[PresetOptions], options: dict, context: str) -> PresetOptions:
    """Validated options, with a one-line error naming the offending option and the known ones."""
    try:
        return model(**options)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "options"
        known = ", ".join(model.model_fields)
        raise ConfigurationError(f"{context}: {where}: {err['msg']} (options: {known})") from None


def build_preset(name: str, **options) -> tuple[Config, PresetOptions]:
    preset = get_preset(name)
    validated = parse_options(preset.options, options, f"preset {name!r}")
    return preset.build(validated), validated


def python_env_init(worker_init: str = "", cores_per_worker: int | None = None) -> str:
    """worker_init that puts this Python's environment first on PATH, so workers run the same venv,
    and caps BLAS/OpenMP threads at ``cores_per_worker`` before any worker imports numpy (set later,
    from inside a fragment, the caps come too late for OpenBLAS)."""
    from ..resources import thread_environment

    bin_dir = os.path.dirname(sys.executable)
    lines = [f"export PATH={bin_dir}:$PATH"]
    if cores_per_worker is not None:
        lines += [f"export {name}={value}" for name, value in thread_environment(cores_per_worker).items()]
    if worker_init:
        lines.append(worker_init)
    return "\n".join(lines)


from . import batch, local, mpi, slurm  # noqa: E402,F401  (registers the presets they define)
