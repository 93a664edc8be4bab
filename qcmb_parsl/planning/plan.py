"""Turn a QCManyBody core into fragment tasks: the plan.

QCManyBody stays the authority on *which* fragment calculations exist (``ManyBodyCore.compute_map``)
and on their labels. What this module makes fast is the construction of each fragment's molecule
and AtomicInput: upstream builds a fully validated qcelemental ``Molecule`` per fragment (milliseconds
each, carrying every ghost atom), while a campaign needs tens of thousands of them. Here each input is
a plain QCSchema dict sliced out of the parent molecule's arrays, field for field what
``Molecule.get_fragment(real, ghost, orient=False, group_fragments=False)`` would be given, so the
engine side validates it into the very same molecule.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from qcmanybody import ManyBodyCore

from ..errors import InputError
from ..gc_pause import collector_paused
from ..schema import (
    SchemaVersion,
    atomic_model,
    atomic_specification,
    atomic_version,
    dump,
    make_atomic_input,
)
from ._qcmanybody import fragment_calculations
from .cost import count_basis_functions, electrons, formal_cost

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class FragmentTask:
    """One fragment calculation, ready to submit.

    ``real_fragments`` are the (1-indexed) parent fragments whose atoms are real, ``basis_fragments``
    those whose basis functions are present (real plus ghosts), as in QCManyBody's labels; the basis
    set's name is :attr:`basis_set`. ``atomic_input`` is QCSchema JSON (plain dicts, lists and
    numbers) for ``qcengine.compute``: it crosses process and node boundaries as data, never as a
    pickled model.

    ``keep_result`` says whether the run keeps the fragment's whole AtomicResult or only the return
    properties upstream's ``analyze`` reads: an expansion whose protocol drops fragment results needs
    no more, and at 10^5 fragments the whole results were most of the driver's memory (about 11 KB
    per water trimer against 0.7 KB, measured). The cache stores the whole result either way.
    """

    label: str
    mc: str
    program: str
    real_fragments: tuple[int, ...]
    basis_fragments: tuple[int, ...]
    atomic_input: dict[str, Any]
    cost: float = 1.0
    expected_seconds: float | None = None
    keep_result: bool = True

    @property
    def nbody(self) -> int:
        return len(self.real_fragments)

    @property
    def method(self) -> str:
        return atomic_model(self.atomic_input)[0]

    @property
    def basis_set(self) -> str | None:
        basis = atomic_model(self.atomic_input)[1]
        return None if basis is None else str(basis).lower()

    @property
    def schema_version(self) -> SchemaVersion:
        return atomic_version(self.atomic_input)

    @property
    def driver(self) -> str:
        return str(atomic_specification(self.atomic_input)["driver"])


def specifications_from_input(computer: Any) -> dict[str, dict[str, Any]]:
    """Per model chemistry: program and the atomic specification, with the many-body driver imposed.

    Mirrors how upstream's ``from_manybodyinput`` prepares them, serialised to JSON-ready dicts.
    """
    specs: dict[str, dict[str, Any]] = {}
    driver = getattr(computer.driver, "value", computer.driver)
    for mc, spec in computer.input_data.specification.specification.items():
        data = dump(spec)
        program = data.pop("program")
        data.pop("schema_name", None)
        data.pop("schema_version", None)
        data["driver"] = driver
        specs[mc] = {"program": program, "specification": data}
    return specs


class FragmentMoleculeBuilder:
    """Slices fragment molecules out of a parent molecule, one precomputed chunk per parent fragment.

    Fragment molecules are concatenations of whole parent fragments, so symbols, coordinates, masses
    and basis-function counts are prepared once per parent fragment and joined per fragment task.
    """

    def __init__(self, molecule: Any):
        self.name = molecule.name
        geometry = np.asarray(molecule.geometry, dtype=float).reshape(-1, 3)
        self.fragments = [list(map(int, frag)) for frag in molecule.fragments]
        self.fragment_charges = [float(c) for c in molecule.fragment_charges]
        self.fragment_multiplicities = [int(m) for m in molecule.fragment_multiplicities]
        self.geometry = geometry
        self.fix_c1 = molecule.fix_symmetry == "c1"
        symbols, masses = list(molecule.symbols), [float(m) for m in molecule.masses]
        self._symbols = [[symbols[i] for i in frag] for frag in self.fragments]
        self._masses = [[masses[i] for i in frag] for frag in self.fragments]
        self._geometry = [geometry[frag].ravel().tolist() for frag in self.fragments]
        self._real = [[True] * len(frag) for frag in self.fragments]
        self._ghost = [[False] * len(frag) for frag in self.fragments]
        self._full_layout: tuple[list[str], list[float], list[float], list[list[int]]] | None = None

    def fragment_symbols(self, ifr: int) -> list[str]:
        """Symbols of parent fragment ``ifr`` (0-indexed)."""
        return self._symbols[ifr]

    def _layout(self, present: list[int]) -> tuple[list[str], list[float], list[float], list[list[int]]]:
        """Symbols, flat geometry, masses and fragment atom lists of the parent fragments ``present``."""
        symbols: list[str] = []
        geometry: list[float] = []
        masses: list[float] = []
        fragments: list[list[int]] = []
        for ifr in present:
            start = len(symbols)
            symbols += self._symbols[ifr]
            geometry += self._geometry[ifr]
            masses += self._masses[ifr]
            fragments.append(list(range(start, len(symbols))))
        return symbols, geometry, masses, fragments

    def build(self, real: tuple[int, ...], basis: tuple[int, ...]) -> dict[str, Any]:
        """The molecule of ``real`` fragments with ghosts on ``basis - real`` (1-indexed, as in labels).

        Fragments in the whole cluster's basis (every CP and VMFC fragment) share one layout: the
        lists are the same objects in every such task, never mutated, so they cost nothing per task.
        """
        real0 = [ifr - 1 for ifr in real]
        ghost0 = [ifr - 1 for ifr in list(set(basis) - set(real))]
        present = sorted(real0 + ghost0)
        if len(present) == len(self.fragments):
            if self._full_layout is None:
                self._full_layout = self._layout(present)
            symbols, geometry, masses, fragments = self._full_layout
        else:
            symbols, geometry, masses, fragments = self._layout(present)

        real_set = set(real0)
        real_flags: list[bool] = []
        charges: list[float] = []
        multiplicities: list[int] = []
        for ifr in present:
            is_real = ifr in real_set
            real_flags += self._real[ifr] if is_real else self._ghost[ifr]
            charges.append(self.fragment_charges[ifr] if is_real else 0)
            multiplicities.append(self.fragment_multiplicities[ifr] if is_real else 1)

        molecule = {
            "name": (self.name or "") + " (" + str(real0) + "," + str(ghost0) + ")",
            "symbols": symbols,
            "geometry": geometry,
            "masses": masses,
            "real": real_flags,
            "fragments": fragments,
            "fragment_charges": charges,
            "fragment_multiplicities": multiplicities,
            "fix_com": True,
            "fix_orientation": True,
        }
        if self.fix_c1:
            molecule["fix_symmetry"] = "c1"
        return molecule


def iterate_labels(core: ManyBodyCore) -> Iterator[tuple[str, str, tuple[int, ...], tuple[int, ...]]]:
    """(model chemistry, label, real, basis) for each distinct fragment, in upstream's order."""
    seen: set[str] = set()
    for mc, label, real, basis in fragment_calculations(core):
        if label not in seen:
            seen.add(label)
            yield mc, label, real, basis


