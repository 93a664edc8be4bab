"""The ``qcmb-parsl`` command: run one input or a campaign, look after the cache, list presets, draw reports.

Commands::

    qcmb-parsl run INPUT.json [--preset NAME | --config FILE] [--workers N] [--out RESULT.json]
    qcmb-parsl run CLUSTER.xyz --method M [--basis B] [--bsse cp,nocp] [--max-nbody N] [--fragments ...]
    qcmb-parsl run INPUT.json --screen 2:8.0,3:6.0 (also for optimize and campaign)
    qcmb-parsl optimize INPUT.json [--optimizer geometric] [executor options as for run] [--out RESULT.json]
    qcmb-parsl campaign DIR_OR_FILES... [--out-dir D] [--force] [--method M ... for molecule files]
    qcmb-parsl cache stats | list [INPUT.json] | verify
    qcmb-parsl cache invalidate [--program P] [--method M] [--input I] | clear
    qcmb-parsl presets [NAME]
    qcmb-parsl report RESULT.json... [--out-dir D]
    qcmb-parsl --version

This module is the entry point: it parses (:mod:`~qcmb_parsl.frontend.parser`), sets up logging, calls
the command's handler and turns what it raises into one line and an exit status
(:mod:`~qcmb_parsl.frontend.exits`, where the statuses are listed); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Sequence

from .exits import PROG, exit_status, one_line
from .parser import build_parser

__all__ = ["PROG", "build_parser", "configure_logging", "main"]

_handler: logging.Handler | None = None


def configure_logging(verbose: int, quiet: bool) -> None:
    """Warnings and errors on stderr; qcmb_parsl's INFO with -v, DEBUG with -vv; progress log lines
    (when the progress display is log lines) unless --quiet."""
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root.addHandler(_handler)
    root.setLevel(logging.WARNING)
    level = logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.WARNING
    logging.getLogger("qcmb_parsl").setLevel(level)
    logging.getLogger("qcmb_parsl.progress").setLevel(logging.WARNING if quiet else min(level, logging.INFO))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    from ..errors import RunInterrupted
    from ..execution.stops import stop_before_run

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        with contextlib.ExitStack() as before_run:
            # Parsing imports what the options name (about a second): a stop then, and in a command that
            # computes until its run loop begins, is one line like a stop during the run.
            before_run.enter_context(stop_before_run())
            try:
                args = build_parser().parse_args(argv)
            except SystemExit as exc:  # --help, or argparse's own exit
                return int(exc.code or 0)
            if not args.computes:
                before_run.close()
            for name, default in (("verbose", 0), ("quiet", False), ("debug", False)):
                if not hasattr(args, name):
                    setattr(args, name, default)
            configure_logging(args.verbose, args.quiet)
            return args.handler(args)
    except RunInterrupted as stop:
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            print(f"{PROG}: {stop}", file=sys.stderr)
        return stop.exit_status
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line and an exit status
        if debug:
            traceback.print_exc()
        print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
        return exit_status(exc)


if __name__ == "__main__":
    sys.exit(main())
