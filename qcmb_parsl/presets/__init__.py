"""Named executor presets: an options model plus a blueprint each, turning options into a Parsl Config.

A preset is what ``ParslExecutor("slurm", partition="debug")`` names. Its blueprint describes the
Config as data (:mod:`.blueprint`); the same description is written out as the plain Parsl config
file in ``parsl_configs/`` (:mod:`.config_files`, ``qcmb-parsl presets --write-configs DIR``), so a
preset and its file cannot drift apart.

Every option that ends up in a batch script is checked here: one-line options hold no line break
(a newline in ``partition`` would start a line of its own in the script), and ``scheduler_options``
holds only directives of its scheduler.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from parsl.config import Config
from parsl.monitoring import MonitoringHub
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ConfigurationError
from .blueprint import Call, Computed

if TYPE_CHECKING:
    from ..planning.plan import FragmentTask

__all__ = [
    "PRESETS",
    "OneLine",
    "Preset",
    "PresetOptions",
    "Words",
    "add_monitoring",
    "build_preset",
    "get_preset",
    "monitoring_hub",
    "parse_options",
    "python_env_init",
    "register_preset",
    "worker_count",
]


def _one_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("must be one line: it holds a line break, which would start a line of its own")
    return value


@dataclass(frozen=True)
class Words:
    """How an option's type reads for people (``qcmb-parsl presets``, the presets reference), given with
    the type: ``Annotated[str, Words("hours:minutes:seconds")]``."""

    text: str


#: A string that becomes (part of) one line of a batch script or a launch command.
OneLine = Annotated[str, AfterValidator(_one_line), Words("text, one line")]
#: Shell lines, one command a line (``worker_init``).
ShellLines = Annotated[str, Words("shell lines")]


class PresetOptions(BaseModel):
    """Options every preset understands; field names follow QCFractal's compute manager."""

    model_config = ConfigDict(extra="forbid")

    max_workers: int | None = Field(
        None, ge=1, description="Fragments run at once per node (workers per node)."
    )
    cores_per_worker: int = Field(1, ge=1, description="Cores each fragment calculation may use.")
    memory_per_worker: float | None = Field(None, gt=0, description="GiB each fragment may use.")
    scratch_directory: str | None = Field(None, description="Node-local scratch directory for the engines.")
    worker_init: ShellLines = Field(
        "", description="Shell lines run before workers start (module loads, venvs)."
    )
    monitoring: bool = Field(
        False,
        description="Parsl's monitoring database (SQLite, runinfo/monitoring.db) for parsl-visualize.",
    )

    @field_validator("worker_init")
    @classmethod
    def _shell_lines(cls, value: str) -> str:
        if "\r" in value or "\0" in value:
            raise ValueError("must be shell lines separated by newlines: no carriage return or NUL")
        return value

    def workers_per_node(self, cores: int | None = None) -> int:
        """Explicit max_workers, else as many workers as the node's cores allow."""
        if self.max_workers is not None:
            return self.max_workers
        return max((cores or os.cpu_count() or 1) // self.cores_per_worker, 1)


OptionsT = TypeVar("OptionsT", bound=PresetOptions)


@dataclass(frozen=True)
class Preset(Generic[OptionsT]):
    """A named way to build a Parsl Config from validated options.

    ``blueprint`` describes the Config (a :class:`~.blueprint.Call` of ``parsl.config.Config``);
    ``file_options`` are the options its config file in ``parsl_configs/`` is written with: the
    required ones, and those whose default depends on the machine writing the file (its MPI).
    ``summary`` says what the preset is (its Parsl pieces), ``purpose`` what it is for, in a user's
    words, and ``needs`` what must be there for it to run.
    """

    name: str
    summary: str
    needs: str
    options: type[OptionsT]
    blueprint: Callable[[OptionsT], Call]
    #: Per-fragment ``parsl_resource_specification`` (e.g. MPI ranks by fragment size); None: nothing.
    resource_specification: Callable[[FragmentTask, OptionsT], dict[str, Any]] | None = None
    file_options: Mapping[str, Any] = field(default_factory=dict)
    purpose: str = ""

    def describe(self, options: OptionsT) -> Call:
        """The Config these validated options describe, as data: the blueprint's, with Parsl's monitoring
        when the options ask for it (every preset has the option, so no blueprint repeats it)."""
        call = self.blueprint(options)
        if options.monitoring:
            call = Call(call.cls, {**call.arguments, "monitoring": monitoring_hub()})
        return call

    def config(self, options: OptionsT) -> Config:
        """The Parsl Config these validated options describe."""
        config: Config = self.describe(options).build()
        return config

    def specification_for(self, options: OptionsT) -> Callable[[FragmentTask], dict[str, Any]] | None:
        """The per-fragment resource specification under these options, if the preset has one."""
        specify = self.resource_specification
        if specify is None:
            return None
        return lambda task: specify(task, options)


PRESETS: dict[str, Preset[Any]] = {}


def register_preset(preset: Preset[Any]) -> Preset[Any]:
    PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> Preset[Any]:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))} "
            "(or give a Parsl config .py file, a QCFractal-style site .yaml file, or a parsl.Config)"
        ) from None


