"""Pictures of a ManyBodyResult: when and where each fragment ran, and how the expansion converges;
of an OptimizationResult: the energy per step beside each step's fragments over time.

Both come from what the result already holds: the timeline from the provenance qcmb_parsl puts in each
fragment's AtomicResult (``extras["qcmb_parsl"]``: hostname, pid, started, wall_time, cache), present
when the input kept the fragment results (``component_results: "all"`` in v1, ``cluster_results:
"all"`` in v2; ``qcmb-parsl run`` and ``campaign`` set it); the convergence from the n-body interaction
energies in the result's properties. Figures are drawn with matplotlib's Agg canvas (no display, no
pyplot state) and written as PNG.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from qcmanybody.utils import delabeler

from ..errors import InputError
from ..schema import fragment_results
from .files import load_result, result_stem
from .tables import BSSE_LABELS, nbody_energies
from .units import DECIMALS, DEFAULT_UNIT, UNITS, convert

logger = logging.getLogger(__name__)

KCAL_PER_HARTREE = UNITS["kcal/mol"]
#: Seconds two fragments of one process may overlap and still share a lane (clock noise).
_OVERLAP_SLACK = 1e-3
_DPI = 120


@dataclass(frozen=True)
class FragmentRecord:
    """Where and when one fragment ran, from its provenance."""

    label: str
    model_chemistry: str
    nbody: int
    worker: str
    started: float
    wall_time: float
    cached: bool
    shared_with: str | None = None


def fragment_records(result: Any) -> list[FragmentRecord]:
    """One record per fragment with qcmb_parsl provenance; n-body level = number of real fragments."""
    records = []
    for label, atomic in fragment_results(result).items():
        provenance = (atomic.extras or {}).get("qcmb_parsl")
        if not provenance or "started" not in provenance:
            continue
        model_chemistry, real, _ = delabeler(label)
        records.append(
            FragmentRecord(
                label=label,
                model_chemistry=str(model_chemistry),
                nbody=len(real),
                worker=f"{provenance.get('hostname', '?')}:{provenance.get('pid', '?')}",
                started=float(provenance["started"]),
                wall_time=float(provenance.get("wall_time", 0.0)),
                cached=provenance.get("cache") == "hit",
                shared_with=provenance.get("shared_with"),
            )
        )
    return records


def assign_lanes(records: Sequence[FragmentRecord]) -> dict[str, str]:
    """Label -> row of the timeline: the worker (``host:pid``), split into ``host:pid #k`` when one
    process ran fragments side by side (the ``threads`` preset runs them all in the driver process)."""
    by_worker: dict[str, list[FragmentRecord]] = {}
    for record in records:
        by_worker.setdefault(record.worker, []).append(record)
    rows = {}
    for worker, mine in by_worker.items():
        lane_ends: list[float] = []
        lanes = {}
        for record in sorted(mine, key=lambda r: (r.started, r.label)):
            index = next(
                (i for i, end in enumerate(lane_ends) if record.started >= end - _OVERLAP_SLACK),
                len(lane_ends),
            )
            if index == len(lane_ends):
                lane_ends.append(0.0)
            lane_ends[index] = record.started + record.wall_time
            lanes[record.label] = index
        for label, index in lanes.items():
            rows[label] = worker if len(lane_ends) == 1 else f"{worker} #{index + 1}"
    return rows


def _nbody_color(nbody: int) -> Any:
    from matplotlib import colormaps

    return colormaps["tab10"]((nbody - 1) % 10)


def plot_timeline(result: Any, path: str | os.PathLike) -> Path:
    """PNG of the fragments per worker over time, coloured by n-body level; cache hits at t = 0.

    The clock starts with the run (``extras["qcmb_parsl"]["started"]``, when the result records it):
    each worker's row then begins with its start-up, grey, until its first fragment's engine began
    (Parsl, the worker and its engine template starting). Raises InputError when no fragment carries
    qcmb_parsl provenance (fragment results not kept).
    """
    records = fragment_records(result)
    if not records:
        raise InputError(
            "the result holds no fragment provenance: keep fragment results (protocols component_results "
            "'all' in v1, cluster_results 'all' in v2; qcmb-parsl run/campaign set it) and run again"
        )
    computed = [r for r in records if not r.cached]
    hits = [r for r in records if r.cached]
    rows = assign_lanes(computed)
    first_fragment = min((r.started for r in computed), default=0.0)
    run_started = float((result.extras or {}).get("qcmb_parsl", {}).get("started") or 0.0)
    # A run that started before its first fragment: its clock, with the start-up shown; else the fragment's.
    t0 = run_started if 0.0 < run_started <= first_fragment else first_fragment
    first_start: dict[str, float] = {}
    for record in computed:
        row = rows[record.label]
        first_start[row] = min(first_start.get(row, record.started), record.started)
    order = sorted(first_start, key=first_start.__getitem__)
    y_of = {row: index for index, row in enumerate(order)}
    n_rows = len(order) + bool(hits)

    fig = Figure(figsize=(10, min(2.2 + 0.32 * n_rows, 24)), dpi=_DPI)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if t0 < first_fragment:
        for row, begun in first_start.items():
            ax.barh(y_of[row], begun - t0, left=0.0, height=0.5, color="0.85", edgecolor="0.6", linewidth=0.3)
    for record in computed:
        ax.barh(
            y_of[rows[record.label]],
            max(record.wall_time, 1e-3),
            left=record.started - t0,
            height=0.8,
            color=_nbody_color(record.nbody),
            edgecolor="black",
            linewidth=0.3,
            hatch="///" if record.shared_with else None,
        )
    for record in hits:  # on a row of their own, below the workers
        offset = 0.3 * ((record.nbody - 1) % 3 - 1)
        ax.plot(
            0,
            len(order) + offset,
            marker="X",
            markersize=7,
            color=_nbody_color(record.nbody),
            markeredgecolor="black",
            markeredgewidth=0.4,
            linestyle="none",
        )
    labels = [*order, *([f"cache ({len(hits)} hits)"] if hits else [])]
    ax.set_yticks(range(len(labels)), labels, fontsize=8 if n_rows < 30 else 6)
    ax.set_ylim(n_rows - 0.5, -0.5)
    span = max((r.started + r.wall_time - t0 for r in computed), default=1.0)
    ax.set_xlim(-0.02 * span, span * 1.03)
    ax.set_xlabel(
        "time since the run started (s)"
        if t0 < first_fragment
        else "time since the first fragment started (s)"
    )
    ax.set_ylabel("worker (hostname:pid)")
    ax.grid(axis="x", alpha=0.3)

    levels = sorted({r.nbody for r in records})
    handles: list[Any] = [
        Patch(facecolor=_nbody_color(n), edgecolor="black", label=f"{n}-body") for n in levels
    ]
    if t0 < first_fragment:
        handles.append(
            Patch(
                facecolor="0.85",
                edgecolor="0.6",
                label=f"start-up ({first_fragment - t0:.1f} s): Parsl,\nworker, engine template",
            )
        )
    if any(r.shared_with for r in computed):
        handles.append(
            Patch(
                facecolor="white",
                edgecolor="black",
                hatch="///",
                label="shared (computed once, for another label)",
            )
        )
    if hits:
        saved = sum(r.wall_time for r in hits)
        handles.append(
            Line2D(
                [],
                [],
                marker="X",
                color="grey",
                linestyle="none",
                label=f"cache hit ({len(hits)}, {saved:.1f} s saved)",
            )
        )
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0.0)
    executor = (result.extras or {}).get("qcmb_parsl", {}).get("executor", "")
    where = f" ({executor})" if executor else ""
    n_shared = sum(bool(r.shared_with) for r in computed)
    if computed:
        title = f"{len(records)} fragments on {describe_workers(order)}{where}: "
        title += f"{len(computed) - n_shared} computed"
        title += f", {n_shared} shared with another label" if n_shared else ""
        title += f", {len(hits)} from the cache"
    else:
        title = f"all {len(hits)} fragments from the cache{where}"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def describe_workers(rows: Sequence[str]) -> str:
    """``2 workers``, or ``4 lanes of 1 worker`` when one process ran fragments side by side."""
    processes = len({row.split(" #")[0] for row in rows})
    workers = f"{processes} worker{'' if processes == 1 else 's'}"
    return workers if processes == len(rows) else f"{len(rows)} lanes of {workers}"


def model_label(result: Any) -> str:
    """``hf/sto-3g``, or per n-body level for a multilevel expansion (``1: ccsd(t)/..., 2: mp2/...``)."""
    spec = result.input_data.specification
    specs = spec.specification if isinstance(spec.specification, dict) else {"(auto)": spec.specification}

    def one(mc: str) -> str:
        model = specs[mc].model
        return "/".join(str(part) for part in (model.method, model.basis) if part)

    levels = spec.keywords.levels or {}
    if len(specs) == 1 or not levels:
        return one(next(iter(specs)))
    return ", ".join(f"{n}: {one(mc)}" for n, mc in sorted(levels.items(), key=lambda item: str(item[0])))


def plot_convergence(result: Any, path: str | os.PathLike, units: str = DEFAULT_UNIT) -> Path:
    """PNG of the interaction energy (``units``) through each n-body level, one line per BSSE treatment."""
    energies = nbody_energies(result)
    values = [v.get("interaction") for per_n in energies.values() for v in per_n.values()]
    if all(value is None for value in values):
        raise InputError("the result holds no n-body interaction energies to plot")
    fig = Figure(figsize=(6.4, 4.4), dpi=_DPI)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    markers = {"cp": "o", "nocp": "s", "vmfc": "^"}
    levels: set[int] = set()
    for bsse, per_n in energies.items():
        points = sorted((n, value) for n, v in per_n.items() if (value := v.get("interaction")) is not None)
        xs = [n for n, _ in points]
        ys = [convert(value, units) for _, value in points]
        levels.update(xs)
        label = f"{BSSE_LABELS.get(bsse, bsse)}: {ys[-1]:.{DECIMALS[units] - 1}f} {units}"
        ax.plot(xs, ys, marker=markers.get(bsse, "D"), label=label)
    ax.axhline(0.0, color="grey", linewidth=0.6)
    ax.set_xticks(sorted(levels))
    ax.set_xlabel("n-body level")
    ax.set_ylabel(f"interaction energy ({units})")
    molecule = result.input_data.molecule
    nfr = len(molecule.fragments)
    name = molecule.name or molecule.get_molecular_formula()
    ax.set_title(f"{name}, {nfr} fragments, {model_label(result)}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_optimization(result: Any, path: str | os.PathLike) -> Path:
    """PNG of an optimization: energy and gradient per step, beside each step's fragments over time.

    Both panels have one row per step. Left, the energy relative to the first step (kcal/mol) and the
    rms gradient (log scale); right, each step's span on the clock of the whole optimization with its
    computed fragments per worker, coloured by n-body level, and its cache hits as a count at its start.
    Drawn from the per-step summaries qcmb_parsl keeps in ``extras["qcmb_parsl"]["steps"]``.
    """
    from .optimization import step_summaries

    steps = step_summaries(result)
    if not steps:
        raise InputError("the result holds no qcmb_parsl step summaries (extras.qcmb_parsl.steps) to plot")
    summary = result.extras["qcmb_parsl"]
    t0 = float(summary.get("started", steps[0]["started"]))
    rows = [step["step"] for step in steps]
    energies = [(step["energy"] - steps[0]["energy"]) * KCAL_PER_HARTREE for step in steps]

    fig = Figure(figsize=(11, min(2.6 + 0.34 * len(steps), 24)), dpi=_DPI)
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1, 2.4]})
    left.plot(energies, rows, marker="o", color="tab:blue")
    left.set_xlabel("energy − E(step 1) (kcal/mol)", color="tab:blue")
    left.set_ylabel("step")
    left.grid(alpha=0.3)
    gradient = left.twiny()
    gradient.plot([step["gradient_rms"] for step in steps], rows, marker=".", color="tab:red", linewidth=0.8)
    gradient.set_xscale("log")
    gradient.set_xlabel("rms gradient (Eh/a0)", color="tab:red")

    levels: set[int] = set()
    n_hits = 0
    for step in steps:
        row = step["step"]
        begin = step["started"] - t0
        right.barh(
            row, step["wall_time"], left=begin, height=0.9, color="0.9", edgecolor="0.6", linewidth=0.4
        )
        records = []
        for fragment in step["fragments"]:
            if fragment["source"] == "cached" or fragment["started"] is None:
                continue
            _, real, _ = delabeler(fragment["label"])
            records.append(
                FragmentRecord(
                    fragment["label"],
                    "",
                    len(real),
                    fragment["worker"],
                    fragment["started"],
                    fragment["wall_time"],
                    False,
                )
            )
        lanes = assign_lanes(records)
        names = sorted(set(lanes.values()))
        height = 0.8 / max(len(names), 1)
        for record in records:
            levels.add(record.nbody)
            offset = -0.4 + height * (names.index(lanes[record.label]) + 0.5)
            right.barh(
                row + offset,
                max(record.wall_time, 1e-3),
                left=record.started - t0,
                height=height * 0.9,
                color=_nbody_color(record.nbody),
                edgecolor="black",
                linewidth=0.3,
            )
        cached = step["run"]["n_cached"]
        if cached:
            n_hits += cached
            right.plot(
                begin,
                row,
                marker="X",
                markersize=7,
                color="grey",
                markeredgecolor="black",
                markeredgewidth=0.4,
                linestyle="none",
            )
            right.annotate(f"{cached}", (begin, row), xytext=(5, -3), textcoords="offset points", fontsize=7)
    right.set_xlim(left=0)
    right.set_xlabel("time since the optimization started (s)")
    right.grid(axis="x", alpha=0.3)
    right.set_ylim(max(rows) + 0.6, min(rows) - 0.6)
    handles: list[Any] = [
        Patch(facecolor=_nbody_color(n), edgecolor="black", label=f"{n}-body") for n in sorted(levels)
    ]
    handles.append(Patch(facecolor="0.9", edgecolor="0.6", label="step (plan, run, assemble)"))
    if n_hits:
        handles.append(Line2D([], [], marker="X", color="grey", linestyle="none", label="cache hits (count)"))
    right.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0.0)

    molecule = result.final_molecule
    name = molecule.name or molecule.get_molecular_formula()
    fig.suptitle(
        f"{name}: {summary['optimizer']}, {len(steps)} steps, final energy "
        f"{result.properties.return_energy:.8f} Eh; {summary['n_executed']} fragments computed, "
        f"{summary['n_cached']} from the cache ({summary['executor']})",
        fontsize=10,
    )
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def write_report(
    result_path: str | os.PathLike, out_dir: str | os.PathLike = ".", units: str = DEFAULT_UNIT
) -> dict[str, Path]:
    """Write ``<stem>_timeline.png`` and ``<stem>_convergence.png`` (interaction energies in ``units``)
    for a result file into ``out_dir``; for an OptimizationResult, ``<stem>_optimization.png``
    (:func:`plot_optimization`).

    Returns the pictures written by name. A result without fragment provenance gets the convergence
    picture only (a warning says why); InputError if neither can be drawn.
    """
    from .optimization import load_optimization_result

    out_dir = Path(out_dir)
    stem = result_stem(result_path)
    optimization = load_optimization_result(result_path)
    if optimization is not None:
        return {"optimization": plot_optimization(optimization, out_dir / f"{stem}_optimization.png")}
    result = load_result(result_path)
    written: dict[str, Path] = {}
    problems = []
    plots = {"timeline": plot_timeline, "convergence": lambda r, p: plot_convergence(r, p, units)}
    for name, plot in plots.items():
        try:
            written[name] = plot(result, out_dir / f"{stem}_{name}.png")
        except InputError as exc:
            logger.warning("%s: no %s picture: %s", result_path, name, exc)
            problems.append(f"{name}: {exc}")
    if not written:
        raise InputError(f"{result_path}: nothing to draw ({'; '.join(problems)})")
    return written
