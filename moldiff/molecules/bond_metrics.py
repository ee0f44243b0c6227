"""Metrics for molecules generated *with* bonds and formal charges (MiDi, EQGAT-diff, SemlaFlow, FlowMol).

A generated molecule is ``(atomic numbers [n], formal charges [n], positions [n, 3] Å, bonds)``, the bonds
as classes :data:`BOND_CLASSES` (0 none, 1 single, 2 double, 3 triple, 4 aromatic) given either as a
sparse list of ``(i, j, class)`` or as a dense ``[n, n]`` class matrix. The RDKit molecule is built
directly from those bonds and charges (:func:`bonded_molecule`: no distance-based perception, every
hydrogen an explicit atom, no implicit hydrogens added), and:

1. **Atom stability**: an atom is stable when its valence (sum of its bond orders) is an allowed
   valence for its element *and* formal charge (:data:`STRICT_VALENCES`, or MiDi's table
   :data:`MIDI_VALENCES`); pooled over all atoms. **Molecule stability**: all atoms stable.
   Aromatic bonds: with ``aromatic="kekule"`` (default) the valence is read from the Kekulé
   structure RDKit finds for the generated aromatic bonds (so a furan O has valence 2 and a pyrrole N
   valence 3); if RDKit cannot kekulize them (an aromatic bond outside a ring, an odd aromatic ring)
   each aromatic bond counts 1.5, and a fractional valence is never allowed. ``aromatic="midi"``
   is MiDi's arithmetic: aromatic counts 1.5 and the sum is truncated to an integer.
2. **Validity**: ``Chem.SanitizeMol`` of the whole molecule as built succeeds.
   **validity_largest_fragment**: the largest fragment sanitizes (EDM's and MiDi's validity).
   **connected_validity**: valid and one fragment.
3. **Uniqueness**: distinct canonical SMILES / valid molecules; **novelty**: distinct SMILES not in
   the training SMILES / distinct SMILES. SMILES are :func:`canonical_smiles` of the whole valid
   molecule (hydrogens removed, no stereochemistry); the training SMILES must come from the same
   function (:func:`moldiff.molecules.bond_data.training_bonded_smiles`).
4. **sdf_readback**: fraction of molecules that RDKit's default ``Chem.SDMolSupplier`` (sanitize,
   remove hydrogens) reads back (not ``None``) after :func:`moldiff.molecules.rdkit_io.write_sdf`
   writes them with their bonds and charges (V2000, aromatic bonds written as type 4). The reader is
   more lenient than sanitizing the molecule as built: it reads an aromatic bond outside a ring back
   as ``C:C`` (a molecule it rejects: a carbon with five bonds).

On QM9's own molecules (the bonds and charges of :mod:`~moldiff.molecules.bond_data`), all 13,083 of
the test split: atom and molecule stability, the three validities and ``sdf_readback`` are 100 %, with
either table; MiDi's aromatic arithmetic instead gives 98.75 % atoms and 82.95 % molecules (2,000
molecules: furan O, pyrrole N, aromatic C=O fail), and Kekulé bonds (``kekulize=True``) 100 %.

RDKit is imported inside the functions that need it.

Example (water, then a carbon with five hydrogens):

    >>> import numpy as np
    >>> canonical_smiles(bonded_molecule([8, 1, 1], [0, 0, 0], np.zeros((3, 3)), [[0, 1, 1], [0, 2, 1]]))
    'O'
    >>> a = assess_bonded_molecule([6, 1, 1, 1, 1, 1], None, None, [[0, k, 1] for k in range(1, 6)])
    >>> a.num_stable_atoms, a.num_atoms, a.valid
    (5, 6, False)
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

import numpy as np

from .rdkit_io import write_sdf

__all__ = [
    "AROMATIC",
    "BOND_CLASSES",
    "BOND_METRIC_KEYS",
    "BOND_ORDERS",
    "CHARGE_VALUES",
    "MIDI_VALENCES",
    "STRICT_VALENCES",
    "BondedAssessment",
    "assess_bonded_molecule",
    "atom_valences",
    "bond_list",
    "bonded_molecule",
    "canonical_smiles",
    "evaluate_bonded_molecules",
    "mol_bond_arrays",
    "sdf_readback",
    "stable_atoms",
]

#: Bond classes, in the order of their indices (the categorical variable of every atom pair).
BOND_CLASSES: tuple[str, ...] = ("none", "single", "double", "triple", "aromatic")
#: Index of the aromatic class.
AROMATIC = 4
#: Bond order of each class (aromatic 1.5).
BOND_ORDERS: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 1.5)
#: Formal charges a charge class stands for: class ``k`` is charge ``CHARGE_VALUES[k]``.
CHARGE_VALUES: tuple[int, ...] = (-1, 0, 1)

ValenceTable = Mapping[int, Mapping[int, tuple[int, ...]]]

#: MiDi's ``allowed_bonds`` (Vignac et al. 2023; github.com/cvignac/MiDi, ``midi/analysis/rdkit_functions.py``,
#: also in EQGAT-diff / Megalodon), keyed by atomic number then formal charge. MiDi uses the neutral entry
#: for a charge the element has no entry for, and allows neutral C with 3 bonds and N+ with 2, 3 or 4.
MIDI_VALENCES: ValenceTable = {
    1: {0: (1,), 1: (0,), -1: (0,)},
    5: {0: (3,)},
    6: {0: (3, 4), 1: (3,), -1: (3,)},
    7: {0: (2, 3), 1: (2, 3, 4), -1: (2,)},
    8: {0: (2,), 1: (3,), -1: (1,)},
    9: {0: (1,), -1: (0,)},
    13: {0: (3,)},
    14: {0: (4,)},
    15: {0: (3, 5), 1: (4,)},
    16: {0: (2, 6), 1: (2, 3), 2: (4,), 3: (5,), -1: (3,)},
    17: {0: (1,)},
    33: {0: (3,)},
    34: {0: (2, 4, 6)},
    35: {0: (1,), 1: (2,)},
    53: {0: (1,)},
    80: {0: (1, 2)},
    83: {0: (3, 5)},
}

#: Closed-shell valences (no radicals): H 1; C 4 (C+ and C- 3); N 3 (N+ 4, N- 2); O 2 (O+ 3, O- 1);
#: F 1; and the usual ones of B, Si, P, S, Cl, Br, I. A charge without an entry is unstable.
STRICT_VALENCES: ValenceTable = {
    1: {0: (1,)},
    5: {0: (3,), -1: (4,)},
    6: {0: (4,), 1: (3,), -1: (3,)},
    7: {0: (3,), 1: (4,), -1: (2,)},
    8: {0: (2,), 1: (3,), -1: (1,)},
    9: {0: (1,)},
    14: {0: (4,)},
    15: {0: (3, 5), 1: (4,)},
    16: {0: (2, 4, 6), 1: (3,), -1: (1,)},
    17: {0: (1,)},
    35: {0: (1,)},
    53: {0: (1,)},
}

_TABLES = {"strict": STRICT_VALENCES, "midi": MIDI_VALENCES}

#: Keys of :func:`evaluate_bonded_molecules`' result, in report order.
BOND_METRIC_KEYS = (
    "num_molecules",
    "atom_stability",
    "molecule_stability",
    "validity",
    "validity_largest_fragment",
    "connected_validity",
    "uniqueness",
    "novelty",
    "sdf_readback",
    "fraction_disconnected",
)


# ------------------------------------------------------------------------------------------------
# inputs


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if x.dtype.is_floating_point and x.element_size() < 4:
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def bond_list(num_atoms: int, bonds: Any = None, bond_matrix: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated bonds as ``(i [B], j [B], class [B])`` int64 with ``i < j``, sorted, no class-0 entries.

    Args:
        num_atoms: ``n``.
        bonds: a sparse list: ``[B, 3]`` rows ``(i, j, class)``, or a pair ``(index, classes)`` with
            ``index`` ``[2, B]`` (torch_geometric's layout; ``[B, 2]`` is accepted too, except that a
            ``[2, 2]`` index is always read as ``[2, B]``).
        bond_matrix: or a dense ``[n, n]`` class matrix (symmetric, or only its upper triangle filled).

    Raises:
        ValueError: for both or a malformed input: an index out of range, a self-bond, a pair listed
            twice, a class outside ``0..4``, an asymmetric matrix.
    """
    n = int(num_atoms)
    if bonds is not None and bond_matrix is not None:
        raise ValueError("give bonds (a list) or bond_matrix (dense), not both")
    if bond_matrix is not None:
        m = _numpy(bond_matrix)
        if m.shape != (n, n):
            raise ValueError(f"bond_matrix must be [{n}, {n}], got {m.shape}")
        m = m.astype(np.int64)
        upper, lower = np.triu(m, 1), np.tril(m, -1).T
        if lower.any() and not np.array_equal(upper, lower):
            raise ValueError("bond_matrix is not symmetric")
        if np.diag(m).any():
            raise ValueError("bond_matrix has non-zero diagonal entries (self-bonds)")
        i, j = np.nonzero(upper)
        c = upper[i, j]
    elif bonds is None:
        i = j = c = np.zeros(0, dtype=np.int64)
    else:
        if _is_pair(bonds):
            index, c = _numpy(bonds[0]).astype(np.int64), _numpy(bonds[1]).astype(np.int64).reshape(-1)
            if index.ndim == 2 and index.shape == (2, c.shape[0]):  # [2, B] first: for B = 2 it is the reading
                i, j = index[0], index[1]
            elif index.ndim == 2 and index.shape == (c.shape[0], 2):
                i, j = index[:, 0], index[:, 1]
            else:
                raise ValueError(f"bond index must be [2, B] or [B, 2] for {c.shape[0]} classes, got {index.shape}")
        else:
            rows = _numpy(bonds).astype(np.int64)
            if rows.size == 0:
                rows = rows.reshape(0, 3)
            if rows.ndim != 2 or rows.shape[1] != 3:
                raise ValueError(f"bonds must be [B, 3] rows (i, j, class), got shape {rows.shape}")
            i, j, c = rows[:, 0], rows[:, 1], rows[:, 2]
        keep = c != 0
        i, j, c = i[keep], j[keep], c[keep]
        if ((i < 0) | (i >= n) | (j < 0) | (j >= n)).any():
            raise ValueError(f"bond atom index out of range for {n} atoms")
        if (i == j).any():
            raise ValueError("a bond joins an atom to itself")
        i, j = np.minimum(i, j), np.maximum(i, j)
    if ((c < 0) | (c >= len(BOND_CLASSES))).any():
        raise ValueError(
            f"bond classes must be in 0..{len(BOND_CLASSES) - 1} {BOND_CLASSES}, got {np.unique(c).tolist()}"
        )
    order = np.lexsort((j, i))
    i, j, c = i[order], j[order], c[order]
    if len(i) > 1 and ((np.diff(i) == 0) & (np.diff(j) == 0)).any():
        raise ValueError("an atom pair is listed twice")
    return i.astype(np.int64), j.astype(np.int64), c.astype(np.int64)