def parse_options(model: type[OptionsT], options: Mapping[str, Any], context: str) -> OptionsT:
    """Validated options, with a one-line error naming the offending option and the known ones."""
    try:
        return model(**options)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "options"
        message = " ".join(err["msg"].removeprefix("Value error, ").split())
        known = ", ".join(model.model_fields)
        raise ConfigurationError(f"{context}: {where}: {message} (options: {known})") from None


def build_preset(name: str, **options: Any) -> tuple[Config, PresetOptions]:
    """The Parsl Config of preset ``name`` with ``options``, and the validated options."""
    preset = get_preset(name)
    validated = parse_options(preset.options, options, f"preset {name!r}")
    return preset.config(validated), validated


def monitoring_hub() -> Call:
    """Parsl's MonitoringHub with Parsl's defaults: an SQLite database in the Config's ``run_dir``
    (``runinfo/monitoring.db``, where ``parsl-visualize`` looks first), one row per app call in its
    ``task`` table, and each task's resources sampled every 30 s."""
    return Call(MonitoringHub)


def add_monitoring(config: Config) -> None:
    """Monitoring for a Config that is no preset's (a config file's, a user's), unless it has its own."""
    if config.monitoring is None:
        config.monitoring = monitoring_hub().build()


def worker_count(options: PresetOptions) -> int | Computed:
    """Workers of one machine: max_workers, else its cores over cores_per_worker, counted where it runs."""
    if options.max_workers is not None:
        return options.max_workers
    cores = options.cores_per_worker
    source = "os.cpu_count() or 1" if cores == 1 else f"max((os.cpu_count() or 1) // {cores}, 1)"
    return Computed(source, options.workers_per_node(), ("os",))


def python_env_init(worker_init: str, cores_per_worker: int) -> str:
    """worker_init that puts this Python's environment first on PATH, so workers run the same venv,
    and caps BLAS/OpenMP threads at ``cores_per_worker`` before any worker imports numpy (set later,
    from inside a fragment, the caps come too late for OpenBLAS)."""
    from ..resources import thread_environment

    lines = [f"export PATH={python_bin_dir()}:$PATH"]
    lines += [f"export {name}={value}" for name, value in thread_environment(cores_per_worker).items()]
    if worker_init:
        lines.append(worker_init)
    return "\n".join(lines)


def python_bin_dir() -> str:
    """The ``bin`` directory of this Python's environment (a config file writes it as code)."""
    return os.path.dirname(sys.executable)


from . import batch, local, mpi, slurm, torque  # noqa: E402,F401  (registers the presets they define)
