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

Exit status, one meaning each: 0 done; 1 the computation failed (fragments failed, or an optimization
did not converge); 2 bad input or environment (an input, model chemistry, configuration, cache directory,
output path or command line), refused before anything is computed; 130 or 143 stopped by SIGINT or
SIGTERM, with one line saying what was kept; 70 (sysexits' EX_SOFTWARE) anything unexpected, a fault of
this program. A failure prints one line, ``qcmb-parsl: error: ...``, on stderr; ``--debug`` adds the
traceback.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from datetime import datetime
from typing import Any

PROG = "qcmb-parsl"
#: Exit status of an unexpected error (a fault of this program, not of the input): sysexits' EX_SOFTWARE.
EXIT_UNEXPECTED = 70
DEFAULT_PRESET = "local"
DEFAULT_CAMPAIGN_DIR = "campaign-results"
CACHE_DIR_HELP = (
    "cache directory (default $QCMB_PARSL_CACHE_DIR or the user cache); private unless "
    "$QCMB_PARSL_CACHE_SHARED_GROUP=1 makes it a cache of its group"
)
#: ParslExecutor settings the command line sets with options of its own, not with --option.
COMMAND_OPTIONS = {
    "config": "--config or --preset",
    "cache": "--no-cache",
    "cache_dir": "--cache-dir",
    "progress": "--progress or --quiet",
}

logger = logging.getLogger(__name__)


class UsageError(Exception):
    """A command line argparse rejects: exit status 2."""


class CampaignFailedError(Exception):
    """Some inputs of a campaign had failed fragments: exit status 1."""


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


# -- the command line ------------------------------------------------------------------------------


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


#: Options that describe the expansion of a molecule file (attribute names), each None unless given.
MOLECULE_OPTIONS = (
    "method",
    "basis",
    "program",
    "driver",
    "bsse",
    "max_nbody",
    "fragments",
    "fragment_charges",
    "fragment_multiplicities",
    "charge",
    "multiplicity",
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


def _screening(args: argparse.Namespace) -> Any:
    """The Screening of --screen, or None; InputError (exit 2) for a bad value, before anything runs."""
    from ..screening import parse_screen

    return None if args.screen is None else parse_screen(args.screen)


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
    _add_screen_option(run)
    _add_molecule_options(run)
    _add_executor_options(run)
    run.set_defaults(handler=cmd_run)

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
    optimize.set_defaults(handler=cmd_optimize)

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
    _add_screen_option(campaign)
    _add_molecule_options(campaign)
    _add_executor_options(campaign)
    campaign.set_defaults(handler=cmd_campaign)

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
        "per n-body level and BSSE treatment, kcal/mol); for an OptimizationResult, "
        "RESULT_optimization.png (energy and gradient per step beside each step's fragments over time).",
    )
    report.add_argument(
        "results", nargs="+", metavar="RESULT.json", help="ManyBodyResult or OptimizationResult JSON file(s)"
    )
    report.add_argument("--out-dir", default=".", metavar="D", help="where the PNG files go (default: here)")
    report.set_defaults(handler=cmd_report)
    return parser


# -- helpers --------------------------------------------------------------------------------------


def _console() -> Any:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


def _progress(args: argparse.Namespace) -> Any:
    return False if args.quiet else args.progress


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
        progress=_progress(args),
        **_preset_options(args),
    )


def _run_line(run: dict[str, Any]) -> str:
    return (
        f"{run['n_tasks']} fragments: {run['n_executed']} computed, {run['n_cached']} from the cache, "
        f"{run['n_shared']} shared, {run['n_failed']} failed; wall time {run['wall_time']:.1f} s "
        f"({run['executor']})"
    )


def _open_cache(args: argparse.Namespace) -> Any:
    from ..cache import FragmentCache

    return FragmentCache(args.cache_dir)


def _specifications(computer: Any) -> dict[str, dict[str, Any]]:
    from ..planning.plan import specifications_from_input

    return specifications_from_input(computer)


def _input_keys(path: str) -> list[str]:
    """Cache keys of every fragment of an input, as the executor computes them."""
    from .files import read_input

    return list(read_input(path).prepare().cache_keys().values())


def _size(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} TiB"


def _fmt(value: Any, spec: str) -> str:
    return "" if value is None or value == "" else format(value, spec)


