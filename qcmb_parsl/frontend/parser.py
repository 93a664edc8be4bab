"""The ``qcmb-parsl`` command line as argparse reads it: every command, its options and its help.

:func:`build_parser` is what ``qcmb-parsl`` parses with and what the reference page of the command line
is generated from. Each command's handler is named here; what its options mean is
:mod:`~qcmb_parsl.frontend.arguments`' job, what it does the job of the command's module.
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Sequence
from typing import Any

from .arguments import DEFAULT_PRESET
from .cache_commands import (
    cmd_cache_clear,
    cmd_cache_invalidate,
    cmd_cache_list,
    cmd_cache_stats,
    cmd_cache_verify,
)
from .campaign_command import cmd_campaign
from .exits import EXIT_UNEXPECTED, PROG, UsageError
from .info_commands import cmd_presets, cmd_report
from .run_commands import cmd_optimize, cmd_run

DEFAULT_CAMPAIGN_DIR = "campaign-results"
CACHE_DIR_HELP = (
    "cache directory (default $QCMB_PARSL_CACHE_DIR or the user cache); private unless "
    "$QCMB_PARSL_CACHE_SHARED_GROUP=1 makes it a cache of its group"
)


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line errors instead of usage text plus an error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


class _Version(argparse.Action):
    """``--version``: one line, unwrapped, however narrow the terminal (argparse's own wraps it)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(version_line())
        parser.exit()


def _common_options() -> _Parser:
    """Options every command takes, before or after its name (defaults applied in :func:`main`)."""
    common = _Parser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="INFO log lines of qcmb_parsl on stderr (-vv: DEBUG)",
    )
    common.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress display"
    )
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error"
    )
    return common


def _add_executor_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where fragments run")
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--preset",
        metavar="NAME",
        help=f"executor preset (default {DEFAULT_PRESET!r}; `{PROG} presets` lists them)",
    )
    where.add_argument(
        "--config",
        metavar="FILE",
        help="Parsl config file (.py defining `config`), site file (.yaml, QCFractal field names) or a "
        "QCFractal compute manager's own file (.yaml; --option executor=NAME picks one of its executors)",
    )
    group.add_argument("--workers", type=int, metavar="N", help="fragments at once per node (max_workers)")
    group.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="further preset option, e.g. --option partition=debug --option walltime=02:00:00 "
        "(VALUE read as JSON when it parses, else as text); repeatable",
    )
    group.add_argument(
        "--monitoring",
        action="store_true",
        help="Parsl's monitoring database in runinfo/monitoring.db (SQLite; parsl-visualize reads it)",
    )
    group.add_argument(
        "--progress",
        choices=("auto", "bar", "log"),
        default="auto",
        help="live bar, log lines, or auto: a bar on a terminal, log lines otherwise (default)",
    )
    cache = parser.add_argument_group("fragment cache")
    which = cache.add_mutually_exclusive_group()
    which.add_argument("--cache-dir", metavar="D", help=CACHE_DIR_HELP)
    which.add_argument("--no-cache", action="store_true", help="neither read nor write the fragment cache")


def _unit(text: str) -> str:
    from .units import unit_name

    try:
        return unit_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_units_option(parser: argparse.ArgumentParser) -> None:
    from .units import DEFAULT_UNIT, UNITS

    parser.add_argument(
        "--units",
        type=_unit,
        default=DEFAULT_UNIT,
        metavar="UNIT",
        help=f"unit of interaction energies: {', '.join(UNITS)} (default {DEFAULT_UNIT}); "
        "total energies are always in Eh",
    )


def _add_molecule_options(parser: argparse.ArgumentParser) -> None:
    from ..planning.molecule_files import DRIVERS, MOLECULE_SUFFIXES

    group = parser.add_argument_group(
        f"molecule files ({', '.join(MOLECULE_SUFFIXES)})",
        "A molecule file becomes a ManyBodyInput, written beside its result as NAME.input.json (run that "
        "file to repeat the run exactly). Fragments are its covalently bonded molecules unless given; "
        "they are neutral singlets unless given charges and multiplicities.",
    )
    group.add_argument(
        "--method", help="method of every fragment, e.g. hf, mp2, b3lyp (needed for these files)"
    )
    group.add_argument("--basis", help="basis set, e.g. cc-pvdz")
    group.add_argument("--program", help="QCEngine program (default pyscf)")
    group.add_argument("--driver", choices=DRIVERS, help="energy (default), gradient or hessian")
    group.add_argument(
        "--bsse", metavar="TYPES", help="BSSE treatments, comma-separated: cp, nocp, vmfc (default cp)"
    )
    group.add_argument(
        "--max-nbody", type=int, metavar="N", help="highest n-body level (default: every fragment)"
    )
    group.add_argument(
        "--total-energies",
        action="store_true",
        default=None,
        help="also compute each monomer in its own basis, for the CP (and VMFC) total energies",
    )
    group.add_argument(
        "--fragments",
        metavar="ATOMS",
        help="atoms of each fragment, from 0: commas between fragments, a-b ranges, + joining parts, "
        "e.g. 0-2,3-5,6+9-10 (default: covalently bonded molecules, in order of their first atom)",
    )
    group.add_argument(
        "--fragment-charges",
        metavar="Q,...",
        help="one charge per fragment, in order; write --fragment-charges=-1,0,0 when the first is negative "
        "(default: neutral)",
    )
    group.add_argument(
        "--fragment-multiplicities",
        metavar="M,...",
        help="one multiplicity per fragment, in order (default: singlets; needed for odd-electron fragments)",
    )
    group.add_argument(
        "--charge", type=float, help="of the whole cluster (default: the sum of the fragment charges)"
    )
    group.add_argument(
        "--multiplicity", type=int, help="of the whole cluster (default: from the fragments', high spin)"
    )


