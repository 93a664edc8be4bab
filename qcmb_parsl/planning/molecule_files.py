"""From a molecule file (XYZ, Psi4's molecule format) to a ManyBodyInput: fragments, charges, the model.

What a chemist has is an XYZ file of a cluster, not a QCSchema ManyBodyInput. The fragments are the
molecules in it: atoms closer than 1.2 times the sum of their covalent radii are bonded
(QCElemental's connectivity guess), and each connected component of that bond graph (networkx) is
one fragment, in the order of its first atom. They may also be given (:func:`parse_fragments`:
``"0-2,3-5,6-8"``), or come from the file itself (Psi4's ``--`` between fragments).

Nothing about charge or spin is guessed: fragments are neutral singlets unless told otherwise. A
charged cluster without fragment charges, or a fragment with an odd number of electrons without a
multiplicity, is refused with one line naming the fragments and what to add; so is a cluster whose
atoms are all bonded into one fragment. The input built is QCSchema v2 with every charge and
multiplicity written out and the geometry kept where the file puts it (``fix_com``,
``fix_orientation``): written to disk, it repeats the run exactly.

A file means what it says or is refused: an XYZ count line that is not the number of atom lines (a
truncated or padded file is another molecule), an empty file, two atoms at one place. QCSchema keeps
each fragment's atoms together; a file whose molecules interleave is built with its atoms listed
fragment by fragment when the fragments are given (``0-1+5,2-4``), the file's order of them kept in
``molecule.extras["file_atom_order"]``, and refused with that option spelled out when they are not.
The model chemistry is checked (:mod:`qcmb_parsl.engines.checks`) before the file is read (a mistyped
name costs no parsing) and again with the file's elements (a basis set must cover each of them), before
its fragments are looked for.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qcelemental import periodictable
from qcelemental.molutil import guess_connectivity, molecular_formula_from_symbols

from ..engines.checks import ModelChemistry, check_model_chemistry
from ..errors import InputError
from .inputs import check_fragments

__all__ = [
    "DRIVERS",
    "MOLECULE_SUFFIXES",
    "ExpansionRecipe",
    "find_fragments",
    "format_atoms",
    "is_molecule_file",
    "manybody_input_from_molecule_file",
    "parse_fragments",
    "parse_numbers",
]

#: File name endings read as molecules, and QCElemental's name for their format.
MOLECULE_SUFFIXES = {".xyz": "xyz", ".psimol": "psi4", ".psi4": "psi4"}
DRIVERS = ("energy", "gradient", "hessian")


@dataclass(frozen=True)
class ExpansionRecipe:
    """What to compute on the cluster of a molecule file, and how to cut it into fragments.

    Parameters
    ----------
    method, basis, program, driver
        The model chemistry of every fragment (``basis`` None for methods without one).
    bsse_type, max_nbody
        QCManyBody's keywords: BSSE treatments (``cp``, ``nocp``, ``vmfc``) and the highest n-body
        level (None: every fragment).
    fragments
        Atom indices (from 0) of each fragment; None: from the file, else by covalent connectivity.
    fragment_charges, fragment_multiplicities
        One per fragment; None: neutral, and singlets (refused for an odd number of electrons).
    charge, multiplicity
        Of the whole cluster; None: the sum of the fragments' charges, and QCElemental's multiplicity
        from the fragments' (high spin when several are open-shell).
    """

    method: str
    basis: str | None = None
    program: str = "pyscf"
    driver: str = "energy"
    bsse_type: tuple[str, ...] = ("cp",)
    max_nbody: int | None = None
    fragments: tuple[tuple[int, ...], ...] | None = None
    fragment_charges: tuple[float, ...] | None = None
    fragment_multiplicities: tuple[int, ...] | None = None
    charge: float | None = None
    multiplicity: int | None = None


def is_molecule_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a molecule file (by its ending) rather than a ManyBodyInput."""
    return Path(path).suffix.lower() in MOLECULE_SUFFIXES