# -- commands -------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from ..engines.programs import check_programs
    from .files import (
        check_result_path,
        default_result_path,
        mark_input,
        open_input,
        save_result,
        write_built_input,
    )

    start = time.perf_counter()
    screening = _screening(args)
    out = check_result_path(args.out or default_result_path(args.input), inputs=[args.input], option="--out")
    input_file = open_input(args.input, expansion_recipe(args), out)
    computer = input_file.prepare(screening)
    check_programs(sorted({spec["program"] for spec in _specifications(computer).values()}))
    built = write_built_input(input_file)
    executor = make_executor(args)
    try:
        result = computer.run(executor, start=start)
    finally:
        executor.close()
    out = save_result(mark_input(result, input_file), out)

    from .tables import energy_table

    console = _console()
    console.print(energy_table(result))
    console.print(_run_line(result.extras["qcmb_parsl"]))
    console.print(f"result: {out}")
    if built is not None:
        again = "" if screening is None else f" with --screen {args.screen}"
        console.print(f"input: {built} (run it{again} to repeat this run)")
    return 0


def cmd_optimize(args: argparse.Namespace) -> int:
    from .files import check_result_path, default_result_path, read_json_object, save_result
    from .optimization import history_table, optimize_file, summary_line

    screening = _screening(args)
    out = check_result_path(args.out or default_result_path(args.input), inputs=[args.input], option="--out")
    data = read_json_object(args.input, "OptimizationInput")
    executor = make_executor(args)
    try:
        result = optimize_file(args.input, data, args.optimizer, executor, screening)
    finally:
        executor.close()
    out = save_result(result, out)

    console = _console()
    console.print(history_table(result))
    console.print(summary_line(result))
    console.print(f"result: {out}")
    return 0


def cmd_campaign(args: argparse.Namespace) -> int:
    import qcelemental
    from rich.table import Table

    from .campaign import run_campaign

    kcal_per_hartree = qcelemental.constants.conversion_factor("hartree", "kcal/mol")

    recipe = expansion_recipe(args)
    screening = _screening(args)
    executor = make_executor(args)
    try:
        outcome = run_campaign(
            args.inputs, executor, args.out_dir, force=args.force, recipe=recipe, screening=screening
        )
    finally:
        executor.close()

    table = Table(title="Campaign (interaction energies through the highest n-body level, kcal/mol)")
    for column in ("input", "status", "tasks", "executed", "cached", "shared", "failed", "CP IE", "no-CP IE"):
        table.add_column(column, justify="left" if column in ("input", "status") else "right")
    for entry in outcome.entries:
        ie = {bsse: value * kcal_per_hartree for bsse, value in entry.interaction_energies.items()}
        table.add_row(
            entry.input,
            entry.status,
            str(entry.n_tasks),
            str(entry.n_executed),
            str(entry.n_cached),
            str(entry.n_shared),
            str(entry.n_failed),
            _fmt(ie.get("cp"), ".4f"),
            _fmt(ie.get("nocp"), ".4f"),
        )
    console = _console()
    console.print(table)
    statuses = [entry.status for entry in outcome.entries]
    line = ", ".join(f"{statuses.count(s)} {s}" for s in ("computed", "skipped", "failed") if s in statuses)
    console.print(f"{len(statuses)} inputs: {line}")
    if outcome.summary is not None:
        console.print("this session: " + _run_line(outcome.summary.as_dict()))
    console.print(f"summary: {outcome.summary_csv}")
    if outcome.failed:
        first = outcome.failed[0]
        raise CampaignFailedError(
            f"{len(outcome.failed)} of {len(outcome.entries)} inputs failed (see {outcome.summary_csv}); "
            f"{first.input}: {first.error}"
        )
    return 0


def cmd_cache_stats(args: argparse.Namespace) -> int:
    with _open_cache(args) as cache:
        stats = cache.stats()
    print(f"directory: {stats.directory}")
    print(f"entries:   {stats.entries}")
    print(f"size:      {_size(stats.size_bytes)}")
    return 0


