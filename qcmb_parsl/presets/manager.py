"""QCFractal compute-manager configuration files, used as they are.

A site that runs ``qcfractal-compute-manager`` has its YAML: ``cluster``, ``server`` and
``executors: {name: {type: ..., ...}}``. ``ParslExecutor("manager.yaml")`` (``--config manager.yaml``)
takes that file unmodified. One of its executors (``executor="name"``, ``--option executor=name``, when
it has several) becomes the options of the preset of its type, and the preset's own blueprint builds
the Parsl Config: a manager file is data for a preset, as a site file is. The server part (``server``,
``cluster``, heartbeats, logging) is about fetching tasks from a QCFractal server and is not used; an
INFO line names what was left out.

``parsl_run_dir``, when the file gives it, is the ``run_dir`` option, read as the manager reads it:
``~`` and ``$VARIABLES`` expanded, and a relative path taken from the base folder
(``$QCF_COMPUTE_BASE_FOLDER``, else the file's ``base_folder``, else the file's own directory). Left
out, the run directory is this package's default (``runinfo/`` where the driver runs), not the
manager's ``parsl_run_dir`` beside the file: a manager file brings its site's executors, not a
directory to fill.

The file is validated by qcfractalcompute's own models when that package is installed
(``pip install "qcmb_parsl[qcfractal]"``), so what its manager accepts is accepted here, and otherwise
by the models below, which mirror qcfractalcompute 0.71's ``config.py`` (fields, defaults,
``extra="forbid"``), so a misspelt field is an error either way.

From a QCFractal executor to the preset's options:

- ``type``: local -> ``local``, slurm -> ``slurm``, lsf -> ``lsf``, torque -> ``torque`` (Parsl's
  TorqueProvider, as QCFractal's; see :mod:`.torque` for why not ``pbspro``);
- ``workers_per_node`` -> ``max_workers``; ``max_nodes`` -> ``max_blocks`` (one node per block, as
  QCFractal's); LSF's ``project`` -> ``account``; ``bind_address`` -> ``address``;
- ``worker_init`` and ``scheduler_options`` (lists of lines) -> lines; every other field (cores and
  memory per worker, scratch directory, wall time, partition, account, queue, exclusive,
  request_by_nodes, bsub_redirection, extra_executor_options) -> the option of the same name;
- ``compute_tags`` (the server's task routing), ``environments`` (conda or apptainer environments the
  manager runs tasks in: fragments run in this Python environment, whose workers ``worker_init`` may
  set up) and ``qcengine_memory_per_worker`` (each engine is told 85% of ``memory_per_worker``) are
  not used, nor ``bind_address`` for a local executor.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from parsl.config import Config
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigurationError
from . import PRESETS, Preset, PresetOptions, parse_options

logger = logging.getLogger(__name__)

#: QCFractal's executor type -> the preset that runs it.
PRESET_OF_TYPE = {"local": "local", "slurm": "slurm", "torque": "torque", "lsf": "lsf"}
#: QCFractal's executor field -> the preset option it sets, where their names differ.
RENAMED = {
    "workers_per_node": "max_workers",
    "max_nodes": "max_blocks",
    "project": "account",
    "bind_address": "address",
}
#: Executor fields about the manager's own work (task routing, environments, QCEngine's memory).
MANAGER_ONLY = ("compute_tags", "environments", "qcengine_memory_per_worker")
#: The manager's own fields used here (``base_folder`` only to place ``parsl_run_dir``).
USED = ("executors", "parsl_run_dir")
#: qcfractalcompute's environment variable that names the base folder, over the file's ``base_folder``.
BASE_FOLDER_ENV = "QCF_COMPUTE_BASE_FOLDER"


def is_manager_config(data: Mapping[str, Any]) -> bool:
    """A QCFractal manager file holds ``executors``; a site file is one executor (``type: ...``)."""
    return "executors" in data


def load_manager_file(
    path: str | os.PathLike, data: Mapping[str, Any], **overrides: Any
) -> tuple[Config, PresetOptions, Preset]:
    """The Parsl Config of one executor of a manager file, the validated options, and their preset.

    ``overrides``: ``executor`` names the executor; the others are preset options given next to the
    file (``max_workers=2``, ``address=...``), which take precedence over the file's fields.
    """
    path = Path(path)
    executors = validated_executors(path, data)
    name = _choose(path, executors, overrides.pop("executor", None))
    fields = executors[name]
    preset, options = preset_options(path, name, fields)
    if data.get("parsl_run_dir") is not None:
        options["run_dir"] = manager_run_dir(path, data)
    where = f"manager file {str(path)!r}, executor {name!r}"
    validated = parse_options(preset.options, {**options, **overrides}, where)
    try:
        config = preset.config(validated)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    raw = data["executors"][name]
    unused = [key for key in data if key not in USED] + [key for key in raw if key in _unused(fields)]
    logger.info(
        "%s (%s) runs on the %r preset; not used here: %s",
        where,
        fields["type"],
        preset.name,
        ", ".join(unused) or "nothing",
    )
    return config, validated, preset


def manager_run_dir(path: Path, data: Mapping[str, Any]) -> str:
    """The manager file's ``parsl_run_dir`` as qcfractalcompute's manager reads it
    (``read_configuration`` and the config's path check): expanded, and absolute from the base folder
    when relative."""
    run_dir = os.path.expandvars(os.path.expanduser(data["parsl_run_dir"]))
    base_folder = os.environ.get(BASE_FOLDER_ENV) or data.get("base_folder") or str(path.resolve().parent)
    return os.path.abspath(os.path.join(base_folder, run_dir))


def validated_executors(path: Path, data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> executor fields (every field, defaults filled in), validated by qcfractalcompute's
    models when it is installed, by :class:`ManagerConfig` otherwise."""
    if importlib.util.find_spec("qcfractalcompute") is None:
        return read_with_own_models(path, data)
    return read_with_qcfractalcompute(path, data)


def read_with_qcfractalcompute(path: Path, data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The executors as qcfractalcompute's ``FractalComputeConfig`` reads them (its environment
    variables ``QCF_COMPUTE_*`` included, as its manager's)."""
    from qcfractalcompute.config import FractalComputeConfig

    base_folder = data.get("base_folder") or str(path.resolve().parent)
    try:
        config = FractalComputeConfig(**{**data, "base_folder": base_folder})
    except ValidationError as exc:
        raise ConfigurationError(_one_line(path, exc)) from None
    return {name: executor.model_dump() for name, executor in config.executors.items()}


def read_with_own_models(path: Path, data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The executors as :class:`ManagerConfig`, the mirror of qcfractalcompute's models, reads them."""
    try:
        config = ManagerConfig(**data)
    except ValidationError as exc:
        raise ConfigurationError(_one_line(path, exc)) from None
    return {name: executor.model_dump() for name, executor in config.executors.items()}


def preset_options(path: Path, name: str, fields: Mapping[str, Any]) -> tuple[Preset, dict[str, Any]]:
    """The preset of an executor's type and the options its fields set (see the module's docstring)."""
    kind = fields["type"]
    if kind not in PRESET_OF_TYPE:
        raise ConfigurationError(
            f"manager file {str(path)!r}: executor {name!r} is of type {kind!r}, which qcfractalcompute "
            f"does not build either: use one of {', '.join(PRESET_OF_TYPE)}"
        )
    unused = _unused(fields)
    options = {}
    for key, value in fields.items():
        if key == "type" or key in unused or value is None or value == [] or value == {}:
            continue
        options[RENAMED.get(key, key)] = "\n".join(value) if isinstance(value, list) else value
    return PRESETS[PRESET_OF_TYPE[kind]], options


def _unused(fields: Mapping[str, Any]) -> tuple[str, ...]:
    return MANAGER_ONLY + (("bind_address",) if fields["type"] == "local" else ())


def _choose(path: Path, executors: Mapping[str, Any], name: str | None) -> str:
    """The executor named, or the only one."""
    names = ", ".join(executors)
    if name is not None:
        if name not in executors:
            raise ConfigurationError(
                f"manager file {str(path)!r} has no executor {name!r}; its executors: {names}"
            )
        return name
    if len(executors) == 1:
        return next(iter(executors))
    if not executors:
        raise ConfigurationError(f"manager file {str(path)!r} has no executors: add one under executors")
    raise ConfigurationError(
        f"manager file {str(path)!r} has executors {names}: choose one with executor=NAME "
        "(on the command line --option executor=NAME)"
    )


def _one_line(path: Path, exc: ValidationError) -> str:
    """The first validation error: the file, the field (without the union's type tag), the problem."""
    err = exc.errors()[0]
    loc = [str(part) for part in err["loc"]]
    if len(loc) > 2 and loc[0] == "executors" and loc[2] in (*PRESET_OF_TYPE, "custom"):
        del loc[2]
    field = ".".join(loc)
    message = " ".join(err["msg"].removeprefix("Value error, ").split())
    return f"manager file {str(path)!r}: {field + ': ' if field else ''}{message}"


# -- the mirror of qcfractalcompute's models (qcfractalcompute/config.py, 0.71) -------------------


def _walltime_text(value: Any) -> Any:
    """QCFractal's wall times: HH:MM:SS, or seconds (YAML reads an unquoted 4:00:00 as 14400 too)."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = int(value)
        return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return value


Walltime = Annotated[str, BeforeValidator(_walltime_text)]


class _Forbid(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PackageEnvironments(_Forbid):
    """Environments the manager runs tasks in (``PackageEnvironmentSettings``); not used here."""

    use_manager_environment: bool = Field(True, description="Run tasks in the manager's own environment.")
    conda: list[str] = Field(default_factory=list, description="Conda environments to run tasks in.")
    apptainer: list[str] = Field(default_factory=list, description="Apptainer images to run tasks in.")


class ManagerExecutor(_Forbid):
    """What every executor of a manager file has (``ExecutorConfig``)."""

    type: str = Field(..., description="Kind of executor: local, slurm, torque, lsf (or custom).")
    compute_tags: list[str] = Field(..., description="Tags of the server's tasks it takes; not used here.")
    worker_init: list[str] = Field(default_factory=list, description="Shell lines run before workers start.")
    scratch_directory: str | None = Field(None, description="Scratch directory of the engines.")
    bind_address: str | None = Field(None, description="Address workers connect to.")
    cores_per_worker: int = Field(..., description="Cores of each task.")
    memory_per_worker: float = Field(..., description="GiB of each task.")
    qcengine_memory_per_worker: float | None = Field(None, description="GiB QCEngine is told; not used here.")
    extra_executor_options: dict[str, Any] = Field(
        default_factory=dict, description="Further arguments of the Parsl executor."
    )
    environments: PackageEnvironments = Field(
        default_factory=PackageEnvironments, description="Environments to run tasks in; not used here."
    )


class CustomExecutor(ManagerExecutor):
    """``type: custom``: accepted by qcfractalcompute's models, built by neither."""

    type: Literal["custom"] = "custom"
    path: str = Field(..., description="Module defining the executor.")


class LocalExecutor(ManagerExecutor):
    """``type: local``: tasks on the manager's machine."""

    type: Literal["local"] = "local"
    max_workers: int = Field(..., description="Tasks at once.")


class _BatchExecutor(ManagerExecutor):
    """What the scheduler types share."""

    walltime: Walltime = Field(..., description="Wall time of each job, HH:MM:SS or seconds.")
    workers_per_node: int = Field(..., description="Tasks at once per node.")
    max_nodes: int = Field(..., description="Nodes (jobs of one node) at most at once.")
    scheduler_options: list[str] = Field(default_factory=list, description="Further directive lines.")


class SlurmExecutor(_BatchExecutor):
    """``type: slurm``."""

    type: Literal["slurm"] = "slurm"
    exclusive: bool = Field(True, description="Whole nodes for each job.")
    partition: str | None = Field(None, description="Partition of the jobs.")
    account: str | None = Field(None, description="Account charged.")


class TorqueExecutor(_BatchExecutor):
    """``type: torque``."""

    type: Literal["torque"] = "torque"
    account: str | None = Field(None, description="Account charged.")
    queue: str | None = Field(None, description="Queue of the jobs.")


class LSFExecutor(_BatchExecutor):
    """``type: lsf``."""

    type: Literal["lsf"] = "lsf"
    project: str | None = Field(None, description="Project charged.")
    queue: str | None = Field(None, description="Queue of the jobs.")
    request_by_nodes: bool = Field(True, description="Request whole nodes (#BSUB -nnodes).")
    bsub_redirection: bool = Field(True, description="Submit as bsub < script.")


AnyExecutor = Annotated[
    Union[CustomExecutor, LocalExecutor, SlurmExecutor, TorqueExecutor, LSFExecutor],  # noqa: UP007 - pydantic reads it
    Field(discriminator="type"),
]


class ServerSettings(_Forbid):
    """The QCFractal server the manager works for (``FractalServerSettings``); not used here."""

    fractal_uri: str = Field(..., description="Address of the server.")
    username: str | None = Field(None, description="User name on the server.")
    password: str | None = Field(None, description="Password of that user.")
    api_token: str | None = Field(None, description="API token, instead of a user name and password.")
    verify: bool = Field(True, description="Verify the server's TLS certificate.")

    @model_validator(mode="after")
    def _one_credential(self) -> ServerSettings:
        if self.api_token is not None and (self.username is not None or self.password is not None):
            raise ValueError("Provide either an api_token or a username/password, not both")
        return self


class ManagerConfig(_Forbid):
    """A compute manager's whole file (``FractalComputeConfig``): only ``executors`` is used here."""

    base_folder: str | None = Field(None, description="Folder relative paths start from.")
    cluster: str = Field(..., description="Name of the manager shown to the server.")
    loglevel: str = Field("INFO", description="The manager's log level.")
    logfile: str | None = Field(None, description="The manager's log file.")
    update_frequency: float | str = Field(30, description="Seconds (or a duration) between heartbeats.")
    update_frequency_jitter: float = Field(0.1, ge=0, description="Fraction the heartbeat period varies.")
    max_idle_time: int | str | None = Field(None, description="Idle time after which the manager stops.")
    parsl_run_dir: str = Field("parsl_run_dir", description="The manager's Parsl run directory.")
    parsl_usage_tracking: int = Field(0, description="Parsl's usage tracking level.")
    server: ServerSettings = Field(..., description="The server the manager works for.")
    environments: PackageEnvironments = Field(
        default_factory=PackageEnvironments, description="Environments to run tasks in."
    )
    executors: dict[str, AnyExecutor] = Field(..., description="The executors, by name.")
