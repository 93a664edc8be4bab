"""geomeTRIC through its custom-engine interface, set up as its QCSchema JSON interface sets it up.

geomeTRIC's ``run_json`` builds the molecule, the internal coordinates, the constraints and the
parameters from an OptimizationInput's keywords, then asks a QCEngine engine for each gradient. Its
JSON path takes only an atomic specification, so here the same set-up (the same keywords, coordinate
systems and constraint format, geomeTRIC's own functions) drives an :class:`GradientEngine` whose
``calc_new`` is any callable: the many-body gradient of a step, computed by our planner, cache and
executor. Everything geomeTRIC logs is kept as the optimization's ``stdout``.
"""

from __future__ import annotations

import copy
import inspect
import io
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import Any

import geometric
import geometric.engine
import geometric.errors
import geometric.internal
import geometric.molecule
import geometric.nifty
import geometric.optimize
import geometric.params
import geometric.prepare
import geometric.run_json
import numpy as np
from qcelemental.models import v2 as qcel_v2

from ..errors import InputError, OptimizationFailed
from ..planning.inputs import as_written
from ..spelling import did_you_mean

#: (energy, gradient) of a geometry, all in atomic units: the flat (3 N) coordinates in, an (N, 3)
#: gradient out.
GradientFunction = Callable[[np.ndarray], tuple[float, np.ndarray]]

#: geomeTRIC's coordinate systems, as its JSON interface offers them: (class, connect, addcart).
COORDINATE_SYSTEMS = {
    "cart": (geometric.internal.CartesianCoordinates, False, False),
    "prim": (geometric.internal.PrimitiveInternalCoordinates, True, False),
    "dlc": (geometric.internal.DelocalizedInternalCoordinates, True, False),
    "hdlc": (geometric.internal.DelocalizedInternalCoordinates, False, True),
    "tric": (geometric.internal.DelocalizedInternalCoordinates, False, False),
}

NAME = "geomeTRIC"
VERSION = geometric.__version__

#: How geomeTRIC reads a keyword, in its own code: ``kwargs.get('maxiter', 300)`` in its parameters,
#: ``input_opts.get('coordsys', 'tric')`` or ``input_opts["program"]`` in its QCSchema JSON interface.
_KEYWORD_READ = re.compile(r"""(?:kwargs\.get\(|input_opts\.get\(|input_opts\[)\s*['"](\w+)['"]""")

#: A keyword's type, as its default in geomeTRIC's parameters has it, in words.
_TYPE_WORDS = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


@cache
def known_keywords() -> tuple[str, ...]:
    """Every keyword geomeTRIC reads: its optimization parameters' (``OptParams``) and those of its QCSchema
    JSON interface (``coordsys``, ``constraints``, ``rigid``, ``program``), read from geomeTRIC's own
    code, so that a release that adds one is known here at once."""
    sources = inspect.getsource(geometric.params.OptParams) + inspect.getsource(geometric.run_json)
    return tuple(sorted(set(_KEYWORD_READ.findall(sources))))


def check_keywords(keywords: Mapping[str, Any]) -> None:
    """InputError, one line, for a keyword geomeTRIC does not read (a misspelt one would be ignored), a
    value of another type than its default's (``maxiter: "ten"``), or ``maxiter`` below 1."""
    known = known_keywords()
    defaults = vars(geometric.params.OptParams())
    for name, value in keywords.items():
        if name not in known:
            raise InputError(
                f"optimizer keyword {name!r} is not one {NAME} knows{did_you_mean(name, known)} "
                f"({NAME}'s keywords: {', '.join(known)})"
            )
        default = defaults.get(name, defaults.get(name.capitalize()))
        if default is None or value is None:
            continue
        kind = type(default)
        fits = {
            bool: type(value) in (bool, int),  # geomeTRIC's own command line reads verbose as a number
            int: type(value) is int,
            float: type(value) in (int, float),
            str: type(value) is str,
        }.get(kind, True)
        if not fits:
            raise InputError(f"optimizer keyword {name} must be {_TYPE_WORDS[kind]}, got {as_written(value)}")
    maxiter = keywords.get("maxiter")
    if maxiter is not None and maxiter < 1:
        raise InputError(f"optimizer keyword maxiter must be at least 1, got {maxiter}")


def geometric_molecule(molecule: qcel_v2.Molecule) -> geometric.molecule.Molecule:
    """geomeTRIC's molecule (elements, Angstrom coordinates, bonds from the input's connectivity or from
    geomeTRIC's distance rule), built as geomeTRIC's QCEngine engine builds it."""
    built = geometric.molecule.Molecule()
    built.elem = list(molecule.symbols)
    built.xyzs = [np.asarray(molecule.geometry, dtype=float).reshape(-1, 3) * geometric.nifty.bohr2ang]
    if molecule.connectivity:
        built.Data["bonds"] = sorted((int(a), int(b)) for a, b, _ in molecule.connectivity)
        built.built_bonds = True
    else:
        built.build_bonds()
    return built


