"""``qcmb-parsl campaign``: many inputs in one session, a table of them and the summary CSV."""

from __future__ import annotations

import argparse

from .arguments import expansion_recipe, make_executor, screening
from .exits import CampaignFailedError


def cmd_campaign(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..engines.programs import check_programs
    from .campaign import prepare_campaign
    from .tables import console, run_line
    from .units import format_energy

    # Every input, model chemistry and output path is checked before the executor is built (Parsl's
    # import alone is a second) and before anything is written.
    campaign = prepare_campaign(
        args.inputs, args.out_dir, force=args.force, recipe=expansion_recipe(args), screening=screening(args)
    )
    check_programs(campaign.programs)
    executor = make_executor(args)
    try:
        outcome = campaign.run(executor)
    finally:
        executor.close()

    table = Table(title=f"Campaign (interaction energies through the highest n-body level, {args.units})")
    for column in ("input", "status", "tasks", "executed", "cached", "shared", "failed", "CP IE", "no-CP IE"):
        table.add_column(column, justify="left" if column in ("input", "status") else "right")
    for entry in outcome.entries:
        ie = entry.interaction_energies
        table.add_row(
            entry.input,
            entry.status,
            str(entry.n_tasks),
            str(entry.n_executed),
            str(entry.n_cached),
            str(entry.n_shared),
            str(entry.n_failed),
            format_energy(ie.get("cp"), args.units),
            format_energy(ie.get("nocp"), args.units),
        )
    shown = console()
    shown.print(table)
    statuses = [entry.status for entry in outcome.entries]
    line = ", ".join(f"{statuses.count(s)} {s}" for s in ("computed", "skipped", "failed") if s in statuses)
    shown.print(f"{len(statuses)} inputs: {line}")
    if outcome.summary is not None:
        shown.print("this session: " + run_line(outcome.summary.as_dict()))
    shown.print(f"summary: {outcome.summary_csv}")
    if outcome.failed:
        first = outcome.failed[0]
        raise CampaignFailedError(
            f"{len(outcome.failed)} of {len(outcome.entries)} inputs failed (see {outcome.summary_csv}); "
            f"{first.input}: {first.error}"
        )
    return 0
