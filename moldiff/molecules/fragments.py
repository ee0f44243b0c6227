"""Fixed fragments: molecules grown around given atoms, and fragments linked into one molecule.

A *fragment* is one or more **pieces**: RDKit molecules with a 3D conformer, or the records of SDF
files, each one connected piece (by its bonds). All pieces are held fixed together, in the
coordinates given: two pieces (two records, two files, a list of two molecules) are *linked*, the
model generating the atoms between them in the pose the pieces were given in (give them in one
frame, e.g. their poses in a pocket). The rest of each molecule is generated around them.

**Layout.** The fragment's ``M`` atoms are the first ``M`` atoms of every generated molecule, in the
fragment's order (pieces in the order given); the generated atoms follow.

**What is held fixed**, by inpainting with the replacement method (:mod:`moldiff.core.guidance`):

* EDM-style models (:class:`~moldiff.molecules.model.MoleculeDiffusion`, ``qm9_edm``): every
  fragment atom's element and coordinates, the whole row of its state (coordinates, one-hot type,
  atomic number), by :func:`moldiff.core.inpainting`. Bonds are not part of that model: the bonds of
  the output are perceived from distances afterwards (``bonds="edm"`` or ``"rdkit"``); since the
  fragment's coordinates are kept, so are its pairwise distances, but the perceived bond orders need
  not be the file's;
* the bond-aware model (:class:`~moldiff.molecules.flow_model.MoleculeFlow`, ``qm9``): every fragment
  atom's element, formal charge and coordinates, and the bond class of every pair of atoms of one
  piece, bonded or not (so no bond is added inside a piece), by :func:`moldiff.core.joint_inpainting`.
  Pairs between a fragment atom and a generated atom, and between atoms of two pieces, are generated:
  that is where the molecule grows and where pieces are linked. Bond classes are the model's: a
  piece's aromaticity is perceived by RDKit (its default model, as the training data's) when the
  piece sanitizes, so a Kekulé benzene is fixed as aromatic for a model with an aromatic class and an
  aromatic piece is kekulized for a model without.

At every step the fixed entries of the network's input are replaced by the known values noised to
the current time by the model's own forward process (RePaint's replacement, Lugmayr et al. 2022,
Eq. 8, without resampling; for the categorical variables the mixture path of discrete flow
matching, ``alpha(t) delta(known) + (1 - alpha(t)) p_0``, Campbell et al. 2024), and the
prediction on them by the known values, so every sampler ends on them exactly.

**Hydrogens.** The atoms are fixed exactly as given, explicit hydrogens included; no implicit
hydrogen is added (QM9 models generate every hydrogen as an atom). A fragment with all its
hydrogens grows only from atoms it leaves short of bonds (remove the hydrogens where the molecule
should grow); a fragment without hydrogens gets its hydrogens, and any other atoms, from the model.

**Coordinates up to one rigid motion.** The models live in the zero centre-of-mass subspace, so the
fragment is held up to one translation per molecule (its shape and orientation as given, inside the
molecule's frame). Each molecule reports the RMSD of its fragment atoms to the fragment after the
best rigid superposition (Kabsch 1976), :func:`kabsch_rmsd`, as the property
``moldiff_fragment_rmsd`` (Angstrom; ~1e-6 in float32 sampling; an SDF file rounds coordinates to
1e-4 Angstrom).

**Bad fragments** stop with one :class:`~moldiff.errors.FragmentError` naming the file and record:
an empty file, a record without 3D coordinates (a 2D mol block, or all z = 0), non-finite
coordinates, an unknown element, an element, formal charge or bond the model cannot generate, a
record in several pieces, more fragment atoms than the molecules asked for.

Example::

    gen = moldiff.load_pretrained("qm9")
    grown = gen.sample(10, fragment="frag.sdf", add_atoms=(3, 6), seed=0)
    linked = gen.sample(10, fragment=["a.sdf", "b.sdf"], num_atoms=20)
    grown.fragment_rmsd        # [10] Angstrom, after superposition
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from moldiff.core import item_seed, upper_triangle_edges
from moldiff.errors import FragmentError
from moldiff.files import header_text

from .bond_metrics import AROMATIC, BOND_CLASSES, BOND_ORDERS, STRICT_VALENCES
from .elements import element_symbol
from .rdkit_io import _diagnose_v2000, _iter_sdf_blocks

__all__ = [
    "Fragment",
    "annotate_fragment",
    "edm_fixed_state",
    "flow_fixed_state",
    "fragment_match",
    "fragment_sizes",
    "kabsch_rmsd",
    "load_fragment",
    "parse_add_atoms",
    "read_fragment_file",
]

#: The SDF property of every molecule grown around a fragment: RMSD (Angstrom) of its fragment atoms
#: to the fragment after the best rigid superposition.
RMSD_PROPERTY = "moldiff_fragment_rmsd"
#: The SDF property naming the fragment's atoms in the molecule: ``"1-M"`` (1-based, as SDF atom numbers).
ATOMS_PROPERTY = "moldiff_fragment_atoms"


@dataclass(frozen=True)
class Fragment:
    """The fixed atoms of a sampling job, all pieces together (see the module docstring).

    Attributes:
        atomic_numbers: ``[M]`` int64.
        formal_charges: ``[M]`` int64.
        positions: ``[M, 3]`` float64 Angstrom, as given.
        bonds: ``[B, 3]`` int64 rows ``(i, j, class)``, ``i < j``, classes of
            :data:`~moldiff.molecules.bond_metrics.BOND_CLASSES` (1..4; aromatic as RDKit perceives it).
        kekule_bonds: the same bonds with Kekulé classes (1..3), or ``None`` when RDKit cannot kekulize them.
        pieces: ``[M]`` int64, the piece of every atom (``0..P-1``).
        names: ``[P]`` where each piece came from (``"frag.sdf, record 1 ('title')"``).
        mol: the RDKit molecule of all pieces (atoms in this order, the bonds above, one 3D conformer),
            the query of :func:`fragment_match`.
    """

    atomic_numbers: np.ndarray
    formal_charges: np.ndarray
    positions: np.ndarray
    bonds: np.ndarray
    kekule_bonds: np.ndarray | None
    pieces: np.ndarray
    names: tuple[str, ...]
    mol: Any

    @property
    def num_atoms(self) -> int:
        """``M``, the number of fixed atoms."""
        return int(len(self.atomic_numbers))

    @property
    def num_pieces(self) -> int:
        return len(self.names)

    @property
    def label(self) -> str:
        """Where the fragment came from, for messages (its pieces' names joined by ``+``)."""
        return " + ".join(self.names)

    def bond_matrix(self, kekule: bool = False) -> np.ndarray:
        """``[M, M]`` int64 symmetric bond classes (0: not bonded)."""
        rows = self.kekule_bonds if kekule else self.bonds
        m = np.zeros((self.num_atoms, self.num_atoms), dtype=np.int64)
        if rows is not None and len(rows):
            m[rows[:, 0], rows[:, 1]] = rows[:, 2]
            m[rows[:, 1], rows[:, 0]] = rows[:, 2]
        return m

    def saturated(self) -> np.ndarray:
        """``[M]`` bool: atoms with no room for another bond, their valence (the sum of their bond
        orders in the fragment, aromatic 1.5) above the largest closed-shell valence of their element
        and charge minus one (:data:`~moldiff.molecules.bond_metrics.STRICT_VALENCES`): every
        hydrogen, a carbon with four bonds, a pyridine nitrogen. A molecule grows from the others."""
        valence = np.zeros(self.num_atoms)
        for i, j, c in self.bonds.tolist():
            valence[i] += BOND_ORDERS[c]
            valence[j] += BOND_ORDERS[c]
        out = np.zeros(self.num_atoms, dtype=bool)
        for a, (z, q) in enumerate(zip(self.atomic_numbers.tolist(), self.formal_charges.tolist())):
            allowed = STRICT_VALENCES.get(int(z), {}).get(int(q))
            out[a] = allowed is not None and valence[a] > max(allowed) - 1
        return out

    def check_elements(self, atom_types: Sequence[str]) -> np.ndarray:
        """Vocabulary index of every atom, ``[M]``.

        Raises:
            FragmentError: an element outside ``atom_types`` (naming it and its piece).
        """
        index = {s: k for k, s in enumerate(atom_types)}
        out = np.empty(self.num_atoms, dtype=np.int64)
        for a, z in enumerate(self.atomic_numbers.tolist()):
            symbol = element_symbol(int(z))
            if symbol not in index:
                raise FragmentError(
                    f"{self.names[self.pieces[a]]}: element {symbol} (atom {self._local(a) + 1}) is not one this "
                    f"model generates ({', '.join(atom_types)})"
                )
            out[a] = index[symbol]
        return out

    def _local(self, a: int) -> int:
        """The position of atom ``a`` within its piece."""
        return int(a - np.flatnonzero(self.pieces == self.pieces[a])[0])


# ------------------------------------------------------------------------------------------------
# reading


def _record_name(path: Path, number: int, title: str) -> str:
    title = header_text(title, 60) if title else ""
    return f"{path}, record {number}" + (f" ({title!r})" if title else "")


def read_fragment_file(path: str | os.PathLike) -> list[tuple[Any, str]]:
    """The pieces of an SDF or MOL file (``.gz`` too), one per record: ``[(rdkit.Chem.Mol, name)]``.

    Records are read as written: hydrogens kept, no sanitization (bond orders and charges as in the
    file), and checked by :func:`check_piece`.

    Raises:
        FragmentError: a missing, unreadable or empty file, an XYZ file (no bonds), or a bad record.
    """
    from rdkit import Chem, rdBase

    path = Path(path)
    if not path.is_file():
        raise FragmentError(f"fragment file not found: {path}" + (" (a folder)" if path.is_dir() else ""))
    if path.name.lower().endswith((".xyz", ".xyz.gz")):
        raise FragmentError(f"{path}: a fragment is read from an SDF or MOL file, with its bonds; XYZ has none")
    pieces = []
    for number, block, problem in _iter_sdf_blocks(path):
        if block is None:
            raise FragmentError(f"{_record_name(path, number, '')}: {problem}")
        title = block.splitlines()[0].strip() if block.strip() else ""
        name = _record_name(path, number, title)
        diagnosis = _diagnose_v2000(block)
        if diagnosis is not None:
            raise FragmentError(f"{name}: {diagnosis[1]}")
        with rdBase.BlockLogs():
            try:
                mol = Chem.MolFromMolBlock(block, sanitize=False, removeHs=False, strictParsing=True)
            except Exception as exc:  # noqa: BLE001 - some parse failures raise instead of returning None
                raise FragmentError(f"{name}: RDKit could not parse the record ({exc})") from None
        if mol is None:
            raise FragmentError(f"{name}: RDKit could not parse the record")
        pieces.append((check_piece(mol, name), name))
    if not pieces:
        raise FragmentError(f"{path}: empty: the file holds no molecule record")
    return pieces


def check_piece(mol, name: str):
    """``mol`` if it can be a piece of a fragment, else a :class:`FragmentError` naming ``name``.

    A piece has at least one atom, known elements, one 3D conformer with finite coordinates (not a 2D
    drawing: RDKit reads it as 3D, and with 3 atoms or more not every z is 0) and is one connected piece
    by its bonds.
    """
    from rdkit import Chem

    n = mol.GetNumAtoms()
    if n == 0:
        raise FragmentError(f"{name}: no atoms")
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() < 1:
            raise FragmentError(f"{name}: unknown element {atom.GetSymbol()!r} (atom {atom.GetIdx() + 1})")
    if mol.GetNumConformers() == 0:
        raise FragmentError(f"{name}: no coordinates; a fragment is held fixed in 3D, give its 3D conformer")
    pos = np.asarray(mol.GetConformer().GetPositions(), dtype=np.float64)
    if not np.isfinite(pos).all():
        k = int(np.argwhere(~np.isfinite(pos))[0, 0])
        raise FragmentError(f"{name}: non-finite coordinates for atom {k + 1}")
    flat = n >= 3 and not np.any(pos[:, 2])
    if not mol.GetConformer().Is3D() or flat:
        why = "all z coordinates are 0" if flat else "a 2D mol block"
        raise FragmentError(f"{name}: no 3D coordinates ({why}); give the fragment's 3D conformer")
    pieces = Chem.GetMolFrags(mol, asMols=False, sanitizeFrags=False)
    if len(pieces) > 1:
        sizes = ", ".join(str(len(p)) for p in pieces[:6]) + (", ..." if len(pieces) > 6 else "")
        raise FragmentError(
            f"{name}: disconnected: {len(pieces)} pieces by its bonds ({sizes} atoms) where one was expected; "
            "give pieces to link as separate records or files"
        )
    return mol


def _bond_classes(mol, name: str) -> tuple[np.ndarray, np.ndarray | None, Any]:
    """``(bonds [B, 3], kekule bonds [B, 3] or None, the molecule with perceived aromaticity)`` of a piece."""
    from rdkit import Chem, rdBase

    perceived = Chem.Mol(mol)
    # aromaticity as RDKit perceives it, without the clean-up step that rewrites charges and bonds
    ops = Chem.SanitizeFlags.SANITIZE_ALL ^ Chem.SanitizeFlags.SANITIZE_CLEANUP
    try:
        with rdBase.BlockLogs():
            Chem.SanitizeMol(perceived, ops)
    except Exception:  # noqa: BLE001 - a piece that does not sanitize (a cut ring) keeps its bonds as written
        perceived = Chem.Mol(mol)
        perceived.UpdatePropertyCache(strict=False)
    kinds = {
        Chem.BondType.SINGLE: 1,
        Chem.BondType.DOUBLE: 2,
        Chem.BondType.TRIPLE: 3,
        Chem.BondType.AROMATIC: AROMATIC,
    }
    rows = []
    for bond in perceived.GetBonds():
        i, j = sorted((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()))
        kind = AROMATIC if bond.GetIsAromatic() else kinds.get(bond.GetBondType())
        if kind is None:
            raise FragmentError(
                f"{name}: bond {i + 1}-{j + 1} is of type {bond.GetBondType()}; fragments take "
                f"{', '.join(BOND_CLASSES[1:])} bonds"
            )
        rows.append((i, j, kind))
    bonds = np.array(rows, dtype=np.int64).reshape(-1, 3)
    kekule = bonds.copy()
    if (bonds[:, 2] == AROMATIC).any():
        try:
            k = Chem.RWMol(perceived)
            with rdBase.BlockLogs():
                Chem.Kekulize(k, clearAromaticFlags=True)
            kekule = np.array(
                [
                    (*sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx())), int(b.GetBondTypeAsDouble()))
                    for b in k.GetBonds()
                ],
                dtype=np.int64,
            ).reshape(-1, 3)
        except Exception:  # noqa: BLE001 - no Kekulé structure (a cut aromatic ring)
            kekule = None
    return bonds, kekule, perceived