def _add_screen_option(parser: argparse.ArgumentParser) -> None:
    from ..screening.cutoffs import SCREEN_SYNTAX

    parser.add_argument(
        "--screen",
        metavar="CUTOFFS",
        help=f"screened expansion ({SCREEN_SYNTAX}): an n-body subsystem is computed only when every two of "
        "its fragments come within the level's cutoff (minimum interatomic distance, Angstrom); a level "
        "without one takes the next lower level's",
    )


def _cache_dir_option() -> _Parser:
    options = _Parser(add_help=False)
    options.add_argument("--cache-dir", metavar="D", help=CACHE_DIR_HELP)
    return options


#: Distributions whose versions ``--version`` names beside ours: what a bug report needs to know.
VERSION_PEERS = ("qcmanybody", "qcengine", "qcelemental", "parsl", "pyscf")


def version_line() -> str:
    """``qcmb-parsl 0.1.0 (qcmanybody 0.8.1, ..., Python 3.11.2)``, read from the installed metadata."""
    from importlib.metadata import PackageNotFoundError, version

    peers = []
    for name in VERSION_PEERS:
        try:
            peers.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            peers.append(f"{name} missing")
    return f"{PROG} {version('qcmb_parsl')} ({', '.join(peers)}, Python {platform.python_version()})"


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``qcmb-parsl``: each command's options, help and handler (``args.handler``)."""
    common = _common_options()
    parser = _Parser(
        prog=PROG,
        parents=[common],
        description="Run QCManyBody many-body expansions with fragments in parallel through Parsl, "
        "with a persistent fragment cache.",
        epilog=f"`{PROG} COMMAND --help` describes each command. Exit status: 0 done, 1 failed fragments "
        "(or an optimization that did not converge), 2 bad input or environment, 130/143 stopped by "
        f"SIGINT/SIGTERM, {EXIT_UNEXPECTED} an unexpected error.",
    )
    parser.add_argument(
        "--version", action=_Version, help="print the versions of qcmb_parsl and the packages it runs on"
    )
    # ``computes``: a stop before the command's run loop is a stop of a run (see stop_before_run).
    parser.set_defaults(computes=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cache_dir = _cache_dir_option()

    run = commands.add_parser(
        "run",
        parents=[common],
        help="run one ManyBodyInput or molecule file",
        description="Run the many-body expansion of one ManyBodyInput JSON file (QCSchema v1 or v2, "
        "detected), or of a molecule file (XYZ, ...) with --method, and write its ManyBodyResult JSON. "
        "Fragment results are kept in the result (protocols component_results/cluster_results 'all') "
        "unless the input says otherwise.",
    )
    run.add_argument(
        "input", metavar="INPUT", help="ManyBodyInput JSON file, or a molecule file (.xyz, ...) with --method"
    )
    run.add_argument(
        "--out",
        metavar="RESULT.json",
        help="result file (default INPUT.result.json next to the input); checked before anything is computed",
    )
    _add_units_option(run)
    _add_screen_option(run)
    _add_molecule_options(run)
    _add_executor_options(run)
    run.set_defaults(handler=cmd_run, computes=True)

    optimize = commands.add_parser(
        "optimize",
        parents=[common],
        help="optimize a cluster's geometry with many-body gradients",
        description="Optimize the geometry of one OptimizationInput JSON file (QCSchema v2, its "
        "specification a ManyBodySpecification) and write its OptimizationResult JSON. The optimizer takes "
        "the steps; the fragments of each step run in parallel and are cached as they finish, so running the "
        "same command again after a stop replays the finished steps from the cache and computes only what "
        "is missing.",
    )
    optimize.add_argument("input", metavar="INPUT.json", help="OptimizationInput JSON file")
    optimize.add_argument("--optimizer", default="geometric", help="optimizer (default geometric)")
    optimize.add_argument(
        "--out", metavar="RESULT.json", help="result file (default INPUT.result.json next to the input)"
    )
    _add_screen_option(optimize)
    _add_executor_options(optimize)
    optimize.set_defaults(handler=cmd_optimize, computes=True)

    campaign = commands.add_parser(
        "campaign",
        parents=[common],
        help="run many inputs in one Parsl session",
        description="Run many ManyBodyInputs in one Parsl session: the fragments of all inputs are planned "
        "together and identical ones computed once. Writes INPUT.result.json per input and "
        "campaign_summary.csv into --out-dir. Rerunning skips inputs whose result is there and valid "
        "(unless --force) and answers finished fragments from the cache.",
    )
    campaign.add_argument(
        "inputs",
        nargs="+",
        metavar="DIR_OR_FILE",
        help="input JSON files, or directories whose *.json files are inputs; with --method, molecule files "
        "or directories whose molecule files (*.xyz, ...) are inputs",
    )
    campaign.add_argument(
        "--out-dir",
        default=DEFAULT_CAMPAIGN_DIR,
        metavar="D",
        help=f"where results and the summary go (default ./{DEFAULT_CAMPAIGN_DIR})",
    )
    campaign.add_argument("--force", action="store_true", help="recompute inputs that have a result already")
    _add_units_option(campaign)
    _add_screen_option(campaign)
    _add_molecule_options(campaign)
    _add_executor_options(campaign)
    campaign.set_defaults(handler=cmd_campaign, computes=True)

    cache = commands.add_parser(
        "cache",
        parents=[common],
        help="inspect or prune the fragment cache",
        description="Inspect or prune the fragment cache.",
    )
    actions = cache.add_subparsers(dest="action", metavar="ACTION", required=True)
    stats = actions.add_parser(
        "stats",
        parents=[common, cache_dir],
        help="directory, entries and size",
        description="Show the cache directory, its number of entries and its size.",
    )
    stats.set_defaults(handler=cmd_cache_stats)
    listing = actions.add_parser(
        "list",
        parents=[common, cache_dir],
        help="list entries (all, or an input's)",
        description="List cache entries: all, or those of the fragments of an input.",
    )
    listing.add_argument("input", nargs="?", metavar="INPUT.json", help="list only this input's fragments")
    listing.set_defaults(handler=cmd_cache_list)
    verify = actions.add_parser(
        "verify",
        parents=[common, cache_dir],
        help="check every entry and drop the bad ones",
        description="Check the database and every entry (its result validates as a QCSchema AtomicResult "
        "and fits the request it was stored for), drop the entries that fail, and print how many were "
        "checked and dropped.",
    )
    verify.set_defaults(handler=cmd_cache_verify)
    invalidate = actions.add_parser(
        "invalidate",
        parents=[common, cache_dir],
        help="delete entries by program, method or input",
        description="Delete the entries matching every filter given (at least one).",
    )
    invalidate.add_argument("--program", help="entries of this program (e.g. pyscf)")
    invalidate.add_argument("--method", help="entries of this method (e.g. mp2)")
    invalidate.add_argument("--input", metavar="INPUT.json", help="entries of this input's fragments")
    invalidate.set_defaults(handler=cmd_cache_invalidate)
    clear = actions.add_parser(
        "clear",
        parents=[common, cache_dir],
        help="delete every entry",
        description="Delete every entry (no question asked) and print how many.",
    )
    clear.set_defaults(handler=cmd_cache_clear)

    presets = commands.add_parser(
        "presets",
        parents=[common],
        help="list executor presets, or one preset's options",
        description="List the executor presets (what each is for and needs), show one preset's options "
        "(type, default, meaning), or write each preset as a plain Parsl config file.",
    )
    presets.add_argument("name", nargs="?", metavar="NAME", help="show this preset and its options")
    presets.add_argument(
        "--write-configs",
        metavar="DIR",
        help="write each preset as a Parsl config file into DIR (parsl_configs/ is this output)",
    )
    presets.set_defaults(handler=cmd_presets)

    report = commands.add_parser(
        "report",
        parents=[common],
        help="draw the timeline and n-body convergence of a result",
        description="For each result, write RESULT_timeline.png (fragments per worker over time, "
        "coloured by n-body level, cache hits at t=0) and RESULT_convergence.png (interaction energy "
        "per n-body level and BSSE treatment, in --units); for an OptimizationResult, "
        "RESULT_optimization.png (energy and gradient per step beside each step's fragments over time).",
    )
    report.add_argument(
        "results", nargs="+", metavar="RESULT.json", help="ManyBodyResult or OptimizationResult JSON file(s)"
    )
    report.add_argument("--out-dir", default=".", metavar="D", help="where the PNG files go (default: here)")
    _add_units_option(report)
    report.set_defaults(handler=cmd_report)
    return parser
