"""Presets for people: what each is for and needs, and every option's type, default and meaning in words.

``qcmb-parsl presets`` prints these rows and the documentation's presets reference is generated from
them, so the command and the page say the same. The words come from the option models themselves
(their annotations, constraints and descriptions): a new option or preset describes itself.
"""

from __future__ import annotations

import json
import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic.fields import FieldInfo

from . import PRESETS, Preset, Words, get_preset

__all__ = ["OptionRow", "option_rows", "ordered_presets", "type_words"]

#: The order presets are shown in: one machine first, then clusters from the most common scheduler.
#: Presets registered by others follow, by name.
DISPLAY_ORDER = ("threads", "local", "mpi", "slurm", "slurm-mpi", "pbspro", "torque", "lsf")


@dataclass(frozen=True)
class OptionRow:
    """One option of a preset as people read it."""

    name: str
    type: str
    default: str
    description: str


def ordered_presets() -> list[Preset[Any]]:
    """Every registered preset, in :data:`DISPLAY_ORDER`, then any others by name."""
    known = [PRESETS[name] for name in DISPLAY_ORDER if name in PRESETS]
    others = [PRESETS[name] for name in sorted(set(PRESETS) - set(DISPLAY_ORDER))]
    return known + others


def option_rows(name: str) -> list[OptionRow]:
    """The options of preset ``name`` (an unknown name is the usual one-line ConfigurationError)."""
    model = get_preset(name).options
    return [
        OptionRow(
            option,
            type_words(info.annotation, info.metadata),
            _default_words(info),
            info.description or "",
        )
        for option, info in model.model_fields.items()
    ]


def type_words(annotation: Any, metadata: list[Any] | tuple[Any, ...] = ()) -> str:
    """``integer ≥ 1``, ``text, one line``, ``one of srun, mpiexec, aprun``, ... for a field's type.

    ``metadata`` is what pydantic took out of the field's ``Annotated`` and ``Field`` (constraints,
    :class:`Words`); an ``X | None`` reads as ``X``, its default says when it may be left out.
    """
    if get_origin(annotation) is Annotated:
        inner, *extra = get_args(annotation)
        return type_words(inner, [*extra, *metadata])
    for item in metadata:
        if isinstance(item, Words):
            return item.text
    if get_origin(annotation) in (Union, types.UnionType):
        kinds = [arg for arg in get_args(annotation) if arg is not type(None)]
        return " or ".join(type_words(kind, metadata) for kind in kinds)
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(value) for value in get_args(annotation))
    if annotation is bool:
        return "true or false"
    if annotation in (int, float):
        noun = "integer" if annotation is int else "number"
        return " ".join([noun, *_bounds(metadata)])
    if annotation is str:
        return "text"
    if get_origin(annotation) is dict or annotation is dict:
        return "mapping (JSON object)"
    if get_origin(annotation) in (list, tuple):
        (item, *_) = get_args(annotation) or (Any,)
        return f"list of {type_words(item)}"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(metadata: list[Any] | tuple[Any, ...]) -> list[str]:
    signs = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    words = []
    for item in metadata:
        if isinstance(item, (annotated_types.Ge, annotated_types.Gt, annotated_types.Le, annotated_types.Lt)):
            (attribute,) = (name for name in signs if hasattr(item, name))
            words.append(f"{signs[attribute]} {getattr(item, attribute)}")
    return words


def _default_words(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if value == "" or value == {}:
        return "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)
