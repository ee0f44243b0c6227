"""QM9 with bonds and formal charges: training data for models that generate atom types, charges, bond
orders on every atom pair and coordinates jointly (MiDi, EQGAT-diff, SemlaFlow, FlowMol).

Derivation (:func:`derive_bonds`), per molecule, from its DFT geometry and its GDB-17 SMILES:

1. Connectivity from the coordinates, RDKit's ``rdDetermineBonds.DetermineConnectivity``: first its
   default (covalent radii + 0.45 Å), then, while the graph is not the SMILES's, the covalent-radius
   variant with ``covFactor`` 1.15, 1.2 and 1.1 (the default joins the bridgeheads of strained
   cages such as bicyclo[1.1.1]pentanes, 1.8-1.9 Å apart: 5.5 % of QM9; 1.15 separates them; two
   cages with a 1.71-1.77 Å bond need 1.2, one with a 1.74 Å non-bond 1.1).
2. If that graph is the graph of the GDB SMILES with hydrogens (same number of bonds and a
   substructure match, so isomorphic), the bond orders and formal charges are copied from the SMILES
   through the match (what ``AllChem.AssignBondOrdersFromTemplate`` does, with a single match):
   method ``"template"``.
3. Otherwise (the geometry's graph is not the SMILES's), bond orders and charges are perceived from
   the geometry alone, xyz2mol (``rdDetermineBonds.DetermineBondOrders(charge=0)``): ``"xyz2mol"``.
4. The molecule is sanitized; it must have no radical, no implicit hydrogen, net charge 0 and charges
   in :data:`CHARGE_VALUES`, else it is excluded with a reason (:data:`EXCLUSION_REASONS`).

Measured on 3,000 random QM9 molecules (canonical SMILES, no stereo, vs the canonical GDB SMILES):
template 3,000 / 3,000 agree; xyz2mol on the same connectivity 2,994 agree, 6 differ (zwitterions and
ylides written as another charge-separated or neutral resonance form); xyz2mol on RDKit's default
connectivity fails on 165 (the cages). Hence the template, with xyz2mol only as the fallback.
On all 130,831 molecules: 130,829 template (every one equal to its canonical GDB SMILES), 2 xyz2mol
(GDB 133857 and 133859, whose DFT geometry is another isomer than their SMILES), none excluded.

Bond classes (:data:`~moldiff.molecules.bond_metrics.BOND_CLASSES`): 0 none, 1 single, 2 double,
3 triple, 4 aromatic. Aromatic is RDKit's aromaticity after sanitization (its default model).
Each bond also stores the Kekulé order RDKit assigns (classes 1-3 only); ``BondedQM9Dataset(...,
kekulize=True)`` serves those instead (MiDi's QM9 has no aromatic bonds: it reads the Kekulé bonds
of ``gdb9.sdf`` unsanitized). Formal charges are classes over :data:`CHARGE_VALUES` ``(-1, 0, +1)``:
class = charge + 1.

The processed arrays of the whole source are derived once (8 minutes for QM9 on one busy core, one
process) and cached (63 MB) as ``qm9_bonds_<source>_v<version>_rdkit-<version>.npz`` in
:func:`moldiff.hub.cache_dir`; later loads take a fraction of a second.

Example::

    ds = BondedQM9Dataset("train")                 # the first time: derives and caches all of QM9
    batch = next(iter(ds.loader(batch_size=64, shuffle=True)))
    batch.edge_types                               # [E] class of every atom pair, upper_triangle_edges order
    priors = ds.marginals()                        # atom types, charges, bond classes, p(N)

A batch of two water molecules (the pairs of each molecule, row-major, and their classes):

    >>> import torch
    >>> water = BondedMoleculeGraph(pos=torch.zeros(3, 3), atomic_numbers=torch.tensor([8, 1, 1]),
    ...     atom_types=torch.tensor([3, 0, 0]), bond_index=torch.tensor([[0, 0], [1, 2]]), bond_types=torch.tensor([1, 1]))
    >>> batch = collate_bonded([water, water])
    >>> batch.edge_index.tolist()
    [[0, 0, 1, 3, 3, 4], [1, 2, 2, 4, 5, 5]]
    >>> batch.edge_types.tolist()
    [1, 1, 0, 1, 1, 0]
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from moldiff.core.categorical import edge_id
from moldiff.hub import cache_dir as _cache_dir
from moldiff.train.checkpoint import save_npz_atomic

from .bond_metrics import BOND_CLASSES, CHARGE_VALUES, bonded_molecule, canonical_smiles, mol_bond_arrays
from .dataset import MoleculeDataset
from .elements import QM9_ATOM_TYPES, atomic_number
from .graph import MoleculeGraph, PackedMolecules
from .qm9 import QM9_PROPERTIES, edm_split_indices, load_qm9
from .training_data import training_half_rows

__all__ = [
    "BOND_CLASSES",
    "BOND_DATA_VERSION",
    "CHARGE_VALUES",
    "DERIVATION_METHODS",
    "EXCLUSION_REASONS",
    "BondDerivationError",
    "BondedBatch",
    "BondedMoleculeGraph",
    "BondedQM9Dataset",
    "DerivedBonds",
    "collate_bonded",
    "dense_bond_matrix",
    "derive_bonded_arrays",
    "derive_bonds",
    "load_bonded_qm9",
    "training_bonded_smiles",
]

#: Bump when the derivation or the cached layout changes (it keys the cache file).
BOND_DATA_VERSION = 1
#: How a molecule's bond orders and charges were found (the ``method`` code is the index).
DERIVATION_METHODS = ("template", "xyz2mol")
#: Why a molecule can be excluded.
EXCLUSION_REASONS = (
    "smiles_unparsable",  # the source SMILES does not parse
    "no_bond_orders",  # no template match and xyz2mol found no assignment
    "radical",  # the result has unpaired electrons
    "implicit_hydrogens",  # the result needs hydrogens the geometry does not have
    "net_charge",  # formal charges do not sum to 0
    "charge_out_of_range",  # a formal charge outside CHARGE_VALUES
    "element_out_of_vocabulary",
    "round_trip_failed",  # the stored bonds do not rebuild a sanitizable molecule
)

#: Connectivity perceptions tried in order for the template (see the module docstring); the first whose
#: graph is the SMILES's is used, so a wrong one can never be chosen. xyz2mol uses the first two.
_CONNECTIVITY = (
    {},
    {"useVdw": True, "covFactor": 1.15},
    {"useVdw": True, "covFactor": 1.2},
    {"useVdw": True, "covFactor": 1.1},
)


class BondDerivationError(ValueError):
    """A molecule whose bonds and charges could not be derived; ``reason`` is one of :data:`EXCLUSION_REASONS`."""

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


class DerivedBonds(NamedTuple):
    """Bonds and charges of one molecule, in its own atom order.

    Attributes:
        formal_charges: ``[n]`` int64.
        bond_index: ``[B, 2]`` int64 atom pairs, ``i < j``, sorted.
        bond_types: ``[B]`` int64 classes 1..4 (aromatic 4).
        kekule_types: ``[B]`` int64 classes 1..3 (RDKit's Kekulé structure).
        method: ``"template"`` or ``"xyz2mol"``.
    """

    formal_charges: np.ndarray
    bond_index: np.ndarray
    bond_types: np.ndarray
    kekule_types: np.ndarray
    method: str


def _atoms_only(z: np.ndarray, pos: np.ndarray):
    from rdkit import Chem

    mol = Chem.RWMol()
    for zi in z.tolist():
        mol.AddAtom(Chem.Atom(int(zi)))
    conf = Chem.Conformer(len(z))
    conf.SetPositions(np.ascontiguousarray(pos, dtype=np.float64))
    conf.Set3D(True)
    mol.AddConformer(conf, assignId=True)
    return mol.GetMol()


def _skeleton(template):
    """The template's bond graph: every bond single, atoms neutral and not aromatic (a match query)."""
    from rdkit import Chem

    query = Chem.RWMol(template)
    for bond in query.GetBonds():
        bond.SetBondType(Chem.BondType.SINGLE)
        bond.SetIsAromatic(False)
    for atom in query.GetAtoms():
        atom.SetFormalCharge(0)
        atom.SetIsAromatic(False)
    query = query.GetMol()
    query.UpdatePropertyCache(strict=False)
    return query


def _copy_orders(template, mol, match):
    """``mol`` with the bond orders, aromatic flags and charges of ``template`` (``match[t]``: the atom
    of ``mol`` that template atom ``t`` is); what ``AllChem.AssignBondOrdersFromTemplate`` does, with one match."""
    from rdkit import Chem

    out = Chem.RWMol(mol)
    for bond in template.GetBonds():
        target = out.GetBondBetweenAtoms(match[bond.GetBeginAtomIdx()], match[bond.GetEndAtomIdx()])
        target.SetBondType(bond.GetBondType())
        target.SetIsAromatic(bond.GetIsAromatic())
    for atom in template.GetAtoms():
        target = out.GetAtomWithIdx(match[atom.GetIdx()])
        target.SetFormalCharge(atom.GetFormalCharge())
        target.SetIsAromatic(atom.GetIsAromatic())
        target.SetNumExplicitHs(0)
        target.SetNoImplicit(True)  # every hydrogen is an atom of the geometry
    return out.GetMol()


def derive_bonds(atomic_numbers: Any, positions: Any, smiles: str | None = None) -> DerivedBonds:
    """Bond orders and formal charges of a neutral molecule from its geometry (and SMILES, if given).

    See the module docstring for the procedure.

    Args:
        atomic_numbers: ``[n]``, hydrogens included.
        positions: ``[n, 3]`` Å.
        smiles: the molecule's SMILES (for QM9 the GDB-17 one), used as the template; ``None``:
            xyz2mol only.

    Raises:
        BondDerivationError: with the reason.
    """
    from rdkit import Chem, rdBase
    from rdkit.Chem import rdDetermineBonds

    z = np.asarray(atomic_numbers, dtype=np.int64).reshape(-1)
    pos = np.asarray(positions, dtype=np.float64)
    base = _atoms_only(z, pos)
    out, method, error = None, None, "no connectivity tried"
    with rdBase.BlockLogs():
        template = None
        if smiles is not None:
            template = Chem.MolFromSmiles(str(smiles))
            if template is None:
                raise BondDerivationError("smiles_unparsable", f"RDKit cannot parse {smiles!r}")
            template = Chem.AddHs(template)
            if sorted(a.GetAtomicNum() for a in template.GetAtoms()) != sorted(z.tolist()):
                template = None  # not the same atoms: the geometry decides
        query = None if template is None else _skeleton(template)
        connected = []
        for options in _CONNECTIVITY:
            if query is None and len(connected) == 2:  # no template: the two xyz2mol needs
                break
            mol = Chem.Mol(base)
            rdDetermineBonds.DetermineConnectivity(mol, **options)
            connected.append(mol)
            if query is None or mol.GetNumBonds() != query.GetNumBonds():
                continue
            match = mol.GetSubstructMatch(query)  # same bond count + a match: the graphs are isomorphic
            if not match:
                error = "template: the geometry's bond graph is not the SMILES's"
                continue
            out = _copy_orders(template, mol, match)
            try:
                Chem.SanitizeMol(out)
                method = "template"
                break
            except Exception as exc:  # MolSanitizeException
                out, error = None, f"template: {exc}"
        if out is None:
            for mol in (connected[1], connected[0]):  # covFactor 1.15, then RDKit's default
                try:
                    mol = Chem.Mol(mol)
                    rdDetermineBonds.DetermineBondOrders(mol, charge=0)
                    Chem.SanitizeMol(mol)
                    out, method = mol, "xyz2mol"
                    break
                except Exception as exc:  # ValueError / MolSanitizeException
                    error = f"xyz2mol: {exc}"
        if out is None:
            raise BondDerivationError("no_bond_orders", error)
    atoms = list(out.GetAtoms())
    if any(a.GetNumRadicalElectrons() for a in atoms):
        raise BondDerivationError(
            "radical", f"radical electrons on atoms {[a.GetIdx() for a in atoms if a.GetNumRadicalElectrons()]}"
        )
    if any(a.GetTotalNumHs(includeNeighbors=False) for a in atoms):
        raise BondDerivationError(
            "implicit_hydrogens", "the assignment needs hydrogens that are not atoms of the geometry"
        )
    z2, q, index, types = mol_bond_arrays(out)
    if not np.array_equal(z2, z):
        raise RuntimeError("RDKit reordered the atoms")  # never expected: a bug, not a data problem
    if int(q.sum()) != 0:
        raise BondDerivationError("net_charge", f"formal charges sum to {int(q.sum())}")
    if not np.isin(q, CHARGE_VALUES).all():
        raise BondDerivationError(
            "charge_out_of_range", f"formal charges {sorted(set(q.tolist()))} outside {CHARGE_VALUES}"
        )
    _, _, kindex, kek = mol_bond_arrays(out, kekulize=True)
    if not np.array_equal(kindex, index):
        raise RuntimeError("kekulization changed the bonded pairs")
    return DerivedBonds(q, index, types, kek, method)


# ------------------------------------------------------------------------------------------------
# the cache of a whole source


def _source_key(source: str | os.PathLike) -> str:
    if str(source) == "qm9pack":
        version = importlib.metadata.version("qm9pack") if importlib.util.find_spec("qm9pack") else "none"
        return f"qm9pack-{version}"
    path = Path(source).expanduser()
    stat = path.stat()
    digest = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return f"{path.stem}-{digest}"


def _cache_path(source: str | os.PathLike, cache_dir: str | os.PathLike | None) -> Path:
    import rdkit

    return _cache_dir(cache_dir) / f"qm9_bonds_{_source_key(source)}_v{BOND_DATA_VERSION}_rdkit-{rdkit.__version__}.npz"


def derive_bonded_arrays(data: dict[str, np.ndarray], rows: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Derive the bonds and charges of the molecules of :func:`~moldiff.molecules.qm9.load_qm9` arrays.

    Args:
        data: the source arrays (``num_atoms``, ``atomic_numbers``, ``positions``, ``index`` and,
            if present, ``smiles``).
        rows: only these source rows (sorted), e.g. a few hundred for a test (default: all; the
            content of the cache of :func:`load_bonded_qm9`).

    Returns:
        The arrays :func:`load_bonded_qm9` returns.
    """
    num_atoms = data["num_atoms"].astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(num_atoms)])
    z_all, pos_all = data["atomic_numbers"], data["positions"]
    smiles_all = data.get("smiles")
    vocab = {atomic_number(s) for s in QM9_ATOM_TYPES}
    todo = range(len(num_atoms)) if rows is None else sorted(int(r) for r in rows)
    kept, q_parts, bi_parts, bt_parts, bk_parts, nb, methods, smiles = [], [], [], [], [], [], [], []
    excluded_rows, reasons, details = [], [], []
    for k in todo:
        z = z_all[offsets[k] : offsets[k + 1]].astype(np.int64)
        pos = pos_all[offsets[k] : offsets[k + 1]]
        try:
            if not set(z.tolist()) <= vocab:
                raise BondDerivationError("element_out_of_vocabulary", f"elements {sorted(set(z.tolist()) - vocab)}")
            d = derive_bonds(z, pos, None if smiles_all is None else smiles_all[k])
            smi = canonical_smiles(bonded_molecule(z, d.formal_charges, None, (d.bond_index.T, d.bond_types)))
            if smi is None:
                raise BondDerivationError("round_trip_failed", "the stored bonds and charges do not sanitize")
        except BondDerivationError as exc:
            excluded_rows.append(k)
            reasons.append(exc.reason)
            details.append(exc.detail[:200])
            continue
        kept.append(k)
        q_parts.append(d.formal_charges)
        bi_parts.append(d.bond_index)
        bt_parts.append(d.bond_types)
        bk_parts.append(d.kekule_types)
        nb.append(len(d.bond_types))
        methods.append(DERIVATION_METHODS.index(d.method))
        smiles.append(smi)
    rows_arr = np.array(kept, dtype=np.int64)
    keep = np.zeros(len(num_atoms), dtype=bool)
    keep[rows_arr] = True
    atom_keep = np.repeat(keep, num_atoms)
    return {
        "rows": rows_arr.astype(np.int32),
        "index": data["index"][rows_arr].astype(np.int32),
        "num_atoms": num_atoms[rows_arr].astype(np.int32),
        "atomic_numbers": z_all[atom_keep].astype(np.uint8),
        "positions": pos_all[atom_keep].astype(np.float32),
        "formal_charges": np.concatenate(q_parts or [np.zeros(0)]).astype(np.int8),
        "num_bonds": np.array(nb, dtype=np.int32),
        "bond_index": np.concatenate(bi_parts or [np.zeros((0, 2))]).astype(np.uint8),
        "bond_types": np.concatenate(bt_parts or [np.zeros(0)]).astype(np.uint8),
        "kekule_types": np.concatenate(bk_parts or [np.zeros(0)]).astype(np.uint8),
        "method": np.array(methods, dtype=np.uint8),
        "smiles": np.array(smiles, dtype=str),
        "excluded_rows": np.array(excluded_rows, dtype=np.int32),
        "excluded_index": data["index"][np.array(excluded_rows, dtype=np.int64)].astype(np.int32),
        "excluded_reasons": np.array(reasons, dtype="<U32"),
        "excluded_details": np.array(details, dtype="<U200"),
        "num_source_molecules": np.array(len(num_atoms)),
        "version": np.array(BOND_DATA_VERSION),
    }


def load_bonded_qm9(
    source: str | os.PathLike = "qm9pack",
    cache_dir: str | os.PathLike | None = None,
    refresh: bool = False,
    arrays: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """QM9 with bonds and charges as packed arrays, derived once and cached.

    Args:
        source: as :func:`moldiff.molecules.qm9.load_qm9` (``"qm9pack"``, ``.npz``, xyz files). (default: ``"qm9pack"``)
        cache_dir: cache folder (default: :func:`moldiff.hub.cache_dir`).
        refresh: derive again even when the cache exists.
        arrays: the source already loaded by ``load_qm9`` (saves a load when the cache must be built).

    Returns:
        dict of numpy arrays over the ``M`` kept molecules (sorted by source row), their ``N`` atoms
        and ``B`` bonds: ``rows [M]`` (row in the source), ``index [M]`` (GDB-9 id), ``num_atoms [M]``,
        ``atomic_numbers [N]``, ``positions [N, 3]`` (Å), ``formal_charges [N]``, ``num_bonds [M]``,
        ``bond_index [B, 2]`` (atom pairs within each molecule, ``i < j``), ``bond_types [B]``
        (1..4), ``kekule_types [B]`` (1..3), ``method [M]`` (index into :data:`DERIVATION_METHODS`),
        ``smiles [M]`` (:func:`~moldiff.molecules.bond_metrics.canonical_smiles` of the stored bonds);
        the excluded molecules as ``excluded_rows``, ``excluded_index``, ``excluded_reasons``,
        ``excluded_details``; and ``num_source_molecules``.
    """
    path = _cache_path(source, cache_dir)
    if path.is_file() and not refresh:
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    start = time.perf_counter()
    data = load_qm9(source, cache_dir=cache_dir) if arrays is None else arrays
    out = derive_bonded_arrays(data)
    save_npz_atomic(path, out)
    reasons, counts = np.unique(out["excluded_reasons"], return_counts=True)
    why = ", ".join(f"{r} {c}" for r, c in zip(reasons.tolist(), counts.tolist())) or "none"
    print(
        f"moldiff: derived bonds and charges of {len(data['num_atoms']):,} QM9 molecules ({source}) in "
        f"{time.perf_counter() - start:.0f} s: {len(out['rows']):,} kept, {len(out['excluded_rows']):,} excluded "
        f"({why}); cached to {path}",
        file=sys.stderr,
    )
    return out


# ------------------------------------------------------------------------------------------------
# molecules and batches


@dataclass
class BondedMoleculeGraph(MoleculeGraph):
    """One molecule with bonds: :class:`~moldiff.molecules.graph.MoleculeGraph` plus

    Attributes:
        charges: ``[n]`` long formal charges (-1, 0, +1).
        charge_classes: ``[n]`` long indices into :data:`CHARGE_VALUES` (charge + 1).
        bond_index: ``[2, B]`` long bonded atom pairs, ``i < j``.
        bond_types: ``[B]`` long bond classes 1..4 (:data:`BOND_CLASSES`).
    """

    charge_classes: torch.Tensor | None = None
    bond_index: torch.Tensor | None = None
    bond_types: torch.Tensor | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bond_index is None:
            self.bond_index = torch.zeros(2, 0, dtype=torch.long)
            self.bond_types = torch.zeros(0, dtype=torch.long)
        if (
            self.bond_index.dim() != 2
            or self.bond_index.shape[0] != 2
            or self.bond_types.shape != self.bond_index.shape[1:]
        ):
            raise ValueError(
                f"bond_index must be [2, B] and bond_types [B], got {tuple(self.bond_index.shape)} and "
                f"{tuple(self.bond_types.shape)}"
            )
        if self.charges is None:
            self.charges = torch.zeros(self.num_atoms, dtype=torch.long)
        if self.charge_classes is None:
            self.charge_classes = self.charges + 1

    @property
    def bonds(self) -> torch.Tensor:
        """``[B, 3]`` rows ``(i, j, class)``."""
        return torch.cat([self.bond_index.t(), self.bond_types[:, None]], dim=1)

    def bond_matrix(self) -> torch.Tensor:
        """Dense symmetric ``[n, n]`` long class matrix (0 off the bonds)."""
        return dense_bond_matrix(self.num_atoms, self.bond_index, self.bond_types)

    def permute(self, perm: torch.Tensor) -> "BondedMoleculeGraph":
        """The same molecule with atoms reordered as ``new[k] = old[perm[k]]``."""
        perm = torch.as_tensor(perm, dtype=torch.long)
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(perm.numel())
        i, j = inverse[self.bond_index[0]], inverse[self.bond_index[1]]
        return BondedMoleculeGraph(
            pos=self.pos[perm],
            atomic_numbers=self.atomic_numbers[perm],
            atom_types=self.atom_types[perm],
            properties=self.properties,
            charges=self.charges[perm],
            index=self.index,
            charge_classes=self.charge_classes[perm],
            bond_index=torch.stack([torch.minimum(i, j), torch.maximum(i, j)]),
            bond_types=self.bond_types.clone(),
        )


def dense_bond_matrix(num_atoms: int, bond_index: Any, bond_types: Any) -> torch.Tensor:
    """``[n, n]`` symmetric long class matrix from ``bond_index [2, B]`` and ``bond_types [B]``."""
    bond_index = torch.as_tensor(bond_index, dtype=torch.long)
    bond_types = torch.as_tensor(bond_types, dtype=torch.long)
    m = torch.zeros(num_atoms, num_atoms, dtype=torch.long)
    m[bond_index[0], bond_index[1]] = bond_types
    m[bond_index[1], bond_index[0]] = bond_types
    return m


@dataclass
class BondedBatch(PackedMolecules):
    """A packed batch of :class:`BondedMoleculeGraph` (``B`` molecules, ``N`` atoms).

    Attributes (beyond :class:`~moldiff.molecules.graph.PackedMolecules`: ``pos [N, 3]``,
    ``atomic_numbers [N]``, ``atom_types [N]``, ``batch [N]``, ``num_atoms [B]``, ``ptr [B + 1]``,
    ``charges [N]`` formal charges, ``index [B]``):
        charge_classes: ``[N]`` long, indices into :data:`CHARGE_VALUES`.
        edge_index: ``[2, E]`` every atom pair ``i < j`` of every molecule,
            :func:`moldiff.core.categorical.upper_triangle_edges` ``(batch, B)``.
        edge_types: ``[E]`` long bond class of each of those pairs (0: not bonded); pair ``{i, j}``
            is at ``edge_id(i, j, batch)``.
        bond_index: ``[2, NB]`` the bonded pairs only (batch atom indices) and ``bond_types [NB]``.
    """

    charge_classes: torch.Tensor | None = None
    edge_index: torch.Tensor | None = None
    edge_types: torch.Tensor | None = None
    bond_index: torch.Tensor | None = None
    bond_types: torch.Tensor | None = None

    def unbatch(self) -> list[BondedMoleculeGraph]:
        """The molecules of the batch (atom indices local to each)."""
        out = []
        ptr = self.ptr.tolist()
        owner = self.batch[self.bond_index[0]]
        counts = torch.bincount(owner, minlength=self.num_graphs).tolist()
        starts = np.concatenate([[0], np.cumsum(counts)]).tolist()
        index = None if self.index is None else self.index.tolist()
        for b in range(self.num_graphs):
            s, t = slice(ptr[b], ptr[b + 1]), slice(starts[b], starts[b + 1])
            out.append(
                BondedMoleculeGraph(
                    pos=self.pos[s],
                    atomic_numbers=self.atomic_numbers[s],
                    atom_types=self.atom_types[s],
                    properties=None if self.properties is None else self.properties[b],
                    charges=self.charges[s],
                    index=None if index is None else index[b],
                    charge_classes=self.charge_classes[s],
                    bond_index=self.bond_index[:, t] - ptr[b],
                    bond_types=self.bond_types[t],
                )
            )
        return out


_LOCAL_PAIRS: dict[int, torch.Tensor] = {}


def _upper_triangle_edges(num_atoms: list[int], offsets: list[int]) -> torch.Tensor:
    """:func:`~moldiff.core.categorical.upper_triangle_edges` of a batch from per-size cached
    ``triu_indices`` (the same pairs in the same order; a few small ops instead of ``[E]``-sized
    ones, so it stays fast when the cores are busy)."""
    parts = []
    for n, offset in zip(num_atoms, offsets):
        local = _LOCAL_PAIRS.get(n)
        if local is None:
            local = _LOCAL_PAIRS[n] = torch.triu_indices(n, n, 1)  # row-major: (0,1), (0,2), ..., (1,2), ...
        parts.append(local + offset)
    return torch.cat(parts, dim=1) if parts else torch.zeros(2, 0, dtype=torch.long)


def collate_bonded(molecules: Sequence[BondedMoleculeGraph]) -> BondedBatch:
    """Pack bonded molecules into a :class:`BondedBatch` (a ``DataLoader`` ``collate_fn``).

    The class of every atom pair ``i < j`` of each molecule is written into ``edge_types`` in the
    order of :func:`~moldiff.core.categorical.upper_triangle_edges`, vectorised (about 1 ms for 64
    QM9 molecules).
    """
    if len(molecules) == 0:
        raise ValueError("collate_bonded needs at least one molecule")
    num_graphs = len(molecules)
    # index arithmetic in numpy: torch's repeat_interleave runs multi-threaded and stalls on busy cores
    sizes = np.array([m.pos.shape[0] for m in molecules], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    num_bonds = np.array([m.bond_types.shape[0] for m in molecules], dtype=np.int64)
    num_atoms, ptr = torch.from_numpy(sizes), torch.from_numpy(offsets)
    batch = torch.from_numpy(np.repeat(np.arange(num_graphs), sizes))
    bond_index = torch.cat([m.bond_index for m in molecules], dim=1) + torch.from_numpy(
        np.repeat(offsets[:-1], num_bonds)
    )
    bond_types = torch.cat([m.bond_types for m in molecules])
    edge_index = _upper_triangle_edges(sizes.tolist(), offsets.tolist())
    edge_types = torch.zeros(edge_index.shape[1], dtype=torch.long)
    edge_types[edge_id(bond_index[0], bond_index[1], batch, num_graphs)] = bond_types
    properties = None
    if all(m.properties is not None for m in molecules):
        properties = torch.stack([m.properties for m in molecules]).to(torch.float32)
    index = None
    if all(m.index is not None for m in molecules):
        index = torch.tensor([m.index for m in molecules], dtype=torch.long)
    return BondedBatch(
        pos=torch.cat([m.pos for m in molecules]).to(torch.float32),
        atomic_numbers=torch.cat([m.atomic_numbers for m in molecules]),
        atom_types=torch.cat([m.atom_types for m in molecules]),
        batch=batch,
        num_atoms=num_atoms,
        ptr=ptr,
        properties=properties,
        charges=torch.cat([m.charges for m in molecules]),
        index=index,
        charge_classes=torch.cat([m.charge_classes for m in molecules]),
        edge_index=edge_index,
        edge_types=edge_types,
        bond_index=bond_index,
        bond_types=bond_types,
    )


# ------------------------------------------------------------------------------------------------
# dataset


class BondedQM9Dataset(MoleculeDataset):
    """QM9 molecules of one EDM split with bonds and formal charges, a map-style dataset of
    :class:`BondedMoleculeGraph` (batch with :func:`collate_bonded` or ``dataset.loader``).

    Args:
        split: ``"train"``, ``"valid"``, ``"test"`` (EDM's split of the 130,831 molecules, as
            :class:`~moldiff.molecules.qm9.QM9Dataset`; excluded molecules are left out) or ``"all"``.
            (default: ``"train"``)
        source: see :func:`moldiff.molecules.qm9.load_qm9`. (default: ``"qm9pack"``)
        kekulize: serve RDKit's Kekulé bond orders (classes 0-3) instead of aromatic bonds (class 4).
            (default: False)
        cache_dir: cache folder (see :func:`load_bonded_qm9`).
        arrays: already loaded :func:`load_bonded_qm9` arrays (several splits from one load), or
            :func:`derive_bonded_arrays` of some rows (then ``cache_key`` is ``None``).
        properties: QM9 property names (keys of :data:`~moldiff.molecules.qm9.QM9_PROPERTIES`) to
            attach to each molecule as ``properties [P]`` float32 in the stored units, read from
            ``source`` (default: none).
        half: ``None`` (the whole split), ``"predictor"`` or ``"generator"``: one half of the EDM
            training split for EDM's conditional-generation protocol, the molecules of
            :func:`~moldiff.molecules.training_data.training_half_rows` applied to the 100,000
            training molecules (those whose bonds could not be derived are left out, so no molecule
            of the other half ever enters); ``split`` must be ``"train"`` (default: None).

    Attributes:
        vocabulary: ``("H", "C", "N", "O", "F")``; ``atom_types`` index into it.
        bond_classes: :data:`BOND_CLASSES` (``[:4]`` with ``kekulize``).
        charge_values: :data:`CHARGE_VALUES`.
        ids: GDB-9 indices ``[M]``; ``smiles``: canonical SMILES of the stored bonds ``[M]``;
        methods: ``[M]`` derivation method names; ``excluded``: ``{reason: count}`` for this split.
    """

    def __init__(
        self,
        split: str = "train",
        source: str | os.PathLike = "qm9pack",
        *,
        kekulize: bool = False,
        cache_dir: str | os.PathLike | None = None,
        arrays: dict[str, np.ndarray] | None = None,
        properties: Sequence[str] = (),
        half: str | None = None,
    ) -> None:
        if split not in ("train", "valid", "test", "all"):
            raise ValueError(f"split must be 'train', 'valid', 'test' or 'all', got {split!r}")
        if half is not None and split != "train":
            raise ValueError(f"half={half!r} halves EDM's training split: give split='train', not {split!r}")
        unknown = [p for p in properties if p not in QM9_PROPERTIES]
        if unknown:
            raise ValueError(f"unknown QM9 properties {unknown}; available: {list(QM9_PROPERTIES)}")
        data = load_bonded_qm9(source, cache_dir=cache_dir) if arrays is None else arrays
        total = int(data["num_source_molecules"])
        if split == "all":
            keep = np.ones(len(data["rows"]), dtype=bool)
            excluded = np.ones(len(data["excluded_rows"]), dtype=bool)
        else:
            rows = np.sort(edm_split_indices(total)[split])
            if half is not None:
                rows = rows[training_half_rows(len(rows), half)]
            keep = np.isin(data["rows"], rows)
            excluded = np.isin(data["excluded_rows"], rows)
        num_atoms = data["num_atoms"].astype(np.int64)
        num_bonds = data["num_bonds"].astype(np.int64)
        atom_keep = np.repeat(keep, num_atoms)
        bond_keep = np.repeat(keep, num_bonds)
        self.split, self.source, self.kekulize, self.half = split, str(source), bool(kekulize), half
        self.bond_classes = BOND_CLASSES[:4] if kekulize else BOND_CLASSES
        self.charge_values = CHARGE_VALUES
        self.rows = data["rows"][keep].astype(np.int64)
        self.smiles = data["smiles"][keep]
        self.methods = np.asarray(DERIVATION_METHODS)[data["method"][keep]]
        reasons, counts = np.unique(data["excluded_reasons"][excluded], return_counts=True)
        self.excluded = {str(r): int(c) for r, c in zip(reasons, counts)}
        charges = data["formal_charges"][atom_keep].astype(np.int64)
        values = None
        if properties:
            source_arrays = load_qm9(source, cache_dir=cache_dir)
            values = np.stack([np.asarray(source_arrays[p])[self.rows] for p in properties], axis=1)
        super().__init__(
            data["atomic_numbers"][atom_keep],
            data["positions"][atom_keep],
            num_atoms[keep],
            QM9_ATOM_TYPES,
            properties=values,
            property_names=tuple(properties),
            charges=charges,
            ids=data["index"][keep],
            # keys derived data such as EDM's training SMILES; arrays may hold a subset, so they get none
            cache_key=None
            if arrays is not None
            else f"qm9bonded-{_source_key(source)}-{split}{'' if half is None else '-' + half}-v{BOND_DATA_VERSION}",
        )
        self._charge_classes = charges + 1
        self._num_bonds = num_bonds[keep]
        self._bond_offsets = np.concatenate([[0], np.cumsum(self._num_bonds)])
        self._bond_index = np.ascontiguousarray(data["bond_index"][bond_keep].T.astype(np.int64))  # [2, B]
        self._bond_types = data["kekule_types" if kekulize else "bond_types"][bond_keep].astype(np.int64)

    @property
    def ids(self) -> np.ndarray:
        """GDB-9 indices of the molecules, ``[M]``."""
        return self._ids

    def __getitem__(self, i: int) -> BondedMoleculeGraph:
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"molecule index {i} out of range for {len(self)} molecules")
        i %= len(self)
        s = slice(self._offsets[i], self._offsets[i + 1])
        t = slice(self._bond_offsets[i], self._bond_offsets[i + 1])
        return BondedMoleculeGraph(
            pos=torch.from_numpy(self._pos[s].copy()),
            atomic_numbers=torch.from_numpy(self._z[s].copy()),
            atom_types=torch.from_numpy(self._types[s].copy()),
            charges=torch.from_numpy(self._charges[s].copy()),
            index=int(self._ids[i]),
            charge_classes=torch.from_numpy(self._charge_classes[s].copy()),
            bond_index=torch.from_numpy(self._bond_index[:, t].copy()),
            bond_types=torch.from_numpy(self._bond_types[t].copy()),
            properties=None if self._properties is None else torch.from_numpy(self._properties[i].copy()),
        )

    def property_values(self, name: str) -> np.ndarray:
        """Values of one of the attached properties (``properties=``) for every molecule, ``[M]``."""
        if name not in self.property_names:
            raise KeyError(
                f"property {name!r} is not attached to this dataset (properties={list(self.property_names)})"
            )
        return self._properties[:, self.property_names.index(name)]

    def loader(self, batch_size: int, shuffle: bool = False, **kwargs) -> DataLoader:
        """A ``DataLoader`` yielding :class:`BondedBatch`."""
        return DataLoader(self, batch_size=batch_size, shuffle=shuffle, collate_fn=collate_bonded, **kwargs)

    # -- marginals ---------------------------------------------------------------------------------
    def marginals(self) -> dict[str, Any]:
        """Class frequencies of this split (the priors of a categorical model use the training split's).

        Returns:
            dict with ``atom_types [5]`` (over :attr:`vocabulary`), ``charges [3]`` (over
            :data:`CHARGE_VALUES`), ``bond_types [K]`` over *all* atom pairs ``i < j`` (class 0 =
            not bonded; ``K`` = 5, or 4 with ``kekulize``), ``charges_per_atom_type [5, 3]`` (rows
            sum to 1), all float64 probabilities; ``num_atoms``: ``{n: p(N = n)}``; and the counts
            ``num_atoms_total``, ``num_pairs``, ``num_bonds``.
        """
        n_types, n_bonds = len(self.vocabulary), len(self.bond_classes)
        atoms = np.bincount(self._types, minlength=n_types).astype(np.float64)
        charges = np.bincount(self._charge_classes, minlength=len(CHARGE_VALUES)).astype(np.float64)
        joint = np.zeros((n_types, len(CHARGE_VALUES)))
        np.add.at(joint, (self._types, self._charge_classes), 1.0)
        pairs = int((self._num_atoms * (self._num_atoms - 1) // 2).sum())
        bonds = np.bincount(self._bond_types, minlength=n_bonds).astype(np.float64)
        bonds[0] = pairs - len(self._bond_types)
        sizes = self.num_atoms_histogram()
        return {
            "atom_types": atoms / atoms.sum(),
            "charges": charges / charges.sum(),
            "bond_types": bonds / pairs,
            "charges_per_atom_type": joint / np.maximum(joint.sum(1, keepdims=True), 1.0),
            "num_atoms": {n: c / len(self) for n, c in sizes.items()},
            "num_atoms_total": int(len(self._types)),
            "num_pairs": pairs,
            "num_bonds": int(len(self._bond_types)),
        }

    # ``dataset.property("gap")`` as for QM9Dataset; defined last so that the builtin ``property``
    # decorator stays usable in the class body above.
    property = property_values


def training_bonded_smiles(
    source: str | os.PathLike = "qm9pack", cache_dir: str | os.PathLike | None = None
) -> frozenset[str]:
    """The SMILES of the bonded QM9 training split, for the novelty of
    :func:`~moldiff.molecules.bond_metrics.evaluate_bonded_molecules` (same SMILES function)."""
    data = load_bonded_qm9(source, cache_dir=cache_dir)
    rows = edm_split_indices(int(data["num_source_molecules"]))["train"]
    return frozenset(data["smiles"][np.isin(data["rows"], rows)].tolist())