def cmd_cache_list(args: argparse.Namespace) -> int:
    keys = _input_keys(args.input) if args.input else None
    with _open_cache(args) as cache:
        entries = cache.entries(keys)
        directory = cache.directory
    entries.sort(key=lambda e: (e.program, e.method, str(e.basis), e.nreal, e.natom, e.created))
    header = (
        f"{'key':<16}  {'program':<8} {'method':<10} {'basis':<12} {'driver':<8} "
        f"{'real/atoms':>10} {'wall s':>8}  {'created':<19}  version (harness)"
    )
    print(header)
    for e in entries:
        created = datetime.fromtimestamp(e.created).isoformat(sep=" ", timespec="seconds")
        print(
            f"{e.key[:16]}  {e.program:<8} {e.method:<10} {e.basis or '-'!s:<12} {e.driver:<8} "
            f"{f'{e.nreal}/{e.natom}':>10} {e.wall_time:>8.2f}  {created}  {e.program_version or '-'}"
        )
    if keys is None:
        print(f"{len(entries)} entries in {directory}")
    else:
        print(
            f"{len(entries)} of {len(set(keys))} distinct fragments of {args.input} are cached in {directory}"
        )
    return 0


def cmd_cache_verify(args: argparse.Namespace) -> int:
    with _open_cache(args) as cache:
        outcome = cache.verify()
    print(f"checked {outcome.checked} entries in {outcome.directory}: dropped {outcome.dropped}")
    return 0


def cmd_cache_invalidate(args: argparse.Namespace) -> int:
    from ..errors import ConfigurationError

    if args.program is None and args.method is None and args.input is None:
        raise ConfigurationError(
            f"give --program, --method or --input (or delete everything: {PROG} cache clear)"
        )
    keys = _input_keys(args.input) if args.input else None
    with _open_cache(args) as cache:
        count = cache.invalidate(program=args.program, method=args.method, keys=keys)
        print(f"invalidated {count} entries in {cache.directory}")
    return 0


def cmd_cache_clear(args: argparse.Namespace) -> int:
    with _open_cache(args) as cache:
        count = cache.clear()
        print(f"cleared {count} entries from {cache.directory}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    if args.write_configs:
        from ..presets.config_files import write_config_files

        for path in write_config_files(args.write_configs):
            print(f"wrote {path}")
        return 0

    from .preset_tables import preset_view, presets_table

    console = _console()
    if args.name is not None:
        console.print(preset_view(args.name))
        console.print(
            f"Set an option with `{PROG} run INPUT.json --preset {args.name} --option KEY=VALUE`, "
            "or as a field of a site file (.yaml)."
        )
        return 0
    console.print(presets_table())
    console.print(
        f"`{PROG} presets NAME` shows one preset's options. Use one with `{PROG} run INPUT.json --preset "
        "NAME`, or give a Parsl config file (.py) or a site file (.yaml) with --config."
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .pictures import write_report

    for result in args.results:
        for name, path in write_report(result, args.out_dir).items():
            print(f"{name}: {path}")
    return 0


# -- entry point ----------------------------------------------------------------------------------

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


def _exit_status(exc: BaseException) -> int:
    """2 for what the user can fix (input, environment), 1 for a computation that failed, else
    :data:`EXIT_UNEXPECTED`."""
    from ..errors import (
        CacheError,
        ConfigurationError,
        FragmentsFailedError,
        InputError,
        OptimizationFailed,
        OutputError,
    )

    if isinstance(exc, (UsageError, InputError, ConfigurationError, CacheError, OutputError)):
        return 2
    if isinstance(exc, (FragmentsFailedError, OptimizationFailed, CampaignFailedError)):
        return 1
    return EXIT_UNEXPECTED


def _one_line(exc: BaseException) -> str:
    from ..errors import QcmbParslError

    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (UsageError, CampaignFailedError, QcmbParslError)):
        return text
    return f"unexpected {type(exc).__name__}: {text} (rerun with --debug for the traceback)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    from ..errors import RunInterrupted

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help, or argparse's own exit
            return int(exc.code or 0)
        for name, default in (("verbose", 0), ("quiet", False), ("debug", False)):
            if not hasattr(args, name):
                setattr(args, name, default)
        configure_logging(args.verbose, args.quiet)
        return args.handler(args)
    except RunInterrupted as stop:
        print(f"{PROG}: {stop}", file=sys.stderr)
        return stop.exit_status
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line and an exit status
        if debug:
            traceback.print_exc()
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return _exit_status(exc)


if __name__ == "__main__":
    sys.exit(main())