def load_fragment(fragment: Any) -> Fragment:
    """A :class:`Fragment` from what ``sample(fragment=...)`` and ``--fragment`` take.

    Args:
        fragment: an RDKit molecule with a 3D conformer, an SDF / MOL file (every record a piece), a
            :class:`Fragment`, or a list of these (their pieces linked, in order).

    Raises:
        FragmentError: naming the file and record (or the position in the list) of a bad piece.
    """
    from rdkit import Chem

    if isinstance(fragment, Fragment):
        return fragment
    items = list(fragment) if isinstance(fragment, (list, tuple)) else [fragment]
    if not items:
        raise FragmentError("the fragment list is empty")
    pieces: list[tuple[Any, str]] = []
    for k, item in enumerate(items):
        if isinstance(item, Fragment):  # its pieces again, in order (each connected: GetMolFrags keeps them)
            parts = Chem.GetMolFrags(item.mol, asMols=True, sanitizeFrags=False) if item.num_pieces > 1 else [item.mol]
            pieces += list(zip(parts, item.names))
            continue
        if isinstance(item, (str, os.PathLike)):
            pieces += read_fragment_file(item)
            continue
        if hasattr(item, "GetAtoms"):
            title = item.GetProp("_Name") if item.HasProp("_Name") else ""
            name = f"fragment {k + 1}" + (f" ({header_text(title, 60)!r})" if title else "")
            pieces.append((check_piece(item, name), name))
            continue
        raise FragmentError(
            f"fragment {k + 1}: expected an RDKit molecule, an SDF file or a list of them, got {type(item).__name__}"
        )
    z, q, pos, piece, bonds, kekule, names = [], [], [], [], [], [], []
    combined = None
    offset = 0
    for p, (mol, name) in enumerate(pieces):
        b, kb, perceived = _bond_classes(mol, name)
        z.append([a.GetAtomicNum() for a in mol.GetAtoms()])
        q.append([a.GetFormalCharge() for a in mol.GetAtoms()])
        pos.append(np.asarray(mol.GetConformer().GetPositions(), dtype=np.float64))
        piece.append(np.full(mol.GetNumAtoms(), p))
        bonds.append(b + [offset, offset, 0])
        kekule.append(None if kb is None else kb + [offset, offset, 0])
        names.append(name)
        combined = Chem.Mol(perceived) if combined is None else Chem.CombineMols(combined, perceived)
        offset += mol.GetNumAtoms()
    positions = np.concatenate(pos)
    combined = Chem.Mol(combined)
    for atom in combined.GetAtoms():  # a query atom with radicals would match only atoms with as many
        atom.SetNumRadicalElectrons(0)  # (a cut atom stays a radical only until the molecule grows from it)
    combined.RemoveAllConformers()
    conf = Chem.Conformer(offset)
    conf.SetPositions(np.ascontiguousarray(positions))
    conf.Set3D(True)
    combined.AddConformer(conf, assignId=True)
    return Fragment(
        atomic_numbers=np.concatenate([np.asarray(v, dtype=np.int64) for v in z]),
        formal_charges=np.concatenate([np.asarray(v, dtype=np.int64) for v in q]),
        positions=positions,
        bonds=np.concatenate(bonds).astype(np.int64),
        kekule_bonds=None if any(k is None for k in kekule) else np.concatenate(kekule).astype(np.int64),
        pieces=np.concatenate(piece).astype(np.int64),
        names=tuple(names),
        mol=combined,
    )


