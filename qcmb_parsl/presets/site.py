"""Site files: one executor described in YAML with the field names of QCFractal's compute manager.

A site that already runs a QCFractal compute manager can describe its cluster the same way here::

    type: slurm
    partition: compute
    account: chem123
    walltime: "04:00:00"
    workers_per_node: 8
    cores_per_worker: 4
    memory_per_worker: 16
    max_nodes: 10
    worker_init:
      - module load nwchem

``type`` picks the preset (every registered preset name: slurm, slurm-mpi, mpi, pbspro, torque, lsf, local,
threads); every other field is an option of that preset, or one of QCFractal's names for one
(``workers_per_node`` for ``max_workers``, ``max_nodes`` for blocks or nodes, ``project`` for LSF's
account, lists of lines for ``worker_init`` and ``scheduler_options``). The Parsl Config is then built
by the preset's own builder: a site file is data for a preset, never a second copy of one.

A QCFractal compute manager's own file (``cluster``, ``server``, ``executors: {name: {...}}``) is taken
as it is: :mod:`.manager` reads it and picks one of its executors.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union, cast

import yaml
from parsl.config import Config
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, create_model, model_validator

from ..errors import ConfigurationError
from . import PRESETS, Preset, PresetOptions
from .manager import is_manager_config, load_manager_file

logger = logging.getLogger(__name__)

#: Fields whose QCFractal form is a list of lines.
LINE_FIELDS = ("worker_init", "scheduler_options")


class SiteFields(BaseModel):
    """QCFractal's compute-manager spellings, rewritten to the preset's option names before validation."""

    @model_validator(mode="before")
    @classmethod
    def _qcfractal_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        fields = cls.model_fields
        if "workers_per_node" in data and "max_workers" in fields and not _has_alias(fields["max_workers"]):
            data["max_workers"] = data.pop("workers_per_node")
        for name in LINE_FIELDS:
            if isinstance(data.get(name), list):
                data[name] = "\n".join(str(line) for line in data[name])
        if "max_nodes" in data:
            _max_nodes(data, fields)
        return data


def _has_alias(field: Any) -> bool:
    """Whether a field already accepts QCFractal's workers_per_node itself (then errors name that)."""
    return "workers_per_node" in str(field.validation_alias or "")


def _max_nodes(data: dict[str, Any], fields: dict[str, Any]) -> None:
    """QCFractal's max_nodes: blocks of nodes_per_block nodes for batch presets, the node count for mpi."""
    max_nodes = data["max_nodes"]
    if not isinstance(max_nodes, int) or isinstance(max_nodes, bool) or max_nodes < 1:
        raise ValueError(f"max_nodes must be a positive integer, got {max_nodes!r}")
    if "max_blocks" in fields:
        if "max_blocks" in data:
            raise ValueError("give max_nodes or max_blocks, not both")
        per_block = data.get("nodes_per_block", 1)
        per_block = per_block if isinstance(per_block, int) and per_block > 0 else 1
        data["max_blocks"] = math.ceil(data.pop("max_nodes") / per_block)
    elif "nodes" in fields:
        if "nodes" in data:
            raise ValueError("give max_nodes or nodes, not both")
        data["nodes"] = data.pop("max_nodes")


def _site_model(preset: Preset[Any]) -> type[PresetOptions]:
    """The site-file model of one preset: its options plus the ``type`` tag and QCFractal's names.

    Built at run time from the registered presets, so its types are runtime values (``Any`` to mypy).
    """
    bases: Any = (SiteFields, preset.options)
    tag: Any = Literal[preset.name]
    return cast(
        type[PresetOptions],
        create_model(
            f"SiteConfig_{preset.name.replace('-', '_')}",
            __base__=bases,
            type=(tag, Field(..., description="The preset this site file configures.")),
        ),
    )


def site_adapter() -> TypeAdapter[Any]:
    """A validator of site files over every registered preset, discriminated by ``type``."""
    models = tuple(_site_model(preset) for preset in PRESETS.values())
    union: Any = Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007 - a runtime tuple
    return TypeAdapter(union)


def read_site_file(path: str | os.PathLike) -> dict[str, Any]:
    """The YAML mapping of a site file, with a one-line error for a missing file or bad YAML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"site file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigurationError(f"site file {str(path)!r}: invalid YAML{where}: {problem}") from None
    except OSError as exc:
        raise ConfigurationError(f"site file {str(path)!r}: cannot be read: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"site file {str(path)!r}: expected a mapping of fields (type: ...), got {type(data).__name__}"
        )
    return data


def _one_line(path: Path, data: dict[str, Any], exc: ValidationError) -> str:
    """The first validation error as one line: the file, the field, what is wrong, the valid fields."""
    err = exc.errors()[0]
    loc = [str(part) for part in err["loc"]]
    tag = data.get("type")
    if loc and loc[0] == str(tag):
        loc = loc[1:]
    field = ".".join(loc)
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden" and tag in PRESETS:
        message += f" (fields of type {tag}: type, {', '.join(PRESETS[tag].options.model_fields)})"
    elif err["type"] == "union_tag_not_found":
        field, message = "type", f"missing; one of: {', '.join(PRESETS)}"
    elif err["type"] == "union_tag_invalid":
        field, message = "type", f"{tag!r} is not a known type; one of: {', '.join(PRESETS)}"
    return f"site file {str(path)!r}: {field + ': ' if field else ''}{message}"


def load_site_file(path: str | os.PathLike, **overrides: Any) -> tuple[Config, PresetOptions, Preset]:
    """The Parsl Config a site file describes, the validated options, and the preset they are for.

    ``overrides`` (keyword options given next to the file, e.g. ``ParslExecutor("site.yaml",
    address="10.0.0.1")``) take precedence over the file's fields. A QCFractal manager file goes to
    :func:`.manager.load_manager_file`, where the override ``executor`` names one of its executors.
    """
    path = Path(path)
    data = read_site_file(path)
    if is_manager_config(data):
        return load_manager_file(path, data, **overrides)
    if "executor" in overrides:
        raise ConfigurationError(
            f"site file {str(path)!r} describes one executor: the option executor chooses among the "
            "executors of a QCFractal manager file"
        )
    data = {**data, **overrides}
    try:
        site = site_adapter().validate_python(data)
    except ValidationError as exc:
        raise ConfigurationError(_one_line(path, data, exc)) from None
    preset = PRESETS[site.type]
    options = preset.options.model_validate(site.model_dump(exclude={"type"}))
    try:
        config = preset.config(options)
    except ConfigurationError as exc:
        raise ConfigurationError(f"site file {str(path)!r}: {exc}") from None
    logger.info("site file %s: preset %r", path, preset.name)
    return config, options, preset
