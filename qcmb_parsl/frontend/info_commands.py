"""``qcmb-parsl presets`` and ``qcmb-parsl report``: what the presets are, pictures of results."""

from __future__ import annotations

import argparse

from .exits import PROG


def cmd_presets(args: argparse.Namespace) -> int:
    if args.write_configs:
        from ..presets.config_files import write_config_files

        for path in write_config_files(args.write_configs):
            print(f"wrote {path}")
        return 0

    from .preset_tables import preset_view, presets_table
    from .tables import console

    shown = console()
    if args.name is not None:
        shown.print(preset_view(args.name))
        shown.print(
            f"Set an option with `{PROG} run INPUT.json --preset {args.name} --option KEY=VALUE`, "
            "or as a field of a site file (.yaml)."
        )
        return 0
    shown.print(presets_table())
    shown.print(
        f"`{PROG} presets NAME` shows one preset's options. Use one with `{PROG} run INPUT.json --preset "
        "NAME`, or give a Parsl config file (.py) or a site file (.yaml) with --config."
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .pictures import write_report

    for result in args.results:
        for name, path in write_report(result, args.out_dir, args.units).items():
            print(f"{name}: {path}")
    return 0
