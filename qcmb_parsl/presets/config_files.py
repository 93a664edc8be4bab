"""The presets written out as plain Parsl config files: ``qcmb-parsl presets --write-configs DIR``.

Each file is Parsl's own idiom (``parsl/configs/*.py``): imports and one ``config = Config(...)``,
written from the preset's blueprint (:mod:`.blueprint`) with its default options, plus the ones in
:attr:`Preset.file_options`. A site copies a file, edits the lines marked ``# site`` and passes its
path. ``parsl_configs/`` in the repository is this command's output; a test loads each file there
and compares its Config with the preset's.

What depends on the machine loading the file is written as code: this Python's environment as
``os.path.dirname(sys.executable)``, a worker count from ``os.cpu_count()``.
"""

from __future__ import annotations

import inspect
import json
import textwrap
from pathlib import Path
from typing import Any

from . import PRESETS, Preset, parse_options, python_bin_dir
from .blueprint import Call, Computed

#: What a site changes, by argument (``Class.argument`` where one name means different things):
#: these lines end in ``# site: ...``.
SITE_NOTES = {
    "address": "where workers reach the driver, e.g. address_by_interface('ib0'); None: they probe all",
    "LocalProvider.max_blocks": "",
    "max_threads": "fragments at once",
    "max_workers_per_node": "fragments at once per node",
    "max_workers_per_block": "fragments at once per block, at most nodes_per_block",
    "cores_per_worker": "cores of each fragment (QCEngine's ncores)",
    "mem_per_worker": "GiB of each fragment",
    "mpi_launcher": '"mpiexec" (MPICH syntax) or "aprun" where srun is not used',
    "partition": "partition name",
    "account": "account to charge",
    "project": "project to charge",
    "qos": "quality of service",
    "constraint": "node features the jobs need",
    "queue": "queue name",
    "exclusive": "whole nodes for each job",
    "nodes_per_block": "nodes per batch job",
    "cores_per_node": "cores requested per node",
    "cpus_per_node": "ncpus requested per node",
    "cores_per_block": "cores_per_node * nodes_per_block",
    "request_by_nodes": "True: '#BSUB -nnodes' (CSM sites such as Summit)",
    "select_options": 'further select resources, e.g. "ngpus=4"',
    "max_blocks": "batch jobs at most at once",
    "walltime": "of each batch job, HH:MM:SS",
    "scheduler_options": "further directive lines of this scheduler",
    "worker_init": "add module loads; keep the caps equal to cores_per_worker",
    "MpiExecLauncher.bind_cmd": 'MPICH and Cray: "--cpu-bind"',
    "MpiExecLauncher.overrides": 'one pool per host: Open MPI "--map-by node", MPICH "-ppn 1"',
}
#: Why a line a site leaves alone is as it is ("" for no note where a name alone would give one).
NOTES = {
    "encrypted": "CurveZMQ: only this run's workers get tasks",
    "heartbeat_period": "a lost block is noticed in ~10 s, not Parsl's default 120 s",
    "poll_period": "ms between idle looks at sockets: Parsl's 10 costs the driver CPU",
    "block_error_handler": "a dead block's tasks are retried on a new one",
    "bsub_redirection": "'bsub < script', so that the #BSUB lines are read",
    "SrunLauncher.overrides": "since Slurm 22.05 a step does not inherit --cpus-per-task",
    "SimpleLauncher": "MPIExecutor requires it",
}
#: Parsl packages whose classes a config file imports, by the public name they export.
PARSL_PACKAGES = ("parsl.executors", "parsl.providers", "parsl.launchers", "parsl.config")
_INDENT = "    "
_WIDTH = 100
#: Longest line of a config file (the project's line length): longer notes go on a line of their own.
_LINE_LENGTH = 110


def file_name(preset: Preset[Any]) -> str:
    """``slurm_mpi.py`` for the ``slurm-mpi`` preset."""
    return preset.name.replace("-", "_") + ".py"


def render_config_file(preset: Preset[Any]) -> str:
    """The text of the preset's config file (see the module's docstring)."""
    options = parse_options(preset.options, preset.file_options, f"preset {preset.name!r}")
    writer = _Writer()
    body = writer.value(preset.describe(options), 0)
    lines = [f'"""{_docstring(preset)}"""', ""]
    lines += [f"import {module}" for module in sorted(writer.modules)]
    if writer.modules:
        lines.append("")
    for package in sorted(writer.classes):
        lines.append(f"from {package} import {', '.join(sorted(writer.classes[package]))}")
    lines += ["", f"config = {body}", ""]
    return "\n".join(lines)


