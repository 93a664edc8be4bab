"""Molecule files in: an XYZ file becomes the ManyBodyInput a chemist would write by hand.

Fast tests build inputs and check the refusals; the real runs go through ``python -m qcmb_parsl`` in a
subprocess (real PySCF, real Parsl) and are compared with upstream's serial ``ManyBodyComputer`` on the
hand-written ManyBodyInput of the same cluster.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import qcelemental
import qcmanybody.models.v2
import qcmanybody.v2
from drivers import assert_refused, run_cli

import qcmb_parsl  # noqa: F401 - registers the PySCF harness for upstream's computer
from qcmb_parsl.clusters import water_cluster
from qcmb_parsl.errors import InputError
from qcmb_parsl.planning.molecule_files import (
    ExpansionRecipe,
    find_fragments,
    format_atoms,
    manybody_input_from_molecule_file,
    parse_fragments,
)

ENERGY_TOL = 1e-9
BOHR_TO_ANGSTROM = qcelemental.constants.bohr2angstroms

#: F-(H2O)2: the fluoride takes a hydrogen bond from each water (Angstrom).
FLUORIDE_DIHYDRATE = [
    ("F", (0.000000, 0.000000, 0.000000)),
    ("H", (1.550000, 0.000000, 0.000000)),
    ("O", (2.510000, 0.000000, 0.000000)),
    ("H", (2.830000, 0.900000, 0.000000)),
    ("H", (-0.775000, 1.342339, 0.000000)),
    ("O", (-1.255000, 2.173724, 0.000000)),
    ("H", (-2.194000, 2.000000, 0.300000)),
]
#: Cyclopropane: every atom bonded to the others, one fragment however it is looked at.
CYCLOPROPANE = [
    ("C", (0.000000, 0.866000, 0.000000)),
    ("C", (-0.750000, -0.433000, 0.000000)),
    ("C", (0.750000, -0.433000, 0.000000)),
    ("H", (0.000000, 1.450000, 0.910000)),
    ("H", (0.000000, 1.450000, -0.910000)),
    ("H", (-1.256000, -0.725000, 0.910000)),
    ("H", (-1.256000, -0.725000, -0.910000)),
    ("H", (1.256000, -0.725000, 0.910000)),
    ("H", (1.256000, -0.725000, -0.910000)),
]


def water_atoms(n: int) -> list[tuple[str, tuple[float, ...]]]:
    """The project's (H2O)n cluster in Angstrom, six decimals, as an XYZ file gives it."""
    molecule = water_cluster(n)
    xyz = np.asarray(molecule["geometry"]).reshape(-1, 3) * BOHR_TO_ANGSTROM
    return [
        (symbol, tuple(round(float(x), 6) for x in row))
        for symbol, row in zip(molecule["symbols"], xyz, strict=True)
    ]


def write_xyz(path: Path, atoms: list[tuple[str, tuple[float, ...]]]) -> Path:
    lines = [str(len(atoms)), path.stem] + [f"{s} {x:.6f} {y:.6f} {z:.6f}" for s, (x, y, z) in atoms]
    path.write_text("\n".join(lines) + "\n")
    return path


def hand_written(atoms, fragments, charges, multiplicities, *, method, basis, bsse_type, max_nbody) -> dict:
    """The ManyBodyInput (v2) a chemist writes for these atoms: geometry in Bohr, every fragment said."""
    return {
        "schema_version": 2,
        "molecule": {
            "symbols": [symbol for symbol, _ in atoms],
            "geometry": [x / BOHR_TO_ANGSTROM for _, xyz in atoms for x in xyz],
            "fragments": fragments,
            "fragment_charges": charges,
            "fragment_multiplicities": multiplicities,
            "molecular_charge": sum(charges),
            "molecular_multiplicity": 1,
        },
        "specification": {
            "specification": {
                "program": "pyscf",
                "driver": "energy",
                "model": {"method": method, "basis": basis},
            },
            "keywords": {"bsse_type": bsse_type, "max_nbody": max_nbody},
            "driver": "energy",
            "protocols": {"cluster_results": "all"},
        },
    }


def assert_same_energies(result, reference) -> None:
    """Every energy of the result is upstream's, to 1e-9 Eh."""
    assert result.success
    assert result.return_result == pytest.approx(reference.return_result, abs=ENERGY_TOL, rel=0)
    ours, ref = result.properties.model_dump(), reference.properties.model_dump()
    compared = 0
    for name, value in ref.items():
        if isinstance(value, float):
            assert ours[name] == pytest.approx(value, abs=ENERGY_TOL, rel=0), name
            compared += 1
    assert compared > 5
    assert set(result.cluster_results) == set(reference.cluster_results)