# ------------------------------------------------------------------------------------------------
# sizes


def parse_add_atoms(text: str | Sequence[int] | int | None) -> tuple[int, int] | None:
    """``"3-6"`` -> ``(3, 6)``, ``"4"`` -> ``(4, 4)``; a pair or an int as it is (``None`` for none).

    Raises:
        InputError (FragmentError): malformed, negative or reversed.
    """
    if text is None:
        return None
    if isinstance(text, str):
        lo, sep, hi = text.strip().partition("-")
        try:
            pair = (int(lo), int(hi) if sep else int(lo))
        except ValueError:
            raise FragmentError(f"--add-atoms expects A-B or A (atoms to add, e.g. 3-6), got {text!r}") from None
    elif isinstance(text, (int, np.integer)):
        pair = (int(text), int(text))
    else:
        values = [int(v) for v in text]
        if len(values) != 2:
            raise FragmentError(f"add_atoms expects (a, b), the fewest and most atoms to add, got {text!r}")
        pair = (values[0], values[1])
    if pair[0] < 0 or pair[1] < pair[0]:
        raise FragmentError(f"add_atoms ({pair[0]}-{pair[1]}) must be 0 <= a <= b")
    return pair


def fragment_sizes(
    histogram,
    fragment: Fragment,
    num: int,
    seed: int = 0,
    *,
    num_atoms: int | Sequence[int] | None = None,
    add_atoms: tuple[int, int] | str | None = None,
) -> torch.Tensor:
    """Sizes ``[num]`` of molecules grown around ``fragment``.

    ``num_atoms`` fixes them (each at least the fragment's ``M`` atoms); ``add_atoms=(a, b)`` adds a
    number of atoms drawn uniformly from ``a..b``; with neither, sizes come from the training
    histogram given ``N > M``. Draws use the job's size stream ``(seed, 0)``, so they depend on the
    seed only.

    Args:
        histogram: the model's :class:`~moldiff.molecules.model.SizeHistogram` (``model.num_atoms``).

    Raises:
        FragmentError: the fragment has more atoms than asked for, or than any training molecule.
    """
    m = fragment.num_atoms
    if num < 1:
        raise FragmentError(f"num must be at least 1, got {num}")
    if num_atoms is not None and add_atoms is not None:
        raise FragmentError("give num_atoms (the molecules' size) or add_atoms (atoms to add), not both")
    g = torch.Generator().manual_seed(item_seed(seed, 0, "sizes"))
    if num_atoms is not None:
        sizes = torch.as_tensor(num_atoms, dtype=torch.long).reshape(-1)
        if sizes.numel() == 1:
            sizes = sizes.expand(num).clone()
        if sizes.numel() != num:
            raise FragmentError(f"num_atoms has {sizes.numel()} entries for {num} molecules")
        small = int(sizes.min())
        if small < m:
            raise FragmentError(f"{fragment.label}: the fragment has {m} atoms, more than num_atoms={small}")
    elif add_atoms is not None:
        lo, hi = parse_add_atoms(add_atoms)
        sizes = m + torch.randint(lo, hi + 1, (num,), generator=g)
    else:
        try:
            sizes = histogram.sample(num, g, at_least=m + 1).cpu()
        except ValueError as err:
            raise FragmentError(
                f"{fragment.label}: the fragment has {m} atoms and {err}; pass num_atoms or add_atoms"
            ) from None
    if bool((sizes < 2).any()):
        raise FragmentError(
            f"{fragment.label}: every molecule needs at least 2 atoms (a fragment of 1 atom grows by 1 or more)"
        )
    return sizes


