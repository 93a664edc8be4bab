"""A Parsl Config as data: which classes a preset builds, with which arguments.

A preset describes its Config as a tree of :class:`Call` values instead of building Parsl objects
directly. The same tree builds the Config (:meth:`Call.build`) and is written out as a plain Parsl
config file (:mod:`qcmb_parsl.presets.config_files`), so the files in ``parsl_configs/`` say exactly
what the presets build. The rare value that depends on the machine is a :class:`Computed`: the
config file computes it when it is loaded, as the preset did.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Computed:
    """A value computed on the machine that loads the Config, written into a config file as ``source``.

    ``imports`` are the standard-library modules ``source`` needs (e.g. ``("os",)``).
    """

    source: str
    value: Any
    imports: tuple[str, ...] = ()


@dataclass(frozen=True)
class Call:
    """``cls(**arguments)``, not made yet; arguments may be Calls, lists of them, or Computed values.

    The arguments are checked against ``cls``'s signature at once: a TypeError names the unknown
    one before anything is built.
    """

    cls: type
    arguments: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        inspect.signature(self.cls).bind(**self.arguments)

    def build(self) -> Any:
        """The object: ``cls`` called with every argument built."""
        return self.cls(**{name: _build(value) for name, value in self.arguments.items()})


def _build(value: Any) -> Any:
    if isinstance(value, Call):
        return value.build()
    if isinstance(value, Computed):
        return value.value
    if isinstance(value, list):
        return [_build(item) for item in value]
    return value