# -- building inputs (fast) -----------------------------------------------------------------------


@pytest.mark.fast
def test_connectivity_finds_each_molecule(tmp_path: Path) -> None:
    pentamer = water_atoms(5)
    symbols = [s for s, _ in pentamer]
    geometry = np.array([xyz for _, xyz in pentamer]) / BOHR_TO_ANGSTROM
    assert find_fragments(symbols, geometry) == [[3 * i, 3 * i + 1, 3 * i + 2] for i in range(5)]
    # the fluoride's hydrogen bonds are no covalent bonds: the ion is a fragment of its own
    path = write_xyz(tmp_path / "fw2.xyz", FLUORIDE_DIHYDRATE)
    built = manybody_input_from_molecule_file(
        path, ExpansionRecipe("hf", "6-31g", fragment_charges=(-1, 0, 0))
    )
    assert built["molecule"]["fragments"] == [[0], [1, 2, 3], [4, 5, 6]]


@pytest.mark.fast
def test_fragment_spelling_reads_ranges_and_joined_parts() -> None:
    assert parse_fragments("0-2,3-5,6+9-10") == ((0, 1, 2), (3, 4, 5), (6, 9, 10))
    assert parse_fragments(" 7 , 0-1 ") == ((7,), (0, 1))
    assert format_atoms([9, 10, 6, 0, 1, 2]) == "0-2+6+9-10"
    for bad in ("0-2,x", "2-0,3", "0-2,,3-5", "-1-2"):
        with pytest.raises(InputError, match="fragments"):
            parse_fragments(bad)


@pytest.mark.fast
def test_built_input_is_the_hand_written_one(tmp_path: Path) -> None:
    """Same molecule, model and keywords as written by hand; every charge and multiplicity explicit."""
    atoms = water_atoms(5)
    path = write_xyz(tmp_path / "w5.xyz", atoms)
    recipe = ExpansionRecipe("mp2", "cc-pvdz", bsse_type=("cp", "nocp"), max_nbody=3, driver="gradient")
    built = manybody_input_from_molecule_file(path, recipe)
    model = qcmanybody.models.v2.ManyBodyInput(**built)
    expected = hand_written(
        atoms,
        [[3 * i, 3 * i + 1, 3 * i + 2] for i in range(5)],
        [0.0] * 5,
        [1] * 5,
        method="mp2",
        basis="cc-pvdz",
        bsse_type=["cp", "nocp"],
        max_nbody=3,
    )
    molecule = built["molecule"]
    for name in ("symbols", "fragments", "fragment_charges", "fragment_multiplicities", "molecular_charge"):
        assert molecule[name] == expected["molecule"][name], name
    assert molecule["molecular_multiplicity"] == 1
    # QCElemental keeps 8 decimals of a parsed geometry (Bohr)
    np.testing.assert_allclose(molecule["geometry"], expected["molecule"]["geometry"], atol=1e-8, rtol=0)
    assert molecule["fix_com"] and molecule["fix_orientation"]  # the geometry stays where the file has it
    assert model.specification.driver == "gradient"
    atomic = model.specification.specification["(auto)"]
    assert (atomic.program, atomic.model.method, atomic.model.basis) == ("pyscf", "mp2", "cc-pvdz")
    assert [b.value for b in model.specification.keywords.bsse_type] == ["cp", "nocp"]
    assert model.specification.keywords.max_nbody == 3


@pytest.mark.fast
def test_psi4_fragments_and_charges_come_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fw2.psimol"
    blocks = [["-1 1", "F 0 0 0"], ["0 1", *[f"{s} {x} {y} {z}" for s, (x, y, z) in FLUORIDE_DIHYDRATE[1:4]]]]
    blocks.append(["0 1", *[f"{s} {x} {y} {z}" for s, (x, y, z) in FLUORIDE_DIHYDRATE[4:]]])
    path.write_text("\n--\n".join("\n".join(block) for block in blocks) + "\nunits angstrom\n")
    molecule = manybody_input_from_molecule_file(path, ExpansionRecipe("hf", "sto-3g"))["molecule"]
    assert molecule["fragments"] == [[0], [1, 2, 3], [4, 5, 6]]
    assert molecule["fragment_charges"] == [-1.0, 0.0, 0.0] and molecule["molecular_charge"] == -1.0
    ghosted = tmp_path / "ghost.psimol"
    last = "\n".join(f"@{s} {x} {y} {z}" for s, (x, y, z) in FLUORIDE_DIHYDRATE[4:])  # a ghost water
    ghosted.write_text(
        "\n--\n".join([*path.read_text().split("\n--\n")[:2], f"0 1\n{last}\nunits angstrom\n"])
    )
    with pytest.raises(InputError, match="ghost atoms"):
        manybody_input_from_molecule_file(ghosted, ExpansionRecipe("hf", "sto-3g"))
    # given fragments win over the file's
    regrouped = ExpansionRecipe("hf", "sto-3g", fragments=((0, 1, 2, 3), (4, 5, 6)), fragment_charges=(-1, 0))
    assert manybody_input_from_molecule_file(path, regrouped)["molecule"]["fragments"] == [
        [0, 1, 2, 3],
        [4, 5, 6],
    ]