# ------------------------------------------------------------------------------------------------
# the fixed part of a packed batch


def _fixed_rows(fragment: Fragment, sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(starts [B], rows [B * M])``: each molecule's first row and the rows of its fragment atoms."""
    sizes = torch.as_tensor(sizes, dtype=torch.long).cpu()
    starts = torch.cumsum(sizes, 0) - sizes
    rows = (starts[:, None] + torch.arange(fragment.num_atoms)[None, :]).reshape(-1)
    return starts, rows


def edm_fixed_state(model, fragment: Fragment, sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``known`` and ``mask`` of :meth:`MoleculeDiffusion.sample_states` for a packed batch.

    Args:
        model: a :class:`~moldiff.molecules.model.MoleculeDiffusion`.
        fragment: the fixed atoms.
        sizes: ``[B]`` molecule sizes (each at least ``M``).

    Returns:
        ``(known [N, 3 + F] float32, mask [N] bool)``: the clean state of the fragment atoms
        (:meth:`~moldiff.molecules.model.MoleculeDiffusion.encode`) on the first ``M`` rows of every molecule.

    Raises:
        FragmentError: an element outside the model's vocabulary, or a formal charge (the EDM-style
            models generate neutral atoms).
    """
    types = torch.as_tensor(fragment.check_elements(model.atom_types))
    charged = np.flatnonzero(fragment.formal_charges)
    if charged.size:
        a = int(charged[0])
        raise FragmentError(
            f"{fragment.names[fragment.pieces[a]]}: atom {fragment._local(a) + 1} has formal charge "
            f"{int(fragment.formal_charges[a]):+d}; this model generates neutral atoms only (the bond-aware qm9 takes charges)"
        )
    device = model.atomic_numbers.device
    m = fragment.num_atoms
    pos = torch.as_tensor(fragment.positions, dtype=torch.float32, device=device)
    types = types.to(device)
    if m == 1:  # encode centres coordinates in a zero-CoM space, which needs two points: the atom twice
        pos, types = pos.repeat(2, 1), types.repeat(2)
    x = model.encode(pos, types, torch.zeros(len(types), dtype=torch.long, device=device), 1)[:m]
    _, rows = _fixed_rows(fragment, sizes)
    total = int(torch.as_tensor(sizes).sum())
    known = torch.zeros(total, x.shape[1], dtype=torch.float32, device=device)
    known[rows.to(device)] = x.repeat(len(sizes), 1)
    mask = torch.zeros(total, dtype=torch.bool, device=device)
    mask[rows.to(device)] = True
    return known, mask


def flow_fixed_state(model, fragment: Fragment, sizes: torch.Tensor, *, saturated: bool = True) -> tuple[dict, dict]:
    """The ``known`` and ``masks`` of :meth:`MoleculeFlow.sample_states` for a packed batch.

    Args:
        model: a :class:`~moldiff.molecules.flow_model.MoleculeFlow`.
        fragment: the fixed atoms.
        sizes: ``[B]`` molecule sizes (each at least ``M``).
        saturated: also fix "no bond" between every saturated fragment atom (:meth:`Fragment.saturated`)
            and every generated atom, so that the molecule grows from the fragment's free valences only.

    Returns:
        ``({"pos": [N, 3] Angstrom, "type": [N], "charge": [N], "bond": [P]}, masks)``, the pairs in
        :func:`moldiff.core.upper_triangle_edges` order (as the model lists them); fixed: the fragment
        atoms' coordinates, types and charges, and the class of every pair of atoms of one piece.

    Raises:
        FragmentError: an element, formal charge or bond class the model does not have.
    """
    types = torch.as_tensor(fragment.check_elements(model.atom_types))
    charge_index = {int(v): k for k, v in enumerate(model.stats["charge_values"])}
    charges = []
    for a, c in enumerate(fragment.formal_charges.tolist()):
        if int(c) not in charge_index:
            raise FragmentError(
                f"{fragment.names[fragment.pieces[a]]}: atom {fragment._local(a) + 1} has formal charge {int(c):+d}; "
                f"this model generates {sorted(charge_index)}"
            )
        charges.append(charge_index[int(c)])
    classes = list(model.stats["bond_classes"])
    kekule = "aromatic" not in classes
    if kekule and fragment.kekule_bonds is None:
        raise FragmentError(
            f"{fragment.label}: aromatic bonds RDKit cannot kekulize, and this model generates Kekulé bonds only"
        )
    matrix = torch.as_tensor(fragment.bond_matrix(kekule=kekule))
    if matrix.numel() and int(matrix.max()) >= len(classes):
        raise FragmentError(f"{fragment.label}: a bond class this model does not have ({classes})")
    device = model.atomic_numbers.device
    sizes = torch.as_tensor(sizes, dtype=torch.long).cpu()
    b, m = len(sizes), fragment.num_atoms
    starts, rows = _fixed_rows(fragment, sizes)
    total = int(sizes.sum())
    batch = torch.repeat_interleave(torch.arange(b), sizes)
    pairs = upper_triangle_edges(batch, b)
    li, lj = pairs[0] - starts[batch[pairs[0]]], pairs[1] - starts[batch[pairs[0]]]
    piece = torch.as_tensor(fragment.pieces)
    inside = (li < m) & (lj < m)
    fixed_pair = inside.clone()
    fixed_pair[inside] = piece[li[inside]] == piece[lj[inside]]
    bond = torch.zeros(pairs.shape[1], dtype=torch.long)
    bond[fixed_pair] = matrix[li[fixed_pair], lj[fixed_pair]]
    if saturated:  # no bond between a saturated fragment atom and a generated one (fragment atoms come first: li < lj)
        full = torch.as_tensor(fragment.saturated())
        fixed_pair |= (li < m) & (lj >= m) & full[li.clamp(max=m - 1)]
    pos = torch.zeros(total, 3)
    pos[rows] = torch.as_tensor(fragment.positions - fragment.positions.mean(0), dtype=torch.float32).repeat(b, 1)
    node = torch.zeros(total, dtype=torch.bool)
    node[rows] = True
    atom_type = torch.zeros(total, dtype=torch.long)
    atom_type[rows] = types.repeat(b)
    charge = torch.zeros(total, dtype=torch.long)
    charge[rows] = torch.as_tensor(charges, dtype=torch.long).repeat(b)
    known = {"pos": pos, "type": atom_type, "charge": charge, "bond": bond}
    masks = {"pos": node, "type": node, "charge": node, "bond": fixed_pair}
    return {k: v.to(device) for k, v in known.items()}, {k: v.to(device) for k, v in masks.items()}


# ------------------------------------------------------------------------------------------------
# checking what came out


def kabsch_rmsd(a: Any, b: Any) -> float:
    """RMSD (Angstrom) between two ``[M, 3]`` point sets after the best rigid superposition (Kabsch
    1976: rotation and translation, no reflection); 0 for one point.

    >>> import numpy as np
    >>> x = np.array([[0.0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3]])
    >>> c, s = np.cos(0.7), np.sin(0.7)
    >>> round(kabsch_rmsd(x @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T + 5.0, x), 10)
    0.0
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"point sets must both be [M, 3], got {x.shape} and {y.shape}")
    x, y = x - x.mean(0), y - y.mean(0)
    u, _, vt = np.linalg.svd(x.T @ y)
    d = np.ones(3)
    d[-1] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rot = (u * d) @ vt  # x @ rot best matches y
    return float(np.sqrt(((x @ rot - y) ** 2).sum(-1).mean()))