def plan_tasks(
    core: ManyBodyCore,
    specifications: Mapping[str, Mapping[str, Any]],
    schema_version: SchemaVersion = 2,
    keep_results: bool = True,
) -> list[FragmentTask]:
    """Every fragment task of ``core``: all n-body levels and model chemistries at once, no barriers.

    ``specifications`` maps each model chemistry of the core to ``{"program": ..., "specification":
    {...}}`` as :func:`specifications_from_input` returns. Tasks come in upstream's order, each with
    its estimated relative ``cost``; executors decide the submission order. ``keep_results`` becomes
    every task's :attr:`FragmentTask.keep_result`.
    """
    missing = [mc for mc in core.mc_levels if mc not in specifications]
    if missing:
        raise InputError(
            f"no specification for model chemistry {missing[0]!r}; given: {sorted(specifications)}"
        )
    for mc, specification in specifications.items():
        check_keyword_names(mc, specification["specification"].get("keywords") or {})

    builder = FragmentMoleculeBuilder(core.molecule)
    costs = FragmentCosts(builder, specifications)
    tasks = []
    with collector_paused():
        for mc, label, real, basis in iterate_labels(core):
            program = specifications[mc]["program"]
            spec = specifications[mc]["specification"]  # shared by the tasks of a level: never mutated
            molecule = builder.build(real, basis)
            if core.embedding_charges:
                spec = copy.deepcopy(spec)
                _attach_embedding_charges(core, builder, molecule, spec, basis, program)
            atomic_input = make_atomic_input(molecule, spec, schema_version)
            cost = costs.cost(mc, real, basis)
            tasks.append(
                FragmentTask(label, mc, program, real, basis, atomic_input, cost, keep_result=keep_results)
            )
    logger.info("planned %d fragment tasks", len(tasks))
    return tasks