@pytest.mark.parametrize(
    ("atoms", "recipe", "expected"),
    [
        (CYCLOPROPANE, {}, ["one covalently bonded fragment", "--fragments"]),
        (
            FLUORIDE_DIHYDRATE,
            {},
            ["fragment 1 of 3, F (atom 0),", "9 electrons", "--fragment-multiplicities 2,1,1"],
        ),
        (
            FLUORIDE_DIHYDRATE,
            {"charge": -1},
            ["charge -1 on 3 fragments: F (atom 0), H2O", "--fragment-charges"],
        ),
        (FLUORIDE_DIHYDRATE, {"fragment_charges": (-1, 0)}, ["2 fragment charges for 3 fragments"]),
        (
            FLUORIDE_DIHYDRATE,
            {"fragment_charges": (-1, 0, 0), "fragment_multiplicities": (2, 1, 1)},
            ["10 electrons and cannot have multiplicity 2"],
        ),
        (water_atoms(2), {"fragments": ((0, 1, 2, 3, 4, 5),)}, ["the fragments given are one"]),
        (water_atoms(2), {"fragments": ((0, 1, 2), (3, 4))}, ["atoms [5] belong to no fragment"]),
        (water_atoms(2), {"fragments": ((0, 1, 2), (3, 4, 9))}, ["beyond the last one, 5"]),
    ],
)
@pytest.mark.fast
def test_what_cannot_be_fragmented_is_refused_with_one_line(tmp_path: Path, atoms, recipe, expected) -> None:
    path = write_xyz(tmp_path / "cluster.xyz", atoms)
    with pytest.raises(InputError) as info:
        manybody_input_from_molecule_file(path, ExpansionRecipe("hf", "sto-3g", **recipe))
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for text in expected:
        assert text in message, message


def interleaved_dimer() -> list[tuple[str, tuple[float, ...]]]:
    """The water dimer with the second water's atoms between the first's: atoms 0, 1, 5 and 2, 3, 4."""
    first, second = water_atoms(2)[:3], water_atoms(2)[3:]
    return [first[0], first[1], *second, first[2]]


@pytest.mark.fast
def test_interleaved_fragments_are_reordered_fragment_by_fragment(tmp_path: Path, capsys) -> None:
    """``+`` joins the parts of a fragment; QCSchema wants each fragment's atoms together, so the built
    input lists the atoms fragment by fragment (the dimer as written by hand) and says in which order
    they came from the file."""
    path = write_xyz(tmp_path / "mixed.xyz", interleaved_dimer())
    built = manybody_input_from_molecule_file(
        path, ExpansionRecipe("hf", "sto-3g", fragments=parse_fragments("0-1+5,2-4"))
    )
    molecule = built["molecule"]
    expected = hand_written(
        water_atoms(2), [[0, 1, 2], [3, 4, 5]], [0.0, 0.0], [1, 1],
        method="hf", basis="sto-3g", bsse_type=["cp"], max_nbody=None,
    )["molecule"]
    assert molecule["symbols"] == expected["symbols"] and molecule["fragments"] == expected["fragments"]
    np.testing.assert_allclose(molecule["geometry"], expected["geometry"], atol=1e-8, rtol=0)
    assert molecule["extras"] == {"file_atom_order": [0, 1, 5, 2, 3, 4]}
    assert "Warning" not in capsys.readouterr().out  # QCElemental never had to reorder anything
    qcmanybody.models.v2.ManyBodyInput(**built)


@pytest.mark.fast
def test_interleaved_molecules_without_fragments_are_refused_with_the_option_that_works(tmp_path) -> None:
    path = write_xyz(tmp_path / "mixed.xyz", interleaved_dimer())
    with pytest.raises(InputError) as info:
        manybody_input_from_molecule_file(path, ExpansionRecipe("hf", "sto-3g"))
    message = str(info.value)
    assert "\n" not in message and "--fragments 0-1+5,2-4" in message and "interleave" in message