def annotate_fragment(mol, fragment: Fragment):
    """Set ``moldiff_fragment_rmsd`` (:func:`kabsch_rmsd` of the molecule's first ``M`` atoms to the
    fragment, Angstrom) and ``moldiff_fragment_atoms`` (``"1-M"``) on a grown molecule; returns it."""
    pos = np.asarray(mol.GetConformer().GetPositions(), dtype=np.float64)[: fragment.num_atoms]
    mol.SetProp(RMSD_PROPERTY, f"{kabsch_rmsd(pos, fragment.positions):.3e}")
    mol.SetProp(ATOMS_PROPERTY, f"1-{fragment.num_atoms}")
    return mol


def _skeleton(mol):
    """A copy with every bond single and nothing aromatic (matching by elements and connectivity)."""
    from rdkit import Chem

    out = Chem.RWMol(mol)
    for bond in out.GetBonds():
        bond.SetBondType(Chem.BondType.SINGLE)
        bond.SetIsAromatic(False)
    for atom in out.GetAtoms():
        atom.SetIsAromatic(False)
    out = out.GetMol()
    out.UpdatePropertyCache(strict=False)
    return out


def fragment_match(mol, fragment: Fragment | Any, *, bond_orders: bool = True, max_matches: int = 1000) -> tuple:
    """Atom indices of ``mol`` matching the fragment's atoms in order (RDKit's ``GetSubstructMatch``
    with the fragment as the query, every formal charge equal), or ``()`` when it holds none.

    Args:
        mol: an RDKit molecule (sanitized for aromatic bonds to be perceived as the fragment's).
        fragment: a :class:`Fragment` (or anything :func:`load_fragment` takes).
        bond_orders: match bond orders too (else elements, charges and connectivity only: for
            bonds perceived from distances, whose orders are not the model's output).
        max_matches: matches examined for equal charges.
    """
    fragment = load_fragment(fragment)
    query, target = (fragment.mol, mol) if bond_orders else (_skeleton(fragment.mol), _skeleton(mol))
    charges = fragment.formal_charges.tolist()
    for match in target.GetSubstructMatches(query, uniquify=False, maxMatches=max_matches):
        if all(target.GetAtomWithIdx(i).GetFormalCharge() == c for i, c in zip(match, charges)):
            return tuple(match)
    return ()