def check_keyword_names(mc: str, keywords: Mapping[str, Any]) -> None:
    """Refuse keyword names that differ only in case, whatever the program.

    Engines read keyword names in one case (our PySCF harness and QCEngine's NWChem harness lowercase
    them, the last of two spellings winning), so which value is used would depend on the order of
    the two, and a cached result could answer the other order.
    """
    seen: dict[str, str] = {}
    for name in keywords:
        folded = name.lower()
        if folded in seen:
            raise InputError(
                f"model chemistry {mc!r}: keywords {seen[folded]!r} and {name!r} differ only in case and the "
                "engine would use one of them: give it once"
            )
        seen[folded] = name


class FragmentCosts:
    """Estimated cost per (model chemistry, real fragments, basis fragments), from basis functions
    and electrons per parent fragment (see :mod:`.cost`)."""

    def __init__(self, builder: FragmentMoleculeBuilder, specifications: Mapping[str, Mapping[str, Any]]):
        self.builder = builder
        self.models = {mc: spec["specification"]["model"] for mc, spec in specifications.items()}
        self._nbf: dict[str, list[int]] = {}
        self._electrons = [
            electrons(builder.fragment_symbols(ifr)) - round(builder.fragment_charges[ifr])
            for ifr in range(len(builder.fragments))
        ]

    def cost(self, mc: str, real: tuple[int, ...], basis: tuple[int, ...]) -> float:
        model = self.models[mc]
        if mc not in self._nbf:
            self._nbf[mc] = [
                count_basis_functions(self.builder.fragment_symbols(ifr), model.get("basis"))
                for ifr in range(len(self.builder.fragments))
            ]
        nbf = sum(self._nbf[mc][ifr - 1] for ifr in basis)
        occupied = (sum(self._electrons[ifr - 1] for ifr in real) + 1) // 2
        return formal_cost(model.get("method", ""), nbf, occupied)


def _attach_embedding_charges(
    core: ManyBodyCore,
    builder: FragmentMoleculeBuilder,
    molecule: dict[str, Any],
    spec: dict[str, Any],
    basis: tuple[int, ...],
    program: str,
) -> None:
    """Point charges of the absent fragments, passed on the way upstream passes them (Psi4 only)."""
    if program != "psi4":
        raise InputError(f"embedding charges are supported by upstream for psi4 only, not {program!r}")
    charges = []
    for ifr in sorted(set(range(1, core.nfragments + 1)) - set(basis)):
        positions = builder.geometry[builder.fragments[ifr - 1]].tolist()
        charges.extend([[chg, pos] for pos, chg in zip(positions, core.embedding_charges[ifr], strict=True)])
    molecule["extras"] = {"embedding_charges": charges}
    keywords = spec.setdefault("keywords", {})
    keywords.setdefault("function_kwargs", {}).update({"external_potentials": charges})
