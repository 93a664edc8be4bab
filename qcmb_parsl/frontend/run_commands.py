"""``qcmb-parsl run`` and ``qcmb-parsl optimize``: one input in, its result file and a table out."""

from __future__ import annotations

import argparse
import time

from .arguments import expansion_recipe, make_executor, screening


def cmd_run(args: argparse.Namespace) -> int:
    from ..engines.programs import check_programs
    from ..errors import FragmentsFailedError, RunInterrupted
    from ..planning.plan import specifications_from_input
    from .files import (
        check_result_path,
        default_result_path,
        mark_input,
        open_input,
        save_result,
        write_built_input,
    )

    start = time.perf_counter()
    screen = screening(args)
    out = check_result_path(args.out or default_result_path(args.input), inputs=[args.input], option="--out")
    input_file = open_input(args.input, expansion_recipe(args), out)
    computer = input_file.prepare(screen)
    check_programs(sorted({spec["program"] for spec in specifications_from_input(computer).values()}))
    executor = make_executor(args)
    try:
        result = computer.run(executor, start=start)
    except (FragmentsFailedError, RunInterrupted) as ended:
        if ended.report is not None:  # the run began: the input built from a molecule file repeats it
            write_built_input(input_file)
        raise
    finally:
        executor.close()
    built = write_built_input(input_file)
    out = save_result(mark_input(result, input_file), out)

    from .tables import console, energy_table, run_line

    shown = console()
    shown.print(energy_table(result, args.units))
    shown.print(run_line(result.extras["qcmb_parsl"]))
    shown.print(f"result: {out}")
    if built is not None:
        again = "" if screen is None else f" with --screen {args.screen}"
        shown.print(f"input: {built} (run it{again} to repeat this run)")
    return 0


def cmd_optimize(args: argparse.Namespace) -> int:
    from .files import check_result_path, default_result_path, read_json_object, save_result
    from .optimization import history_table, optimize_file, summary_line

    screen = screening(args)
    out = check_result_path(args.out or default_result_path(args.input), inputs=[args.input], option="--out")
    data = read_json_object(args.input, "OptimizationInput")
    executor = make_executor(args)
    try:
        result = optimize_file(args.input, data, args.optimizer, executor, screen)
    finally:
        executor.close()
    out = save_result(result, out)

    from .tables import console

    shown = console()
    shown.print(history_table(result))
    shown.print(summary_line(result))
    shown.print(f"result: {out}")
    return 0
