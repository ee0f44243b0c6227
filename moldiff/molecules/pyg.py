"""Molecules as torch_geometric graphs: RDKit molecules and moldiff batches to and from ``torch_geometric``
``Data`` / ``Batch``, and the adapter that lets both molecule models take a PyG batch.

One molecule is a ``torch_geometric.data.Data`` with (names as in ``torch_geometric.datasets.QM9``
where it has them)::

    pos        [n, 3]  float32  coordinates, Å
    z          [n]     long     atomic numbers
    charges    [n]     long     formal charges (when known: RDKit molecules, bonded graphs)
    atom_types [n]     long     indices into a vocabulary (moldiff graphs, or ``vocabulary=`` given)
    edge_index [2, 2B] long     the B bonds in both directions: the B pairs (i, j) in moldiff's order,
                                then the same pairs reversed (only for molecules with bonds)
    edge_attr  [2B, 4] float32  one-hot bond type: single, double, triple, aromatic (QM9's columns)
    y          [1, P]  float32  molecular properties (when present)
    idx        [1]     long     the molecule's identifier (e.g. QM9's GDB-9 index, when present)

A ``Batch`` of them is what ``torch_geometric.loader.DataLoader`` yields; ``batch`` and ``ptr`` are
PyG's. On the way back (:func:`batch_from_pyg`, :func:`from_pyg`) any PyG layout of the bonds is
read: each edge is taken as the unordered pair ``{i, j}``, the first time it appears (so sorted or
interleaved edge lists and one-direction lists all work), and ``edge_attr`` may also be ``[E]``
integer classes of :data:`~moldiff.molecules.bond_metrics.BOND_CLASSES` (1 single ... 4 aromatic) or
``[E, 5]`` one-hot with class 0 (not bonded) first.

A graph with ``edge_index`` comes back as a :class:`~moldiff.molecules.bond_data.BondedBatch` (every
atom pair's bond class, as the bond-aware model ``MoleculeFlow`` needs), one without as a
:class:`~moldiff.molecules.graph.PackedMolecules`. The models convert at their entry
(:func:`as_molecule_batch`): ``training_loss`` and ``denoise_batch`` of both
:class:`~moldiff.molecules.model.MoleculeDiffusion` and :class:`~moldiff.molecules.flow_model.MoleculeFlow`
take either.

torch_geometric is imported inside the functions (pure PyG is enough: no torch-scatter or
torch-cluster); :class:`~moldiff.molecules.pyg_dataset.PyGMoleculeDataset` shows any moldiff molecule
dataset as a ``torch_geometric.data.Dataset``.

Example::

    from torch_geometric.loader import DataLoader
    from moldiff.molecules import BondedQM9Dataset, PyGMoleculeDataset

    loader = DataLoader(PyGMoleculeDataset(BondedQM9Dataset("test")), batch_size=64)
    batch = next(iter(loader))                   # a torch_geometric Batch
    loss, _ = moldiff.load_model("qm9").training_loss(batch)
    mols = from_pyg(batch)                       # RDKit molecules with their bonds and charges
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

import numpy as np
import torch

from moldiff._optional import require
from moldiff.errors import InputError

from .bond_data import BondedBatch, BondedMoleculeGraph, collate_bonded
from .bond_metrics import AROMATIC, BOND_CLASSES, CHARGE_VALUES, bonded_molecule, mol_bond_arrays
from .elements import atomic_number, element_symbol
from .graph import MoleculeGraph, PackedMolecules, collate_molecules
from .rdkit_io import build_molecule, mol_to_arrays

__all__ = [
    "PYG_BOND_TYPES",
    "as_molecule_batch",
    "batch_from_pyg",
    "from_pyg",
    "is_pyg",
    "to_pyg",
    "to_pyg_data",
]

#: The columns of ``edge_attr``: bond classes 1..4 of :data:`~moldiff.molecules.bond_metrics.BOND_CLASSES`.
PYG_BOND_TYPES: tuple[str, ...] = BOND_CLASSES[1:]


def _pyg():
    return require("torch_geometric.data", package="torch-geometric", purpose="moldiff's PyG conversion")


def is_pyg(obj: Any) -> bool:
    """Whether ``obj`` is a torch_geometric ``Data`` or ``Batch``, without importing torch_geometric
    (an object of it cannot exist before it is imported)."""
    module = sys.modules.get("torch_geometric.data")
    return module is not None and isinstance(obj, (module.Data, module.Batch))


# ------------------------------------------------------------------------------------------------
# to PyG


def _vocabulary_numbers(vocabulary: Any) -> list[int]:
    """Atomic numbers of a vocabulary given as element symbols or atomic numbers (a list or a tensor)."""
    items = vocabulary.tolist() if isinstance(vocabulary, torch.Tensor) else list(vocabulary)
    return [atomic_number(v) if isinstance(v, str) else int(v) for v in items]


def _types(z: torch.Tensor, vocabulary: Any) -> torch.Tensor:
    """Indices of the atoms' elements in the vocabulary, ``[n]``."""
    numbers = _vocabulary_numbers(vocabulary)
    table = torch.full((119,), -1, dtype=torch.long)
    table[torch.tensor(numbers, dtype=torch.long)] = torch.arange(len(numbers))
    types = table[z.cpu().long()]
    if bool((types < 0).any()):
        missing = sorted({element_symbol(int(e)) for e in z.cpu()[types < 0].unique().tolist()})
        raise InputError(f"elements {missing} are not in the vocabulary {[element_symbol(n) for n in numbers]}")
    return types.to(z.device)