class GradientEngine(geometric.engine.Engine):
    """A geomeTRIC engine whose energies and gradients come from ``gradient``."""

    def __init__(self, molecule: geometric.molecule.Molecule, gradient: GradientFunction):
        super().__init__(molecule)
        self._gradient = gradient

    def calc_new(self, coords: np.ndarray, dirname: str) -> dict[str, Any]:
        energy, gradient = self._gradient(coords)
        return {"energy": float(energy), "gradient": np.asarray(gradient, dtype=float).ravel()}


class GeometricOptimizer:
    """One geomeTRIC optimization of ``molecule`` with the OptimizationInput's ``keywords``; run it once.

    The keywords are geomeTRIC's, as its JSON interface reads them: ``coordsys`` (default ``tric``),
    ``constraints`` (the QCSchema dict: freeze / set), ``rigid``, and every parameter of
    ``geometric.params.OptParams`` (``convergence_set``, ``maxiter``, ``trust``, ...). Everything is read
    and built here, so a bad keyword fails before anything is computed.
    """

    def __init__(self, molecule: qcel_v2.Molecule, keywords: Mapping[str, Any]):
        # The exact input geometry in Bohr, not the Angstrom copy in geomeTRIC's molecule: the first
        # step's fragments then have the input's own cache keys.
        self.start = np.asarray(molecule.geometry, dtype=float).ravel()
        check_keywords(keywords)
        keywords = copy.deepcopy(dict(keywords))  # geomeTRIC edits some in place ('converge')
        coordsys = str(keywords.get("coordsys", "tric")).lower()
        if coordsys not in COORDINATE_SYSTEMS:
            raise InputError(
                f"optimizer keyword coordsys={coordsys!r} is not one of {sorted(COORDINATE_SYSTEMS)}"
            )
        constraints_dict = keywords.get("constraints") or {}
        if "scan" in constraints_dict:
            raise InputError(
                "optimizer keyword constraints: 'scan' is not an optimization; use freeze or set"
            )
        with captured_log():
            self.molecule = geometric_molecule(molecule)
            constraints, values = None, None
            try:
                text = geometric.run_json.make_constraints_string(constraints_dict)
                if text:
                    constraints, values = geometric.prepare.parse_constraints(self.molecule, text)
            except (KeyError, ValueError, TypeError, IndexError, AttributeError, RuntimeError) as exc:
                raise InputError(f"optimizer keyword constraints: {_message(exc)}") from None
            try:
                self.params = geometric.optimize.OptParams(**keywords)
            except (KeyError, ValueError, TypeError, RuntimeError) as exc:
                raise InputError(f"optimizer keywords rejected by {NAME}: {_message(exc)}") from None
            system, connect, addcart = COORDINATE_SYSTEMS[coordsys]
            self.coordinates = system(
                self.molecule,
                build=True,
                connect=connect,
                addcart=addcart,
                constraints=constraints,
                cvals=values[0] if values is not None else None,
                rigid=bool(keywords.get("rigid", False)),
            )

    def run(self, gradient: GradientFunction) -> str:
        """Optimize, asking ``gradient`` for every geometry geomeTRIC visits; geomeTRIC's log.

        Raises :class:`~qcmb_parsl.errors.OptimizationFailed` when geomeTRIC stops without converging;
        whatever ``gradient`` raises goes through unchanged.
        """
        engine = GradientEngine(self.molecule, gradient)
        with captured_log() as log, tempfile.TemporaryDirectory(prefix="qcmb-geometric-") as scratch:
            try:
                geometric.optimize.Optimize(
                    self.start, self.molecule, self.coordinates, engine, scratch, self.params
                )
            except geometric.errors.GeomOptNotConvergedError:
                raise OptimizationFailed(
                    f"{NAME} did not converge in maxiter={self.params.maxiter} steps: every step is cached, "
                    "so running again with a larger maxiter replays them from the cache"
                ) from None
            except (geometric.errors.GeomOptStructureError, geometric.errors.LinearTorsionError) as exc:
                raise OptimizationFailed(f"{NAME} gave up on the structure: {_message(exc)}") from None
            return log.getvalue()


@contextmanager
def captured_log() -> Iterator[io.StringIO]:
    """geomeTRIC's log lines into a string, not onto the console of whoever configured logging."""
    logger = geometric.nifty.logger
    stream = io.StringIO()
    handler = geometric.nifty.RawStreamHandler(stream)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _message(exc: BaseException) -> str:
    return " ".join(str(exc).strip("'\"").split()) or type(exc).__name__
