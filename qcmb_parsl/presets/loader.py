"""Resolve what a user passes as ``config`` into a Parsl Config: a preset name, a file, or a Config.

Config files are Parsl's own idiom: a Python module that defines ``config``. Site files are YAML with
QCFractal's compute-manager field names; a QCFractal compute manager's own YAML file is read as it is
(one of its executors, ``executor=NAME``). All problems surface here, before anything is submitted.
"""

from __future__ import annotations

import os
import runpy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parsl.config import Config

from ..errors import ConfigurationError
from . import Preset, PresetOptions, build_preset, get_preset, parse_options

ConfigSource = str | os.PathLike[str] | Config


def load_config_file(path: str | os.PathLike) -> Config:
    """The ``config`` a Parsl config file defines, with a one-line error for each way that fails."""
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"Parsl config file {str(path)!r} does not exist")
    try:
        namespace = runpy.run_path(str(path), run_name="qcmb_parsl_config")
    except Exception as exc:  # any failure of user code is reported, on one line
        raise ConfigurationError(
            f"Parsl config file {str(path)!r} raised {type(exc).__name__}: {exc}".splitlines()[0]
        ) from exc
    config = namespace.get("config")
    if config is None:
        raise ConfigurationError(f"Parsl config file {str(path)!r} defines no `config`")
    if not isinstance(config, Config):
        raise ConfigurationError(
            f"Parsl config file {str(path)!r}: `config` is a {type(config).__name__}, "
            "not a parsl.config.Config"
        )
    return config


@dataclass(frozen=True)
class ResolvedConfig:
    """A Parsl Config with the options it was built from, and the preset when it came from one."""

    config: Config
    options: PresetOptions
    label: str
    preset: Preset | None = None


def resolve_config(source: ConfigSource, options: dict[str, Any]) -> ResolvedConfig:
    """Build (or load) the Parsl Config that ``source`` names, validating ``options`` against it."""
    if isinstance(source, Config):
        return ResolvedConfig(source, _generic_options(options), "config")
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigurationError(
            f"config must be a preset name, the path of a Parsl config file (.py), a site file or QCFractal "
            f"manager file (.yaml), or a parsl.config.Config, not {type(source).__name__}"
        )
    text = os.fspath(source)
    suffix = Path(text).suffix.lower()
    if suffix == ".py":
        return ResolvedConfig(load_config_file(text), _generic_options(options), Path(text).stem)
    if suffix in (".yaml", ".yml"):
        from .site import load_site_file

        config, site_options, preset = load_site_file(text, **options)
        return ResolvedConfig(config, site_options, Path(text).stem, preset)
    preset = get_preset(text)
    config, validated = build_preset(text, **options)
    return ResolvedConfig(config, validated, text, preset)


def _generic_options(options: dict[str, Any]) -> PresetOptions:
    """Resource options for a user's own Config: only the common ones make sense there."""
    return parse_options(PresetOptions, options, "options for a config file or parsl.Config")
