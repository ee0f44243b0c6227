"""Any moldiff molecule dataset as a ``torch_geometric.data.Dataset`` (a view: nothing is copied or
written to disk).

:class:`PyGMoleculeDataset` wraps :class:`~moldiff.molecules.qm9.QM9Dataset`,
:class:`~moldiff.molecules.sdf.SDFDataset`, :class:`~moldiff.molecules.bond_data.BondedQM9Dataset` or
any dataset whose items are :class:`~moldiff.molecules.graph.MoleculeGraph` /
:class:`~moldiff.molecules.bond_data.BondedMoleculeGraph`: item ``i`` is
:func:`~moldiff.molecules.pyg.to_pyg_data` of the wrapped dataset's item ``i``, so
``torch_geometric.loader.DataLoader`` batches it, PyG's transforms apply, and slicing / shuffling /
``index_select`` work as for any PyG dataset.

This module imports torch_geometric (``import moldiff.molecules`` does not: the name is lazy).

Example::

    from torch_geometric.loader import DataLoader

    ds = PyGMoleculeDataset(BondedQM9Dataset("train"))
    ds[0]                     # Data(pos=[18, 3], z=[18], charges=[18], atom_types=[18], edge_index=[2, 34], ...)
    loader = DataLoader(ds[:1000], batch_size=64, shuffle=True)
"""

from __future__ import annotations

from typing import Any, Callable

from torch_geometric.data import Data
from torch_geometric.data import Dataset as _Dataset

from .pyg import to_pyg_data

__all__ = ["PyGMoleculeDataset", "as_pyg_dataset"]


class PyGMoleculeDataset(_Dataset):
    """A moldiff molecule dataset seen as a ``torch_geometric.data.Dataset``.

    Args:
        dataset: a map-style dataset of :class:`~moldiff.molecules.graph.MoleculeGraph` (any moldiff
            molecule dataset).
        transform: a PyG transform applied to every item on access (default: none).

    Attributes:
        dataset: the wrapped dataset (its ``vocabulary``, ``ids``, ... stay reachable).
    """

    def __init__(self, dataset: Any, transform: Callable | None = None) -> None:
        self.dataset = dataset
        super().__init__(root=None, transform=transform)

    def len(self) -> int:
        return len(self.dataset)

    def get(self, idx: int) -> Data:
        return to_pyg_data(self.dataset[int(idx)])

    @property
    def vocabulary(self) -> tuple[str, ...] | None:
        """The wrapped dataset's atom-type vocabulary (``atom_types`` index into it)."""
        return getattr(self.dataset, "vocabulary", None)

    def __repr__(self) -> str:
        return f"PyGMoleculeDataset({self.dataset!r}, {len(self)} molecules)"


def as_pyg_dataset(dataset: Any, transform: Callable | None = None) -> PyGMoleculeDataset:
    """:class:`PyGMoleculeDataset` of ``dataset``."""
    return PyGMoleculeDataset(dataset, transform=transform)
