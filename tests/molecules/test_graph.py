import numpy as np
import torch

from moldiff.molecules.dataset import MoleculeDataset
from moldiff.molecules.graph import MoleculeGraph, PackedMolecules, collate_molecules


def make_dataset():
    z = np.array([6, 8, 1, 1, 8, 6, 7])
    pos = np.arange(21, dtype=np.float64).reshape(7, 3)
    return MoleculeDataset(
        z,
        pos,
        [2, 3, 2],
        ("H", "C", "N", "O"),
        properties=np.array([[1.0], [2.0], [3.0]]),
        property_names=("p",),
        charges=np.array([0, 0, 0, 0, -1, 0, 1]),
        ids=np.array([10, 11, 12]),
    )


def test_collate_packs_without_padding():
    ds = make_dataset()
    batch = collate_molecules([ds[0], ds[1], ds[2]])
    assert isinstance(batch, PackedMolecules)
    assert batch.num_graphs == 3 and batch.num_atoms.tolist() == [2, 3, 2]
    assert batch.batch.tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert batch.ptr.tolist() == [0, 2, 5, 7]
    assert batch.pos.dtype == torch.float32 and batch.pos.shape == (7, 3)
    assert batch.atomic_numbers.tolist() == [6, 8, 1, 1, 8, 6, 7]
    assert batch.atom_types.tolist() == [1, 3, 0, 0, 3, 1, 2]
    assert batch.properties.shape == (3, 1) and batch.charges.tolist() == [0, 0, 0, 0, -1, 0, 1]
    assert batch.index.tolist() == [10, 11, 12]
    assert batch.one_hot(4).sum(0).tolist() == [2, 2, 1, 2]
    moved = batch.to("cpu")
    assert torch.equal(moved.pos, batch.pos)
    back = batch.unbatch()
    assert [m.num_atoms for m in back] == [2, 3, 2] and torch.equal(back[1].pos, ds[1].pos)


def test_optional_fields_dropped_when_missing():
    a = MoleculeGraph(torch.zeros(2, 3), torch.tensor([6, 8]), torch.tensor([0, 1]))
    b = MoleculeGraph(torch.ones(1, 3), torch.tensor([6]), torch.tensor([0]), charges=torch.tensor([0]))
    batch = collate_molecules([a, b])
    assert batch.charges is None and batch.properties is None and batch.index is None


def test_dataset_loader_and_histogram():
    ds = make_dataset()
    assert ds.num_atoms_histogram() == {2: 2, 3: 1}
    assert ds.atom_type_counts() == {"H": 2, "C": 2, "N": 1, "O": 2}
    batches = list(ds.loader(batch_size=2))
    assert [b.num_graphs for b in batches] == [2, 1]
    assert batches[1].batch.tolist() == [0, 0]
