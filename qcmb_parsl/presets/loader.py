"""Resolve what a user passes as ``config`` into a Parsl Config: a preset name, a file, or a Config.

Config files are Parsl's own idiom: a Python module that defines ``config``. Site files are YAML with
QCFractal's compute-manager field names; a QCFractal compute manager's own YAML file is read as it is
(one of its executors, ``executor=NAME``). All problems surface here, before anything is submitted.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import runpy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parsl.config import Config
from parsl.executors import HighThroughputExecutor

from ..errors import ConfigurationError
from . import Preset, PresetOptions, build_preset, get_preset, parse_options

logger = logging.getLogger(__name__)

ConfigSource = str | os.PathLike[str] | Config


def load_config_file(path: str | os.PathLike) -> Config:
    """The ``config`` a Parsl config file defines, with a one-line error for each way that fails."""
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"Parsl config file {str(path)!r} does not exist")
    try:
        namespace = runpy.run_path(str(path), run_name="qcmb_parsl_config")
    except SystemExit as exc:  # a config file is read, not run: its exit is no exit of ours
        raise ConfigurationError(
            f"Parsl config file {str(path)!r} exited (sys.exit({exc.code!r})) instead of defining `config`"
        ) from None
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
    """Build (or load) the Parsl Config that ``source`` names, validating ``options`` against it; warn
    about every HighThroughputExecutor in it that does not encrypt (:func:`warn_unencrypted`)."""
    resolved = _resolve(source, options)
    warn_unencrypted(resolved)
    return resolved


def _resolve(source: ConfigSource, options: dict[str, Any]) -> ResolvedConfig:
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


def warn_unencrypted(resolved: ResolvedConfig) -> None:
    """One WARNING line per HighThroughputExecutor with ``encrypted=False``, saying who can reach it.

    Its interchange takes tasks and results in the clear on its worker ports: whoever can connect there
    can run code in the workers' name or read what they send. The presets always encrypt; a config of the
    user's may not, and the user should know what that opens.
    """
    for executor in resolved.config.executors:
        if not isinstance(executor, HighThroughputExecutor) or executor.encrypted:
            continue
        low, high = executor.worker_port_range or (None, None)
        ports = f"port {executor.worker_port}" if executor.worker_port else f"ports {low}-{high}"
        address = executor.address
        if address is None:
            where = f"{ports} on any address of this machine"
        elif _loopback(address):
            where = f"{ports} on {address}, every user of this machine,"
        else:
            where = f"{ports} on {address}"
        logger.warning(
            "Parsl config %r: executor %r has encrypted=False: anyone who can reach %s can send its workers "
            "tasks and read their results; set encrypted=True",
            resolved.label,
            executor.label,
            where,
        )


def _loopback(address: str) -> bool:
    """Whether ``address`` is this machine's loopback, which every local user can reach."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _generic_options(options: dict[str, Any]) -> PresetOptions:
    """Resource options for a user's own Config: only the common ones make sense there."""
    return parse_options(PresetOptions, options, "options for a config file or parsl.Config")