def _is_pair(bonds: Any) -> bool:
    """``(index [2, B] or [B, 2], classes [B])`` rather than rows ``(i, j, class)``."""
    return isinstance(bonds, (tuple, list)) and len(bonds) == 2 and _numpy(bonds[0]).ndim == 2


def _atoms(
    atomic_numbers: Any, formal_charges: Any, positions: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    z = _numpy(atomic_numbers).astype(np.int64).reshape(-1)
    q = np.zeros_like(z) if formal_charges is None else _numpy(formal_charges).astype(np.int64).reshape(-1)
    pos = None if positions is None else _numpy(positions).astype(np.float64)
    if q.shape != z.shape or (pos is not None and pos.shape != (z.shape[0], 3)):
        raise ValueError(
            f"expected atomic_numbers [n], formal_charges [n], positions [n, 3]; got {z.shape}, "
            f"{q.shape}, {None if pos is None else pos.shape}"
        )
    return z, q, pos


# ------------------------------------------------------------------------------------------------
# RDKit molecules


def bonded_molecule(
    atomic_numbers: Any,
    formal_charges: Any,
    positions: Any,
    bonds: Any = None,
    *,
    bond_matrix: Any = None,
    implicit_hydrogens: bool = False,
    sanitize: bool = False,
):
    """The RDKit molecule of generated atoms, charges, coordinates and bonds, exactly as given.

    Args:
        atomic_numbers: ``[n]``.
        formal_charges: ``[n]`` integer charges (``None``: all 0). Charges, not charge classes.
        positions: ``[n, 3]`` Å, attached as a 3D conformer (``None``: no conformer).
        bonds: sparse bonds, see :func:`bond_list` (classes :data:`BOND_CLASSES`).
        bond_matrix: or a dense ``[n, n]`` class matrix.
        implicit_hydrogens: let RDKit add implicit hydrogens to under-bonded atoms (EDM's and
            MiDi's builders do); by default every atom is ``NoImplicit`` (hydrogens are generated
            atoms), so an atom missing a bond stays a radical. (default: False)
        sanitize: run ``Chem.SanitizeMol`` and let its error propagate; otherwise the property
            cache is updated leniently so any molecule can be inspected and written. (default: False)

    Returns:
        ``rdkit.Chem.Mol``; aromatic bonds (class 4) are flagged aromatic, as are their atoms.
    """
    from rdkit import Chem

    z, q, pos = _atoms(atomic_numbers, formal_charges, positions)
    i, j, c = bond_list(len(z), bonds, bond_matrix)
    types = (None, Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE, Chem.BondType.AROMATIC)
    mol = Chem.RWMol()
    for zi, qi in zip(z.tolist(), q.tolist()):
        atom = Chem.Atom(int(zi))
        if qi:
            atom.SetFormalCharge(int(qi))
        atom.SetNoImplicit(not implicit_hydrogens)
        mol.AddAtom(atom)
    for a, b, k in zip(i.tolist(), j.tolist(), c.tolist()):
        mol.AddBond(a, b, types[k])
        if k == AROMATIC:
            mol.GetBondBetweenAtoms(a, b).SetIsAromatic(True)
            mol.GetAtomWithIdx(a).SetIsAromatic(True)
            mol.GetAtomWithIdx(b).SetIsAromatic(True)
    if pos is not None:
        conf = Chem.Conformer(len(z))
        conf.SetPositions(np.ascontiguousarray(pos))
        conf.Set3D(True)
        mol.AddConformer(conf, assignId=True)
    mol = mol.GetMol()
    if sanitize:
        Chem.SanitizeMol(mol)
    else:
        mol.UpdatePropertyCache(strict=False)
    return mol


def mol_bond_arrays(mol, kekulize: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(atomic_numbers [n], formal_charges [n], bond_index [B, 2] (i < j), bond_classes [B])`` of an RDKit molecule.

    Args:
        mol: the molecule; aromatic bonds are class 4 unless ``kekulize``.
        kekulize: report the Kekulé structure RDKit assigns (classes 1..3 only).
    """
    from rdkit import Chem

    if kekulize and any(b.GetIsAromatic() for b in mol.GetBonds()):
        mol = Chem.RWMol(mol)
        Chem.Kekulize(mol, clearAromaticFlags=True)
    atoms = [mol.GetAtomWithIdx(k) for k in range(mol.GetNumAtoms())]
    z = np.array([a.GetAtomicNum() for a in atoms], dtype=np.int64)
    q = np.array([a.GetFormalCharge() for a in atoms], dtype=np.int64)
    orders = (
        np.triu(Chem.GetAdjacencyMatrix(mol, useBO=True, force=True), 1) if atoms else np.zeros((0, 0))
    )  # force: no stale cached matrix
    i, j = np.nonzero(orders)
    order = orders[i, j]
    if len(i) != mol.GetNumBonds() or not np.isin(order, (1.0, 1.5, 2.0, 3.0)).all():
        kinds = sorted({str(mol.GetBondWithIdx(k).GetBondType()) for k in range(mol.GetNumBonds())})
        raise ValueError(f"bond types {kinds}: only single, double, triple and aromatic have a class in {BOND_CLASSES}")
    classes = np.where(order == 1.5, AROMATIC, order).astype(np.int64)  # orders 1, 2, 3 are their classes
    return z, q, np.stack([i, j], axis=1).astype(np.int64), classes


def canonical_smiles(mol) -> str | None:
    """Canonical SMILES of a copy of ``mol`` after sanitization, hydrogens removed, no stereochemistry;
    ``None`` if it does not sanitize. The one SMILES function of uniqueness, novelty and the training set."""
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        try:
            m = Chem.Mol(mol)
            Chem.SanitizeMol(m)
            Chem.RemoveStereochemistry(m)
            return Chem.MolToSmiles(Chem.RemoveHs(m))
        except Exception:  # MolSanitizeException (ValueError) or RuntimeError
            return None


# ------------------------------------------------------------------------------------------------
# stability


def atom_valences(
    num_atoms: int,
    i: np.ndarray,
    j: np.ndarray,
    classes: np.ndarray,
    mol=None,
    aromatic: Literal["kekule", "midi"] = "kekule",
) -> np.ndarray:
    """Valence (sum of bond orders) of every atom, ``[n]`` float64.

    Args:
        num_atoms, i, j, classes: the bonds (:func:`bond_list`).
        mol: the molecule :func:`bonded_molecule` built from them (needed to kekulize aromatic bonds).
        aromatic: ``"kekule"``: orders of RDKit's Kekulé structure of the aromatic bonds, 1.5 each if
            there is none; ``"midi"``: 1.5 each, the sum truncated to an integer (MiDi's ``.long()``).
    """
    if aromatic not in ("kekule", "midi"):
        raise ValueError(f"aromatic must be 'kekule' or 'midi', got {aromatic!r}")
    orders = np.asarray(BOND_ORDERS)[classes]
    if aromatic == "kekule" and (classes == AROMATIC).any():
        if mol is None:
            raise ValueError("aromatic='kekule' needs the RDKit molecule")
        kek = _kekule_orders(mol, i, j)
        if kek is not None:
            orders = kek
    val = np.bincount(i, orders, minlength=num_atoms) + np.bincount(j, orders, minlength=num_atoms)
    return np.floor(val + 1e-9) if aromatic == "midi" else val


def _kekule_orders(mol, i: np.ndarray, j: np.ndarray) -> np.ndarray | None:
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        try:
            m = Chem.RWMol(mol)
            Chem.Kekulize(m, clearAromaticFlags=True)
        except Exception:  # AtomKekulizeException, KekulizeException
            return None
    return np.array(
        [m.GetBondBetweenAtoms(int(a), int(b)).GetBondTypeAsDouble() for a, b in zip(i, j)], dtype=np.float64
    )


def stable_atoms(
    atomic_numbers: np.ndarray,
    formal_charges: np.ndarray,
    valences: np.ndarray,
    table: Literal["strict", "midi"] | ValenceTable = "strict",
) -> np.ndarray:
    """``[n]`` bool: the valence of each atom is allowed for its element and formal charge.

    Args:
        table: ``"strict"`` (:data:`STRICT_VALENCES`: a charge without an entry is unstable),
            ``"midi"`` (:data:`MIDI_VALENCES` with MiDi's fallback to the neutral entry) or a table
            ``{Z: {charge: allowed valences}}`` (strict lookup). An element without an entry is unstable.
    """
    fallback = table == "midi"
    values = _TABLES[table] if isinstance(table, str) else table
    out = np.zeros(len(atomic_numbers), dtype=bool)
    for k, (z, q, v) in enumerate(zip(atomic_numbers.tolist(), formal_charges.tolist(), valences.tolist())):
        entry = values.get(int(z))
        if entry is None:
            continue
        allowed = entry.get(int(q), entry.get(0) if fallback else None)
        out[k] = allowed is not None and any(abs(v - a) < 1e-6 for a in allowed)
    return out


# ------------------------------------------------------------------------------------------------
# one molecule


@dataclass(frozen=True)
class BondedAssessment:
    """The per-molecule facts :func:`evaluate_bonded_molecules` aggregates.

    Attributes:
        num_atoms: atoms.
        num_stable_atoms: atoms with an allowed valence for their charge.
        smiles: :func:`canonical_smiles` of the whole molecule, ``None`` if it does not sanitize.
        largest_fragment_smiles: that of the largest fragment (EDM/MiDi validity), or ``None``.
        num_fragments: connected components of the bond graph.
    """

    num_atoms: int
    num_stable_atoms: int
    smiles: str | None
    largest_fragment_smiles: str | None
    num_fragments: int

    @property
    def stable(self) -> bool:
        return self.num_stable_atoms == self.num_atoms

    @property
    def valid(self) -> bool:
        return self.smiles is not None

    @property
    def connected(self) -> bool:
        return self.num_fragments <= 1

    @property
    def connected_valid(self) -> bool:
        return self.valid and self.connected


def _is_dense(bonds: Any, n: int) -> bool:
    """Whether a tuple's bonds are a dense ``[n, n]`` matrix rather than ``[B, 3]`` rows. For ``n = 3`` a
    ``[3, 3]`` array is dense when it is symmetric with a zero diagonal (rows ``(i, j, class)`` never are:
    their third row ends with a non-zero class)."""
    if bonds is None or _is_pair(bonds):
        return False
    m = _numpy(bonds)
    if m.shape != (n, n):
        return False
    return n != 3 or (not np.diag(m).any() and np.array_equal(m, m.T))


def _molecule_fields(item: Any) -> tuple[Any, Any, Any, dict]:
    """``(atomic_numbers, formal_charges, positions, bond kwargs)`` of a supported molecule object."""
    if hasattr(item, "GetAtoms"):
        z, q, index, classes = mol_bond_arrays(item)
        pos = item.GetConformer().GetPositions() if item.GetNumConformers() else None
        return z, q, pos, {"bonds": (index.T, classes)}
    if isinstance(item, Mapping):
        kw = {"bond_matrix": item["bond_matrix"]} if "bond_matrix" in item else {"bonds": item.get("bonds")}
        return item["atomic_numbers"], item.get("formal_charges"), item.get("positions"), kw
    if hasattr(item, "bond_index") and hasattr(item, "bond_types"):  # BondedMoleculeGraph
        return item.atomic_numbers, item.charges, item.pos, {"bonds": (item.bond_index, item.bond_types)}
    if isinstance(item, (tuple, list)) and len(item) == 4:
        z, q, pos, b = item
        return z, q, pos, ({"bond_matrix": b} if _is_dense(b, len(_numpy(z))) else {"bonds": b})
    raise TypeError(
        "expected an RDKit Mol, a BondedMoleculeGraph, a dict with atomic_numbers / formal_charges / positions / "
        f"bonds or bond_matrix, or an (atomic_numbers, formal_charges, positions, bonds) tuple; got {type(item).__name__}"
    )


def assess_bonded_molecule(
    atomic_numbers: Any,
    formal_charges: Any,
    positions: Any,
    bonds: Any = None,
    *,
    bond_matrix: Any = None,
    valences: Literal["strict", "midi"] | ValenceTable = "strict",
    aromatic: Literal["kekule", "midi"] = "kekule",
) -> BondedAssessment:
    """Stability, validity and connectivity of one generated molecule (see the module docstring).

    Args:
        atomic_numbers, formal_charges, positions, bonds, bond_matrix: as :func:`bonded_molecule`.
        valences: the valence table (:func:`stable_atoms`). (default: ``"strict"``)
        aromatic: how aromatic bonds count (:func:`atom_valences`). (default: ``"kekule"``)
    """
    from rdkit import Chem

    z, q, pos = _atoms(atomic_numbers, formal_charges, positions)
    i, j, c = bond_list(len(z), bonds, bond_matrix)
    mol = bonded_molecule(z, q, None, (np.stack([i, j]), c))
    val = atom_valences(len(z), i, j, c, mol, aromatic=aromatic)
    num_stable = int(stable_atoms(z, q, val, valences).sum())
    frags = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False) if len(z) else ()
    smiles = canonical_smiles(mol) if len(z) else None
    if len(frags) <= 1:
        largest = smiles
    else:
        largest = canonical_smiles(max(frags, key=lambda m: m.GetNumAtoms()))
    return BondedAssessment(len(z), num_stable, smiles, largest, len(frags))


# ------------------------------------------------------------------------------------------------
# SDF round trip


def sdf_readback(mols: Iterable[Any], path: str | os.PathLike | None = None) -> np.ndarray:
    """Write RDKit molecules (with their bonds and charges) to an SDF and read them back.

    Args:
        mols: RDKit molecules.
        path: the SDF to write (default: a temporary file, removed afterwards).

    Returns:
        ``[M]`` bool: RDKit's default ``Chem.SDMolSupplier`` (sanitize, remove hydrogens) returned a
        molecule (not ``None``) for each record.
    """
    from rdkit import Chem, rdBase

    mols = list(mols)
    tmpdir = None
    if path is None:
        tmpdir = tempfile.TemporaryDirectory(prefix="moldiff_sdf_")
        path = Path(tmpdir.name) / "molecules.sdf"
    try:
        write_sdf(mols, path)
        with rdBase.BlockLogs():
            ok = np.array([m is not None for m in Chem.SDMolSupplier(str(path))], dtype=bool)
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()
    if len(ok) != len(mols):
        raise RuntimeError(f"wrote {len(mols)} molecules but read back {len(ok)} records from {path}")
    return ok


# ------------------------------------------------------------------------------------------------
# a set of molecules


def _iter_molecules(molecules: Any) -> Iterable[Any]:
    if hasattr(molecules, "unbatch"):  # a BondedBatch
        return molecules.unbatch()
    return molecules


def evaluate_bonded_molecules(
    molecules: Iterable[Any],
    training_smiles: Iterable[str] | None = None,
    *,
    valences: Literal["strict", "midi"] | ValenceTable = "strict",
    aromatic: Literal["kekule", "midi"] = "kekule",
    sdf: bool = True,
    progress: bool = False,
) -> dict[str, float | int | None]:
    """The bonded-molecule metrics (MiDi / EQGAT-diff / SemlaFlow protocol) over a set of molecules.

    Args:
        molecules: any of: ``(atomic_numbers, formal_charges, positions, bonds)`` tuples (``bonds``
            a sparse list, see :func:`bond_list`, or a dense ``[n, n]`` class matrix); dicts with
            ``atomic_numbers``, ``formal_charges``, ``positions`` and ``bonds`` or ``bond_matrix``;
            RDKit molecules (their own bonds and charges);
            :class:`~moldiff.molecules.bond_data.BondedMoleculeGraph` items; or a
            :class:`~moldiff.molecules.bond_data.BondedBatch`.
        training_smiles: :func:`canonical_smiles` of the training molecules
            (:func:`moldiff.molecules.bond_data.training_bonded_smiles`); without them ``novelty`` is ``None``.
        valences: valence table, ``"strict"`` or ``"midi"`` (:func:`stable_atoms`). (default: ``"strict"``)
        aromatic: how aromatic bonds count in stability (:func:`atom_valences`). (default: ``"kekule"``)
        sdf: measure ``sdf_readback`` (else ``None``). (default: True)
        progress: a progress bar on stderr.

    Returns:
        dict with the keys of :data:`BOND_METRIC_KEYS`: ``num_molecules`` and fractions in 0..1
        (``uniqueness`` over valid molecules, ``novelty`` over unique ones; 0.0 for an empty
        denominator).
    """
    items = _iter_molecules(molecules)
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, total=len(items) if hasattr(items, "__len__") else None, desc="scoring", unit="mol")
    n_mol = n_atoms = n_stable_atoms = n_stable = n_valid = n_valid_frag = n_conn_valid = n_disconnected = 0
    smiles: list[str] = []
    built = []
    for item in items:
        z, q, pos, kw = _molecule_fields(item)
        a = assess_bonded_molecule(z, q, pos, valences=valences, aromatic=aromatic, **kw)
        n_mol += 1
        n_atoms += a.num_atoms
        n_stable_atoms += a.num_stable_atoms
        n_stable += a.stable
        n_valid += a.valid
        n_valid_frag += a.largest_fragment_smiles is not None
        n_conn_valid += a.connected_valid
        n_disconnected += not a.connected
        if a.valid:
            smiles.append(a.smiles)
        if sdf:
            built.append(bonded_molecule(z, q, pos, **kw))

    def ratio(num: int, den: int) -> float:
        return float(num) / den if den else 0.0

    unique = set(smiles)
    novelty = None
    if training_smiles is not None:
        known = training_smiles if isinstance(training_smiles, (set, frozenset)) else set(training_smiles)
        novelty = ratio(sum(s not in known for s in unique), len(unique))
    readback = None
    if sdf:
        readback = ratio(int(sdf_readback(built).sum()), n_mol) if built else 0.0
    return {
        "num_molecules": n_mol,
        "atom_stability": ratio(n_stable_atoms, n_atoms),
        "molecule_stability": ratio(n_stable, n_mol),
        "validity": ratio(n_valid, n_mol),
        "validity_largest_fragment": ratio(n_valid_frag, n_mol),
        "connected_validity": ratio(n_conn_valid, n_mol),
        "uniqueness": ratio(len(unique), len(smiles)),
        "novelty": novelty,
        "sdf_readback": readback,
        "fraction_disconnected": ratio(n_disconnected, n_mol),
    }