@pytest.mark.fast
@pytest.mark.parametrize("count", [9, 7, 5, 0])
def test_an_xyz_count_line_must_count_the_atoms(tmp_path: Path, count: int) -> None:
    """A truncated (or padded) file is another molecule: the count line says which one was meant."""
    path = write_xyz(tmp_path / "dimer.xyz", water_atoms(2))
    lines = path.read_text().splitlines()
    path.write_text("\n".join([str(count), *lines[1:]]) + "\n")
    with pytest.raises(InputError) as info:
        manybody_input_from_molecule_file(path, ExpansionRecipe("hf", "sto-3g"))
    assert f"count line says {count} atoms" in str(info.value) and "6 atom lines" in str(info.value)


@pytest.mark.fast
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "is empty"),
        ("\n  \n", "is empty"),
        ("0\nnothing\n", "holds no atoms"),
        ("3\nrepeated\nO 0 0 0\nO 0 0 0\nH 1 0 0\n", "atoms 0 and 1 (counted from 0) are only 0 apart"),
        ("1\nalone\nO 0 0 0\n", "holds one atom"),
    ],
    ids=["empty", "blank", "no-atoms", "repeated-atom", "lone-atom"],
)
def test_files_that_hold_no_cluster_say_what_they_hold(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.xyz"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        manybody_input_from_molecule_file(path, ExpansionRecipe("hf", "sto-3g"))
    message = str(info.value)
    assert expected in message and "np." not in message and "'qm'" not in message, message
    assert "covalent" not in message and "\n" not in message


# -- real runs through the command line -----------------------------------------------------------


def test_charged_ion_water_cluster_through_the_cli_equals_upstream(tmp_path: Path) -> None:
    write_xyz(tmp_path / "fw2.xyz", FLUORIDE_DIHYDRATE)
    command = (
        "run fw2.xyz --method hf --basis 6-31g --bsse cp --max-nbody 2 --fragment-charges=-1,0,0 --charge -1"
    )
    proc = run_cli(*command.split(), "--preset", "threads", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = qcmanybody.models.v2.ManyBodyResult(**json.loads((tmp_path / "fw2.result.json").read_text()))
    mbin = hand_written(
        FLUORIDE_DIHYDRATE,
        [[0], [1, 2, 3], [4, 5, 6]],
        [-1.0, 0.0, 0.0],
        [1, 1, 1],
        method="hf",
        basis="6-31g",
        bsse_type=["cp"],
        max_nbody=2,
    )
    assert_same_energies(result, qcmanybody.v2.ManyBodyComputer.from_manybodyinput(mbin))
    written = json.loads((tmp_path / "fw2.input.json").read_text())["molecule"]
    assert written["fragment_charges"] == [-1.0, 0.0, 0.0] and written["molecular_charge"] == -1.0


def test_refusals_are_one_line_exit_2(tmp_path: Path) -> None:
    write_xyz(tmp_path / "cyclopropane.xyz", CYCLOPROPANE)
    write_xyz(tmp_path / "fw2.xyz", FLUORIDE_DIHYDRATE)
    model = ("--method", "hf", "--basis", "sto-3g")
    assert_refused(
        run_cli("run", "cyclopropane.xyz", *model, cwd=tmp_path), "one covalently bonded fragment", "--fragments"
    )
    assert_refused(
        run_cli("run", "fw2.xyz", *model, cwd=tmp_path), "9 electrons", "--fragment-multiplicities 2,1,1"
    )
    assert_refused(run_cli("run", "fw2.xyz", cwd=tmp_path), "molecule file", "--method")
    assert not list(tmp_path.glob("*.json")), "nothing is written for an input that is refused"


def test_campaign_of_an_xyz_directory(tmp_path: Path) -> None:
    clusters = tmp_path / "clusters"
    clusters.mkdir()
    write_xyz(clusters / "w2.xyz", water_atoms(2))
    write_xyz(clusters / "w3.xyz", water_atoms(3))
    (clusters / "notes.txt").write_text("not a molecule\n")
    args = ("campaign", "clusters", "--method", "hf", "--basis", "sto-3g", "--max-nbody", "2")
    proc = run_cli(*args, "--preset", "threads", "--out-dir", "out", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "campaign_summary.csv",
        "w2.input.json",
        "w2.result.json",
        "w3.input.json",
        "w3.result.json",
    ]
    result = qcmanybody.models.v2.ManyBodyResult(**json.loads((out / "w2.result.json").read_text()))
    mbin = hand_written(
        water_atoms(2),
        [[0, 1, 2], [3, 4, 5]],
        [0.0, 0.0],
        [1, 1],
        method="hf",
        basis="sto-3g",
        bsse_type=["cp"],
        max_nbody=2,
    )
    assert_same_energies(result, qcmanybody.v2.ManyBodyComputer.from_manybodyinput(mbin))
    # the built inputs are what ran: a second campaign finds every result done
    again = run_cli(*args, "--preset", "threads", "--out-dir", "out", "-q", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "2 inputs: 2 skipped" in again.stdout