def write_config_files(directory: str | Path) -> list[Path]:
    """Write every preset's config file into ``directory`` (created if missing); the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for preset in PRESETS.values():
        path = directory / file_name(preset)
        path.write_text(render_config_file(preset))
        written.append(path)
    return written


def _docstring(preset: Preset[Any]) -> str:
    fixed = ", ".join(f"{name}={value!r}" for name, value in preset.file_options.items())
    copy = f"my_{file_name(preset)}"
    paragraphs = [
        f"The ``{preset.name}`` preset as a plain Parsl config file: {preset.summary}.",
        *(inspect.getdoc(preset.blueprint) or "").split("\n\n"),
        f"Needs: {preset.needs}.",
        f"Written by ``qcmb-parsl presets --write-configs DIR`` from the preset with its default options"
        f"{f' and {fixed}' if fixed else ''}. Copy it, edit the lines marked ``# site``, and pass its path: "
        f'``ParslExecutor("{copy}")`` or ``qcmb-parsl run INPUT.json --config {copy}``.',
    ]
    text = "\n\n".join(
        textwrap.fill(" ".join(p.split()), _WIDTH, break_on_hyphens=False) for p in paragraphs if p.strip()
    )
    return text + "\n"


class _Writer:
    """Python source of blueprint values, laid out as ``ruff format`` lays it out, imports collected."""

    def __init__(self) -> None:
        self.modules: set[str] = set()
        self.classes: dict[str, set[str]] = {}

    def value(self, value: Any, depth: int) -> str:
        if isinstance(value, Call):
            return self.call(value, depth)
        if isinstance(value, Computed):
            self.modules.update(value.imports)
            return value.source
        if isinstance(value, list):
            if not value:
                return "[]"
            items = "".join(f"{_INDENT * (depth + 1)}{self.value(item, depth + 1)},\n" for item in value)
            return f"[\n{items}{_INDENT * depth}]"
        if isinstance(value, str):
            return self.string(value, depth)
        return repr(value)

    def call(self, call: Call, depth: int) -> str:
        name = call.cls.__name__
        self.classes.setdefault(_package(call.cls), set()).add(name)
        if not call.arguments:
            return f"{name}()"
        pad = _INDENT * (depth + 1)
        lines = []
        for argument, value in call.arguments.items():
            text = self.value(value, depth + 1)
            note = _note(call.cls, argument, value)
            line = f"{pad}{argument}={text},"
            if note and ("\n" in text or len(f"{line}  # {note}") > _LINE_LENGTH):
                lines.append(f"{pad}# {note}\n{line}\n")
            else:
                lines.append(f"{line}{f'  # {note}' if note else ''}\n")
        return f"{name}(\n{''.join(lines)}{_INDENT * depth})"

    def string(self, text: str, depth: int) -> str:
        """A one-line literal, or ``"\\n".join([...])`` with a literal per line."""
        if "\n" not in text:
            return self.line(text)
        outer, inner = _INDENT * (depth + 1), _INDENT * (depth + 2)
        items = "".join(f"{inner}{self.line(line)},\n" for line in text.split("\n"))
        return f'"\\n".join(\n{outer}[\n{items}{outer}]\n{_INDENT * depth})'

    def line(self, text: str) -> str:
        bin_dir = python_bin_dir()
        if bin_dir not in text:
            return _quote(text)
        self.modules.update(("os", "sys"))
        escaped = text.replace("{", "{{").replace("}", "}}")
        return "f" + _quote(escaped.replace(bin_dir, "{os.path.dirname(sys.executable)}"))


def _quote(text: str) -> str:
    """A string literal in ruff's preferred quotes: double, unless that needs more escapes."""
    return repr(text) if '"' in text and "'" not in text else json.dumps(text, ensure_ascii=False)


def _note(cls: type, argument: str, value: Any) -> str:
    """``site: ...`` for what a site changes, or why a line is as it is; "" for neither."""
    for key in (f"{cls.__name__}.{argument}", argument):
        if SITE_NOTES.get(key):
            return f"site: {SITE_NOTES[key]}"
        if key in SITE_NOTES or key in NOTES:
            return NOTES.get(key, "")
    if isinstance(value, Call):
        return NOTES.get(value.cls.__name__, "")
    return ""


def _package(cls: type) -> str:
    """The Parsl package a config file imports ``cls`` from (its public name, as Parsl's own files do)."""
    import importlib

    for package in PARSL_PACKAGES:
        if getattr(importlib.import_module(package), cls.__name__, None) is cls:
            return package
    return cls.__module__