def _edges(bond_index: torch.Tensor, bond_types: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``edge_index [2, 2B]`` (pairs, then reversed) and one-hot ``edge_attr [2B, 4]`` of ``B`` bonds."""
    bond_index = bond_index.long().reshape(2, -1)
    edge_index = torch.cat([bond_index, bond_index.flip(0)], dim=1)
    onehot = torch.nn.functional.one_hot(bond_types.long() - 1, len(PYG_BOND_TYPES)).to(torch.float32)
    return edge_index, torch.cat([onehot, onehot])


def to_pyg_data(item: Any, *, vocabulary: Sequence[str] | None = None, conf_id: int = -1):
    """One molecule as a ``torch_geometric.data.Data`` (fields in the module docstring).

    Args:
        item: an RDKit molecule with a conformer (its atoms as they are: add implicit hydrogens first
            with ``Chem.AddHs(mol, addCoords=True)`` to keep them), a
            :class:`~moldiff.molecules.graph.MoleculeGraph` or a
            :class:`~moldiff.molecules.bond_data.BondedMoleculeGraph`.
        vocabulary: element symbols; when given, ``atom_types`` are indices into it (for an RDKit
            molecule; a moldiff graph has its own).
        conf_id: the RDKit conformer (default: the first).

    Raises:
        InputError: an element outside ``vocabulary``; ValueError: a molecule without a conformer.
    """
    data_module = _pyg()
    fields: dict[str, Any] = {}
    if hasattr(item, "GetAtoms"):
        z, pos = mol_to_arrays(item, conf_id)
        _, q, index, classes = mol_bond_arrays(item)
        fields["pos"] = torch.as_tensor(pos, dtype=torch.float32)
        fields["z"] = torch.as_tensor(z, dtype=torch.long)
        fields["charges"] = torch.as_tensor(q, dtype=torch.long)
        if vocabulary is not None:
            fields["atom_types"] = _types(fields["z"], vocabulary)
        fields["edge_index"], fields["edge_attr"] = _edges(torch.as_tensor(index.T), torch.as_tensor(classes))
    elif isinstance(item, MoleculeGraph):
        fields["pos"] = item.pos.to(torch.float32)
        fields["z"] = item.atomic_numbers.long()
        if item.charges is not None:
            fields["charges"] = item.charges.long()
        fields["atom_types"] = item.atom_types.long()
        if isinstance(item, BondedMoleculeGraph):
            fields["edge_index"], fields["edge_attr"] = _edges(item.bond_index, item.bond_types)
        if item.properties is not None:
            fields["y"] = item.properties.to(torch.float32).reshape(1, -1)
        if item.index is not None:
            fields["idx"] = torch.tensor([int(item.index)], dtype=torch.long)
    else:
        raise TypeError(f"expected an RDKit Mol, a MoleculeGraph or a BondedMoleculeGraph, got {type(item).__name__}")
    return data_module.Data(**fields)


def to_pyg(items: Any, *, vocabulary: Sequence[str] | None = None):
    """Molecules as one ``torch_geometric.data.Batch``.

    Args:
        items: RDKit molecules (a list, or one), moldiff graphs (:class:`~moldiff.molecules.graph.MoleculeGraph`,
            :class:`~moldiff.molecules.bond_data.BondedMoleculeGraph`), or a moldiff batch
            (:class:`~moldiff.molecules.graph.PackedMolecules`, :class:`~moldiff.molecules.bond_data.BondedBatch`).
        vocabulary: see :func:`to_pyg_data` (RDKit molecules only).

    Returns:
        A ``Batch`` on the device of the input. A moldiff batch comes back equal from :func:`batch_from_pyg`.
    """
    data_module = _pyg()
    if isinstance(items, PackedMolecules):
        items = items.unbatch()
    elif hasattr(items, "GetAtoms") or isinstance(items, MoleculeGraph):
        items = [items]
    items = list(items)
    if not items:
        raise InputError("to_pyg needs at least one molecule")
    return data_module.Batch.from_data_list([to_pyg_data(m, vocabulary=vocabulary) for m in items])


# ------------------------------------------------------------------------------------------------
# from PyG


def _as_batch(data):
    """A ``Data`` as a ``Batch`` of one (a ``Batch`` as it is)."""
    data_module = _pyg()
    return data if isinstance(data, data_module.Batch) else data_module.Batch.from_data_list([data])


def _field(batch, name: str):
    return getattr(batch, name, None) if name in batch.keys() else None


def _bond_classes(edge_attr: torch.Tensor | None, num_edges: int) -> torch.Tensor:
    """Bond classes ``[E]`` (0..4) of ``edge_attr``: ``[E, 4]`` one-hot (QM9's columns), ``[E, 5]`` one-hot
    with class 0 first, or ``[E]`` / ``[E, 1]`` integer classes."""
    if edge_attr is None:
        raise InputError("the graph has edge_index but no edge_attr: the bond types are unknown")
    a = edge_attr
    if a.dim() == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.dim() == 1:
        classes = a.round().long() if a.is_floating_point() else a.long()
    elif a.dim() == 2 and a.shape[1] == len(PYG_BOND_TYPES):
        classes = torch.where(a.abs().sum(1) > 0, a.argmax(1) + 1, torch.zeros_like(a[:, 0], dtype=torch.long))
    elif a.dim() == 2 and a.shape[1] == len(BOND_CLASSES):
        classes = a.argmax(1)
    else:
        raise InputError(
            f"edge_attr must be [E, {len(PYG_BOND_TYPES)}] one-hot ({', '.join(PYG_BOND_TYPES)}), "
            f"[E, {len(BOND_CLASSES)}] one-hot or [E] classes, got {tuple(a.shape)}"
        )
    if classes.shape[0] != num_edges:
        raise InputError(f"edge_attr has {classes.shape[0]} rows for {num_edges} edges")
    if bool(((classes < 0) | (classes > AROMATIC)).any()):
        raise InputError(f"bond classes must lie in 0..{AROMATIC} ({', '.join(BOND_CLASSES)})")
    return classes


def _unique_bonds(edge_index: torch.Tensor, classes: torch.Tensor, num_nodes: int):
    """The bonds ``(i [B], j [B], class [B])``, ``i < j``, of an edge list: every edge read as the pair
    ``{i, j}``, kept where it first appears; class-0 edges dropped."""
    src, dst = edge_index[0].long(), edge_index[1].long()
    if bool((src == dst).any()):
        raise InputError("edge_index has a self-loop (an atom bonded to itself)")
    lo, hi = torch.minimum(src, dst), torch.maximum(src, dst)
    keep = classes > 0
    lo, hi, classes = lo[keep], hi[keep], classes[keep]
    key = lo * num_nodes + hi
    unique, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((unique.numel(),), key.numel(), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(key.numel()), reduce="amin")
    order = first.sort().values
    return lo[order], hi[order], classes[order]


def batch_from_pyg(batch: Any, *, vocabulary: Sequence[str] | Sequence[int] | torch.Tensor | None = None):
    """A torch_geometric ``Batch`` (or ``Data``) as a moldiff batch.

    Args:
        batch: the PyG graphs (fields in the module docstring; ``pos`` and ``z`` required).
        vocabulary: element symbols or atomic numbers the model's ``atom_types`` index (a model's
            ``atomic_numbers``); used where the graphs carry no ``atom_types``, and then required.

    Returns:
        :class:`~moldiff.molecules.bond_data.BondedBatch` when the graphs have ``edge_index`` (formal
        charges 0 where ``charges`` is absent), else :class:`~moldiff.molecules.graph.PackedMolecules`;
        on the device of the input.

    Raises:
        InputError: a missing field, an element outside the vocabulary, a malformed edge list, a charge
            outside :data:`~moldiff.molecules.bond_metrics.CHARGE_VALUES` in a bonded graph.
    """
    batch = _as_batch(batch)
    device = batch.pos.device if _field(batch, "pos") is not None else torch.device("cpu")
    batch = batch.cpu()
    pos, z = _field(batch, "pos"), _field(batch, "z")
    if pos is None or z is None:
        raise InputError("a PyG molecule needs pos [n, 3] and z [n] (atomic numbers)")
    z = z.long()
    types = _field(batch, "atom_types")
    if types is None:
        if vocabulary is None:
            raise InputError("the graphs have no atom_types: give the vocabulary (e.g. the model's atomic_numbers)")
        types = _types(z, vocabulary)
    charges, properties, ids = _field(batch, "charges"), _field(batch, "y"), _field(batch, "idx")
    ptr = batch.ptr.tolist()
    num_graphs = len(ptr) - 1
    if properties is not None:
        properties = properties.to(torch.float32).reshape(num_graphs, -1)
    edge_index = _field(batch, "edge_index")
    if edge_index is None:
        graphs = [
            MoleculeGraph(
                pos[ptr[b] : ptr[b + 1]],
                z[ptr[b] : ptr[b + 1]],
                types[ptr[b] : ptr[b + 1]].long(),
                None if properties is None else properties[b],
                None if charges is None else charges[ptr[b] : ptr[b + 1]].long(),
                None if ids is None else int(ids[b]),
            )
            for b in range(num_graphs)
        ]
        return collate_molecules(graphs).to(device)
    charges = torch.zeros_like(z) if charges is None else charges.long()
    if not bool(torch.isin(charges, torch.tensor(CHARGE_VALUES)).all()):
        raise InputError(f"formal charges {sorted(set(charges.tolist()))} outside {CHARGE_VALUES}")
    i, j, c = _unique_bonds(edge_index, _bond_classes(_field(batch, "edge_attr"), edge_index.shape[1]), z.numel())
    owner = batch.batch[i]
    if not bool((batch.batch[j] == owner).all()):
        raise InputError("edge_index joins atoms of two different molecules")
    starts = np.concatenate([[0], np.cumsum(torch.bincount(owner, minlength=num_graphs).numpy())]).tolist()
    graphs = []
    for b in range(num_graphs):
        s, t = slice(ptr[b], ptr[b + 1]), slice(starts[b], starts[b + 1])
        graphs.append(
            BondedMoleculeGraph(
                pos=pos[s],
                atomic_numbers=z[s],
                atom_types=types[s].long(),
                properties=None if properties is None else properties[b],
                charges=charges[s],
                index=None if ids is None else int(ids[b]),
                bond_index=torch.stack([i[t], j[t]]) - ptr[b],
                bond_types=c[t],
            )
        )
    return collate_bonded(graphs).to(device)


def from_pyg(batch: Any, *, sanitize: bool = False, perceive: str | None = "rdkit") -> list:
    """The RDKit molecules of a torch_geometric ``Batch`` (or ``Data``), with their coordinates.

    Args:
        batch: the PyG graphs (``pos``, ``z``; ``charges``, ``edge_index`` + ``edge_attr`` when known).
        sanitize: run ``Chem.SanitizeMol`` and let its error propagate (default: False, as
            :func:`~moldiff.molecules.bond_metrics.bonded_molecule`: the molecule exactly as given).
        perceive: for graphs without ``edge_index``, how bonds are found: ``"rdkit"``
            (``rdDetermineBonds``), ``"edm"`` (EDM's distance tables) or ``None`` (atoms only)
            (default: rdkit).

    Returns:
        A list of ``rdkit.Chem.Mol``, one per graph, every hydrogen an atom.

    Raises:
        InputError: a malformed edge list; ValueError: ``perceive="rdkit"`` finds no bonds for a graph,
            or (``sanitize``) a molecule does not sanitise.
    """
    batch = _as_batch(batch).cpu()
    pos, z = _field(batch, "pos"), _field(batch, "z")
    if pos is None or z is None:
        raise InputError("a PyG molecule needs pos [n, 3] and z [n] (atomic numbers)")
    charges = _field(batch, "charges")
    charges = torch.zeros_like(z) if charges is None else charges
    ptr = batch.ptr.tolist()
    edge_index = _field(batch, "edge_index")
    if edge_index is None:
        return [
            build_molecule(
                z[ptr[b] : ptr[b + 1]],
                pos[ptr[b] : ptr[b + 1]],
                bonds=perceive,
                formal_charges=charges[ptr[b] : ptr[b + 1]],
                total_charge=int(charges[ptr[b] : ptr[b + 1]].sum()),
                sanitize=sanitize,
            )
            for b in range(len(ptr) - 1)
        ]
    i, j, c = _unique_bonds(edge_index, _bond_classes(_field(batch, "edge_attr"), edge_index.shape[1]), z.numel())
    owner = batch.batch[i]
    mols = []
    for b in range(len(ptr) - 1):
        s, mine = slice(ptr[b], ptr[b + 1]), owner == b
        rows = torch.stack([i[mine] - ptr[b], j[mine] - ptr[b], c[mine]], dim=1)
        mols.append(bonded_molecule(z[s], charges[s], pos[s].double(), rows.numpy(), sanitize=sanitize))
    return mols


def as_molecule_batch(batch: Any, vocabulary: Any = None, *, bonded: bool = False):
    """The molecule models' entry: a torch_geometric ``Batch`` / ``Data`` becomes a moldiff batch
    (:func:`batch_from_pyg`), anything else passes unchanged.

    Args:
        batch: a moldiff batch or PyG graphs.
        vocabulary: the model's ``atomic_numbers`` (maps ``z`` to ``atom_types`` where the graphs have none).
        bonded: the model needs bonds (a :class:`~moldiff.molecules.bond_data.BondedBatch`).

    Raises:
        InputError: ``bonded`` and the PyG graphs have no ``edge_index``.
    """
    if not is_pyg(batch):
        return batch
    out = batch_from_pyg(batch, vocabulary=vocabulary)
    if bonded and not isinstance(out, BondedBatch):
        raise InputError("this model generates bonds: the PyG graphs need edge_index and edge_attr (their bonds)")
    return out
