"""``moldiff sample --fragment``: fragment files that cannot be grown from (missing, without bonds or
3D coordinates, non-finite, foreign elements, disconnected where one piece was expected, too large for
the molecules asked for, models that do not grow) and bad ``--add-atoms`` ranges, each refused with
one line naming the file, record or option before any sampling; and a good fragment grown whole."""

from __future__ import annotations

from pathlib import Path

from .cases_sampling import no_sampling
from .fixtures import ACETALDEHYDE_POS, ACETALDEHYDE_Z, FAST_FLOW, atom_line
from .harness import CORRECT, SILENT, Outcome, case, cli, named, succeeded

#: Acetaldehyde (CC=O) without the aldehyde H (the fixtures' molecule, its last atom left out): a piece
#: with one free valence.
PIECE_ATOMS = [
    ({1: "H", 6: "C", 8: "O"}[z], *xyz) for z, xyz in zip(ACETALDEHYDE_Z[:6], ACETALDEHYDE_POS[:6], strict=True)
]
PIECE_BONDS = [(1, 2, 1), (2, 3, 2), (1, 4, 1), (1, 5, 1), (1, 6, 1)]


def mol_block(atoms=PIECE_ATOMS, bonds=PIECE_BONDS, title: str = "piece", dim: str = "3D") -> str:
    """One V2000 record (``atoms``: ``(symbol, x, y, z)`` with x, y, z numbers or text)."""
    lines = [title, f"  moldiff         {dim}", ""]
    lines.append(f"{len(atoms):3d}{len(bonds):3d}  0  0  0  0  0  0  0  0999 V2000")
    for symbol, *xyz in atoms:
        lines.append(atom_line(*(f"{v:.4f}" if isinstance(v, float) else v for v in xyz), symbol))
    lines += [f"{i:3d}{j:3d}{k:3d}  0" for i, j, k in bonds]
    return "\n".join(lines + ["M  END", "$$$$", ""])


def _write(tmp: Path, text: str, name: str = "frag.sdf") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def _refused(tmp: Path, fragment: Path | str, *names: object, extra: tuple = (), base: tuple = FAST_FLOW) -> Outcome:
    """The case's outcome when ``--fragment`` must be refused before sampling, naming ``names``."""
    out = tmp / "grown.sdf"
    with no_sampling("molecules"):
        run = cli("sample", *base, "--fragment", fragment, *extra, "--out", out)
    return named(run, *names) if not out.exists() else Outcome(SILENT, "grown.sdf was written")


@case("fragments")
def case_fragment_file_missing(tmp):
    return _refused(tmp, tmp / "absent.sdf", "absent.sdf")


@case("fragments")
def case_fragment_from_xyz_has_no_bonds(tmp):
    xyz = _write(tmp, "2\n\nC 0 0 0\nO 1.2 0 0\n", "frag.xyz")
    return _refused(tmp, xyz, "frag.xyz")


@case("fragments")
def case_fragment_empty_file(tmp):
    return _refused(tmp, _write(tmp, ""), "frag.sdf", "empty")


@case("fragments")
def case_fragment_flat_2d(tmp):
    flat = [(s, x, y, 0.0) for s, x, y, _ in PIECE_ATOMS]
    return _refused(tmp, _write(tmp, mol_block(flat, dim="2D")), "piece", "3D")


@case("fragments")
def case_fragment_nan_coordinates(tmp):
    atoms = list(PIECE_ATOMS)
    atoms[2] = ("O", "nan", -0.65507, -0.456826)
    return _refused(tmp, _write(tmp, mol_block(atoms)), "frag.sdf")


@case("fragments")
def case_fragment_element_outside_the_vocabulary(tmp):
    atoms = list(PIECE_ATOMS)
    atoms[2] = ("S", 0.942288, -0.65507, -0.456826)  # QM9 has H, C, N, O, F: sulfur is foreign
    return _refused(tmp, _write(tmp, mol_block(atoms)), "piece", "S")


@case("fragments")
def case_fragment_disconnected_where_one_piece_was_expected(tmp):
    atoms = PIECE_ATOMS + [("O", 5.0, 5.0, 5.0)]  # a water oxygen far away, no bond to the rest
    return _refused(tmp, _write(tmp, mol_block(atoms)), "piece", "disconnected")


@case("fragments")
def case_fragment_more_atoms_than_asked_for(tmp):
    return _refused(tmp, _write(tmp, mol_block()), "num_atoms", extra=("--num-atoms", "4"))


@case("fragments")
def case_fragment_add_atoms_not_a_range(tmp):
    return _refused(tmp, _write(tmp, mol_block()), "--add-atoms", extra=("--add-atoms", "three-six"))


@case("fragments")
def case_fragment_add_atoms_reversed(tmp):
    return _refused(tmp, _write(tmp, mol_block()), "add_atoms", extra=("--add-atoms", "6-3"))


@case("fragments")
def case_fragment_add_atoms_with_num_atoms(tmp):
    return _refused(
        tmp, _write(tmp, mol_block()), "num_atoms", "add_atoms", extra=("--add-atoms", "2-3", "--num-atoms", "9")
    )


@case("fragments")
def case_fragment_given_to_a_backbone_model(tmp):
    from .fixtures import FAST_BACKBONE

    out = tmp / "grown.pdb"
    run = cli("sample", *FAST_BACKBONE, "--fragment", _write(tmp, mol_block()), "--out", out)
    return named(run, "--fragment") if not out.exists() else Outcome(SILENT, "grown.pdb was written")


@case("fragments", CORRECT)
def case_fragment_grown_keeps_its_atoms(tmp):
    """A good piece: every molecule holds the fragment's elements first, at its coordinates (one rigid motion)."""
    import numpy as np

    from moldiff.molecules.fragments import kabsch_rmsd
    from moldiff.molecules.rdkit_io import read_sdf_records

    out = tmp / "grown.sdf"
    run = cli("sample", *FAST_FLOW, "--fragment", _write(tmp, mol_block()), "--add-atoms", "1-3", "--out", out)

    def check() -> str | None:
        records = read_sdf_records(out)
        if len(records) != 2:
            return f"{len(records)} records, expected 2"
        given = np.array([a[1:] for a in PIECE_ATOMS], dtype=float)
        for k, record in enumerate(records):
            z, pos = record.atomic_numbers, record.positions
            if not 7 <= len(z) <= 9:
                return f"record {k + 1}: {len(z)} atoms, expected 6 + 1-3"
            if z[:6].tolist() != [6, 6, 8, 1, 1, 1]:
                return f"record {k + 1}: the fragment's elements are not kept: {z[:6].tolist()}"
            rmsd = kabsch_rmsd(pos[:6], given)
            if not rmsd < 1e-3:
                return f"record {k + 1}: fragment RMSD {rmsd:.4f} A after superposition"
        return None

    return succeeded(run, check)