def manybody_input_from_molecule_file(path: str | os.PathLike, recipe: ExpansionRecipe) -> dict[str, Any]:
    """The QCSchema v2 ManyBodyInput dict of the cluster in ``path`` under ``recipe``.

    Raises InputError, naming the file, when the file cannot be read, the cluster cannot be cut into
    fragments unambiguously, or a charge or multiplicity is missing or inconsistent.
    """
    path = Path(path)
    _check_recipe(path, recipe, ())  # a mistyped name costs no reading of the file
    parsed = _read_molecule(path)
    _check_recipe(path, recipe, tuple(str(symbol) for symbol in parsed.symbols))
    molecule = _fragmented_molecule(path, recipe, parsed)
    keywords: dict[str, Any] = {"bsse_type": list(recipe.bsse_type)}
    if recipe.max_nbody is not None:
        keywords["max_nbody"] = recipe.max_nbody
    model = (
        {"method": recipe.method}
        if recipe.basis is None
        else {"method": recipe.method, "basis": recipe.basis}
    )
    return {
        "schema_name": "qcschema_many_body_input",
        "schema_version": 2,
        "molecule": molecule,
        "specification": {
            "specification": {
                "program": recipe.program,
                "driver": recipe.driver,
                "model": model,
                "keywords": {},
            },
            "keywords": keywords,
            "driver": recipe.driver,
        },
    }


def _check_recipe(path: Path, recipe: ExpansionRecipe, elements: tuple[str, ...]) -> None:
    """The recipe's model chemistry as its program would run it, for ``elements`` (none: the names)."""
    try:
        check_model_chemistry(
            ModelChemistry(recipe.program, recipe.method, recipe.basis, recipe.driver, {}, elements)
        )
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def find_fragments(symbols: Sequence[str], geometry: Any) -> list[list[int]]:
    """Atom indices of each covalently bonded molecule, in the order of their first atom.

    ``geometry`` in Bohr. Bonds are QCElemental's guess (covalent radii times 1.2); fragments are the
    connected components of the bond graph.
    """
    import networkx as nx  # here, not with the module: the command line reads this module's names to start

    graph = nx.Graph()
    graph.add_nodes_from(range(len(symbols)))
    graph.add_edges_from(bond[:2] for bond in guess_connectivity(np.asarray(symbols), np.asarray(geometry)))
    return sorted(sorted(int(atom) for atom in component) for component in nx.connected_components(graph))


def parse_fragments(text: str) -> tuple[tuple[int, ...], ...]:
    """Fragments from ``"0-2,3-5,6+9-10"``: commas between fragments, ``a-b`` a range of atoms (both
    included), ``+`` joining the parts of a fragment whose atoms are not consecutive; atoms from 0."""
    fragments = []
    for item in text.split(","):
        atoms: list[int] = []
        for part in item.split("+"):
            first, dash, last = part.strip().partition("-")
            try:
                start, stop = int(first), int(last if dash else first)
            except ValueError:
                raise InputError(
                    f"fragments {text!r}: {part.strip()!r} is not an atom index or a range a-b "
                    "(atoms from 0, fragments separated by commas, e.g. 0-2,3-5)"
                ) from None
            if start < 0 or stop < start:
                raise InputError(
                    f"fragments {text!r}: {part.strip()!r} is not a range of atoms from 0 upwards"
                )
            atoms.extend(range(start, stop + 1))
        fragments.append(tuple(atoms))
    return tuple(fragments)


def parse_numbers(text: str, what: str, kind: type[int] | type[float]) -> tuple[Any, ...]:
    """``"-1,0,0"`` as numbers of ``kind`` (a list for each fragment, or for BSSE treatments)."""
    values = []
    for item in text.split(","):
        try:
            values.append(kind(item.strip()))
        except ValueError:
            raise InputError(
                f"{what} {text!r}: {item.strip()!r} is not {'an integer' if kind is int else 'a number'} "
                "(one per fragment, separated by commas)"
            ) from None
    return tuple(values)


