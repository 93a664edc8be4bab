"""Reference pages written at build time from the code itself (mkdocs-gen-files runs this).

- ``reference/cli.md``: every command's ``--help``, from the argparse parser ``qcmb-parsl`` runs;
- ``reference/presets.md``: every preset and its options, from the option models, in the words
  ``qcmb-parsl presets NAME`` prints.

Nothing here is copied by hand, so these pages cannot drift from the program.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator

import mkdocs_gen_files

from qcmb_parsl.frontend.cli import PROG, build_parser
from qcmb_parsl.presets.describe import option_rows, ordered_presets

HELP_COLUMNS = "100"


def _commands(parser: argparse.ArgumentParser, prefix: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(``qcmb-parsl cache list``, its parser) for every command and sub-command, in the parser's order."""
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{prefix} {name}")


def cli_page() -> str:
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS  # argparse wraps help to the terminal's width
    try:
        commands = _commands(build_parser(), PROG)
        sections = [(name, sub.format_help()) for name, sub in commands if name != f"{PROG} cache"]
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    lines = [
        "# Command line",
        "",
        f"`{PROG}` is installed with the package (also `python -m qcmb_parsl`). This page is generated from "
        "its parser at build time: it is what `--help` prints. Exit status, output files and the result's "
        "fields are in [Results, files and exit status](results.md).",
        "",
    ]
    for name, text in sections:
        lines += [f"## `{name}`", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def presets_page() -> str:
    presets = ordered_presets()
    lines = [
        "# Presets",
        "",
        "A preset names a way to build a Parsl configuration: "
        '`ParslExecutor("slurm", partition="debug")`, '
        f"`{PROG} run INPUT.json --preset slurm --option partition=debug`, or the fields of a site file. "
        f"This page is generated from the presets' option models at build time; `{PROG} presets` and "
        f"`{PROG} presets NAME` print the same. How to choose and configure one: "
        "[Where fragments run](../how-to/site-config.md).",
        "",
        "| preset | for | needs |",
        "|---|---|---|",
    ]
    lines += [
        f"| [`{p.name}`](#{p.name}) | {_cell(p.purpose or p.summary)} | {_cell(p.needs)} |" for p in presets
    ]
    for preset in presets:
        lines += [
            "",
            f"## {preset.name}",
            "",
            f"{preset.summary}.",
            "",
            f"**For:** {preset.purpose or preset.summary}. **Needs:** {preset.needs}.",
            "",
            "| option | type | default | meaning |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `{row.name}` | {_cell(row.type)} | `{_cell(row.default)}` | {_cell(row.description)} |"
            for row in option_rows(preset.name)
        ]
    return "\n".join(lines) + "\n"


for path, page in (("reference/cli.md", cli_page()), ("reference/presets.md", presets_page())):
    with mkdocs_gen_files.open(path, "w") as handle:
        handle.write(page)
