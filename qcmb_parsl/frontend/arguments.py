"""What the parsed command line means: the executor, the molecule files' recipe, the screening.

Each function turns the options of :mod:`~qcmb_parsl.frontend.parser` into the object the library
takes, refusing a bad value with one line (exit status 2) before anything runs.
"""

from __future__ import annotations

import argparse
import inspect
import json
from typing import Any

from .exits import PROG

DEFAULT_PRESET = "local"
#: ParslExecutor settings the command line sets with options of its own, not with --option.
COMMAND_OPTIONS = {
    "config": "--config or --preset",
    "cache": "--no-cache",
    "cache_dir": "--cache-dir",
    "progress": "--progress or --quiet",
}
#: Options that describe the expansion of a molecule file (attribute names), each None unless given.
MOLECULE_OPTIONS = (
    "method",
    "basis",
    "program",
    "driver",
    "bsse",
    "max_nbody",
    "total_energies",
    "fragments",
    "fragment_charges",
    "fragment_multiplicities",
    "charge",
    "multiplicity",
)


def screening(args: argparse.Namespace) -> Any:
    """The Screening of --screen, or None; InputError (exit 2) for a bad value, before anything runs."""
    from ..screening import parse_screen

    return None if args.screen is None else parse_screen(args.screen)


def expansion_recipe(args: argparse.Namespace) -> Any:
    """The ExpansionRecipe the molecule-file options describe, or None when none is given."""
    from ..errors import InputError
    from ..planning.molecule_files import ExpansionRecipe, parse_fragments, parse_numbers

    given = [name for name in MOLECULE_OPTIONS if getattr(args, name) is not None]
    if not given:
        return None
    if args.method is None:
        raise InputError(
            f"--{given[0].replace('_', '-')} describes the expansion of a molecule file: give --method "
            "(and --basis) too"
        )
    fields = ("method", "basis", "program", "driver", "max_nbody", "charge", "multiplicity")
    options = {name: getattr(args, name) for name in fields if getattr(args, name) is not None}
    if args.bsse is not None:
        options["bsse_type"] = tuple(part.strip() for part in args.bsse.split(","))
    if args.total_energies:
        options["total_energies"] = True
    if args.fragments is not None:
        options["fragments"] = parse_fragments(args.fragments)
    if args.fragment_charges is not None:
        options["fragment_charges"] = parse_numbers(args.fragment_charges, "--fragment-charges", float)
    if args.fragment_multiplicities is not None:
        options["fragment_multiplicities"] = parse_numbers(
            args.fragment_multiplicities, "--fragment-multiplicities", int
        )
    return ExpansionRecipe(**options)


def make_executor(args: argparse.Namespace) -> Any:
    """The ParslExecutor the options describe; it starts Parsl only when a fragment must be computed."""
    from ..execution.executors import ParslExecutor

    return ParslExecutor(
        args.config or args.preset or DEFAULT_PRESET,
        cache=not args.no_cache,
        cache_dir=args.cache_dir,
        progress=False if args.quiet else args.progress,
        **_preset_options(args),
    )


def _option_value(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return text


def _preset_options(args: argparse.Namespace) -> dict[str, Any]:
    from ..errors import ConfigurationError

    options: dict[str, Any] = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"--option {item!r}: write KEY=VALUE")
        options[key.strip().replace("-", "_")] = _option_value(value)
    settings = sorted(set(options) & _executor_settings())
    if settings:
        named = [
            f"{name} (use {COMMAND_OPTIONS[name]})" if name in COMMAND_OPTIONS else name for name in settings
        ]
        raise ConfigurationError(
            f"--option {', '.join(named)}: not a preset option; `{PROG} presets` lists each preset's options"
        )
    if args.workers is not None:
        if args.workers < 1:
            raise ConfigurationError(f"--workers must be at least 1, got {args.workers}")
        options["max_workers"] = args.workers
    if args.monitoring:
        options["monitoring"] = True
    return options


def _executor_settings() -> set[str]:
    """ParslExecutor's own keyword parameters that are no preset option: --option may not set them."""
    from ..execution.executors import ParslExecutor
    from ..presets import PresetOptions

    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = inspect.signature(ParslExecutor).parameters.values()
    return {p.name for p in parameters if p.kind in named} - set(PresetOptions.model_fields)