def format_atoms(atoms: Sequence[int]) -> str:
    """``"0-2+5"`` for atoms 0, 1, 2 and 5: the spelling :func:`parse_fragments` reads."""
    parts: list[str] = []
    for atom in sorted(atoms):
        if parts and parts[-1].split("-")[-1] == str(atom - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{atom}"
        else:
            parts.append(str(atom))
    return "+".join(parts)


# -- building the molecule ------------------------------------------------------------------------


#: QCElemental's words for two atoms at one place: ``[(i, j, distance), ...]``, numbers in numpy's reprs.
_TOO_CLOSE = re.compile(r"too close: \[\((\d+), (\d+), ([^)]*)\)")
#: A numpy scalar's repr, ``np.float64(0.05)``: its value is what the user wrote.
_NUMPY_REPR = re.compile(r"np\.\w+\(([^()]*)\)")


def _read_molecule(path: Path) -> Any:
    """QCElemental's (v2) Molecule of the file, its geometry as the file gives it; InputError, naming the
    file, for a file that is missing, empty, atomless, or whose XYZ count line counts other atoms."""
    from qcelemental.models.v2 import Molecule

    if not path.is_file():
        raise InputError(
            f"molecule file {str(path)!r} {'is not a file' if path.exists() else 'does not exist'}"
        )
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read molecule file {str(path)!r}: {exc}") from None
    if not text.strip():
        raise InputError(f"molecule file {str(path)!r} is empty")
    dtype = MOLECULE_SUFFIXES[path.suffix.lower()]
    count = _count_line(text) if dtype == "xyz" else None
    try:
        parsed = Molecule.from_data(text, dtype=dtype)
    except KeyError:  # QCElemental's parse found no atom line: it has no "qm" atoms to look up
        raise InputError(f"molecule file {str(path)!r} holds no atoms") from None
    except Exception as exc:  # noqa: BLE001 - QCElemental's parse and validation errors alike: one line
        raise InputError(f"molecule file {str(path)!r} cannot be read: {_qcelemental_words(exc)}") from None
    if count is not None and count != len(parsed.symbols):
        raise InputError(
            f"molecule file {str(path)!r}: its count line says {count} atoms but it has "
            f"{len(parsed.symbols)} atom lines: a truncated or padded file is another molecule; correct one"
        )
    return parsed


def _count_line(text: str) -> int | None:
    """The number on an XYZ file's first line, or None when it holds no number (QCElemental refuses it)."""
    first = text.lstrip("\n").partition("\n")[0].strip()
    return int(first) if first.isdigit() else None


def _qcelemental_words(exc: BaseException) -> str:
    """QCElemental's message on one line, its numbers as written and two atoms at one place said so."""
    message = " ".join((getattr(exc, "message", None) or str(exc)).split())
    message = _NUMPY_REPR.sub(r"\1", message.removeprefix("Input Error: "))
    close = _TOO_CLOSE.search(message)
    if close:
        first, second, distance = close.groups()
        return (
            f"atoms {first} and {second} (counted from 0) are only {float(distance):g} apart in the "
            "file's units: is an atom written twice?"
        )
    return message


def _fragmented_molecule(path: Path, recipe: ExpansionRecipe, parsed: Any) -> dict[str, Any]:
    """The molecule dict of the file with fragments, charges and multiplicities, checked by QCElemental;
    its atoms fragment by fragment (see the module's docstring)."""
    from qcelemental.models.v2 import Molecule

    if not all(parsed.real):
        raise InputError(
            f"{path}: holds ghost atoms: the expansion places ghost atoms itself (bsse_type cp, vmfc), "
            "so write every atom as real"
        )
    symbols = [str(symbol) for symbol in parsed.symbols]
    if len(symbols) < 2:
        raise InputError(f"{path}: holds one atom: a many-body expansion needs two or more fragments")
    geometry = np.asarray(parsed.geometry, dtype=float).reshape(-1, 3)
    from_file = len(parsed.fragments) > 1 and recipe.fragments is None
    if recipe.fragments is not None:
        fragments = [list(atoms) for atoms in recipe.fragments]
    elif from_file:
        fragments = [[int(atom) for atom in atoms] for atoms in parsed.fragments]
    else:
        fragments = find_fragments(symbols, geometry)
    if len(fragments) < 2:
        bonded = f"its {len(symbols)} atoms are one covalently bonded fragment (QCElemental's connectivity)"
        why = "the fragments given are one" if recipe.fragments is not None else bonded
        raise InputError(f"{path}: {why}: give two or more fragments, atoms from 0, e.g. --fragments 0-2,3-5")
    if any(atom >= len(symbols) for atoms in fragments for atom in atoms):
        raise InputError(f"{path}: fragments name atoms beyond the last one, {len(symbols) - 1}")
    try:
        check_fragments(len(symbols), fragments)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    order = [atom for atoms in fragments for atom in atoms]
    interleaved = order != list(range(len(symbols)))
    if interleaved and recipe.fragments is None:
        first = next(atoms for atoms in fragments if atoms != list(range(atoms[0], atoms[0] + len(atoms))))
        spelled = ",".join(format_atoms(atoms) for atoms in fragments)
        raise InputError(
            f"{path}: its molecules interleave (one is atoms {format_atoms(first)}): give the fragments, "
            f"--fragments {spelled}, and the atoms are listed fragment by fragment"
        )

    cluster = _Cluster(path, symbols, fragments)
    charges = _fragment_charges(cluster, recipe, parsed if from_file else None)
    multiplicities = _fragment_multiplicities(cluster, recipe, charges, parsed if from_file else None)
    contiguous, start = [], 0
    for atoms in fragments:
        contiguous.append(list(range(start, start + len(atoms))))
        start += len(atoms)
    molecule: dict[str, Any] = {
        "symbols": [symbols[atom] for atom in order],
        "geometry": geometry[order].ravel().tolist(),
        "fragments": contiguous,
        "fragment_charges": list(charges),
        "fragment_multiplicities": list(multiplicities),
        "molecular_charge": sum(charges) if recipe.charge is None else recipe.charge,
        "fix_com": True,
        "fix_orientation": True,
    }
    if interleaved:
        molecule["extras"] = {"file_atom_order": order}
    if recipe.multiplicity is not None:
        molecule["molecular_multiplicity"] = recipe.multiplicity
    try:
        checked = Molecule(**molecule)
    except Exception as exc:  # noqa: BLE001 - QCElemental's and pydantic's validation errors alike
        raise InputError(f"{path}: {_qcelemental_words(exc)}") from None
    molecule["molecular_multiplicity"] = int(checked.molecular_multiplicity)
    return molecule


@dataclass(frozen=True)
class _Cluster:
    """A molecule file's atoms and fragments, and how messages name them."""

    path: Path
    symbols: list[str]
    fragments: list[list[int]]

    def fragment(self, index: int) -> str:
        """``"H2O (atoms 1-3)"``: the fragment at ``index``, for messages that ask about it."""
        atoms = self.fragments[index]
        formula = molecular_formula_from_symbols([self.symbols[i] for i in atoms], order="hill")
        return f"{formula} (atom{'s' if len(atoms) > 1 else ''} {format_atoms(atoms)})"

    def listing(self) -> str:
        """``"3 fragments: F (atom 0), H2O (atoms 1-3), H2O (atoms 4-6)"``."""
        return f"{len(self.fragments)} fragments: " + ", ".join(
            map(self.fragment, range(len(self.fragments)))
        )

    def electrons(self, charges: Sequence[float]) -> list[int]:
        """Electrons of each fragment with these charges."""
        return [
            sum(periodictable.to_Z(self.symbols[i]) for i in atoms) - round(charge)
            for atoms, charge in zip(self.fragments, charges, strict=True)
        ]


def _fragment_charges(cluster: _Cluster, recipe: ExpansionRecipe, parsed: Any) -> tuple[float, ...]:
    """Given ones (one per fragment), the file's, or neutral fragments when the cluster is neutral."""
    given = recipe.fragment_charges
    if given is not None:
        if len(given) != len(cluster.fragments):
            raise InputError(
                f"{cluster.path}: {len(given)} fragment charges for {cluster.listing()}: "
                "give one per fragment"
            )
        return tuple(float(charge) for charge in given)
    if parsed is not None:
        return tuple(float(charge) for charge in parsed.fragment_charges)
    if recipe.charge:
        raise InputError(
            f"{cluster.path}: charge {recipe.charge:g} on {cluster.listing()}: say which carry it with "
            "one charge per fragment, in this order (--fragment-charges=...)"
        )
    return (0.0,) * len(cluster.fragments)


def _fragment_multiplicities(
    cluster: _Cluster, recipe: ExpansionRecipe, charges: Sequence[float], parsed: Any
) -> tuple[int, ...]:
    """Given ones (checked against each fragment's electron count), the file's, or singlets."""
    given = recipe.fragment_multiplicities
    if given is None and parsed is not None:
        return tuple(int(m) for m in parsed.fragment_multiplicities)
    if given is not None and len(given) != len(cluster.fragments):
        raise InputError(
            f"{cluster.path}: {len(given)} fragment multiplicities for {cluster.listing()}: "
            "give one per fragment"
        )
    electrons = cluster.electrons(charges)
    multiplicities = given or tuple(1 if n % 2 == 0 else 2 for n in electrons)
    for index, (count, multiplicity) in enumerate(zip(electrons, multiplicities, strict=True)):
        where = (
            f"{cluster.path}: fragment {index + 1} of {len(cluster.fragments)}, {cluster.fragment(index)},"
        )
        if given is None and count % 2:
            example = ",".join(map(str, multiplicities))
            raise InputError(
                f"{where} has {count} electrons: give every fragment's multiplicity, in order "
                f"(--fragment-multiplicities {example}), or for an ion every fragment's charge "
                "(--fragment-charges=...)"
            )
        if multiplicity < 1 or (count + multiplicity) % 2 == 0:
            parity = "an even" if count % 2 else "an odd"
            raise InputError(
                f"{where} has {count} electrons and cannot have multiplicity {multiplicity}: "
                f"give {parity} one"
            )
    return tuple(multiplicities)
