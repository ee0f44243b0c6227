"""torch_geometric graphs: RDKit -> PyG -> RDKit and moldiff batch -> PyG -> moldiff batch keep everything,
the dataset view batches with PyG's loader, and both denoisers give the same output on a PyG batch as on
the equivalent moldiff batch."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from moldiff.errors import InputError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch_geometric") is None, reason="torch_geometric is not installed"
)

SMILES = ("c1ccccc1O", "C[NH3+].CC(=O)[O-]", "CC#N", "O=C1CCC(=O)N1", "c1cc[nH]c1", "C=CC(F)(F)F")


@pytest.fixture(scope="module")
def rdkit_molecules():
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mols = []
    for k, smiles in enumerate(SMILES):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        assert AllChem.EmbedMolecule(mol, randomSeed=k) == 0
        mols.append(mol)
    return mols


@pytest.fixture(scope="module")
def bonded_qm9():
    """40 QM9 molecules with bonds and charges (derived here, no cache of all of QM9)."""
    from moldiff.molecules.bond_data import BondedQM9Dataset, derive_bonded_arrays
    from moldiff.molecules.qm9 import load_qm9

    if importlib.util.find_spec("qm9pack") is None:
        pytest.skip("qm9pack is not installed")
    return BondedQM9Dataset("all", arrays=derive_bonded_arrays(load_qm9("qm9pack"), rows=list(range(0, 4000, 100))))


def _assert_batches_equal(a, b):
    assert type(a) is type(b)
    for name in a.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and torch.equal(x, y), name


def test_rdkit_to_pyg_to_rdkit_keeps_smiles_coordinates_and_charges(rdkit_molecules):
    from moldiff.molecules.bond_metrics import canonical_smiles
    from moldiff.molecules.pyg import PYG_BOND_TYPES, from_pyg, to_pyg

    batch = to_pyg(rdkit_molecules, vocabulary=("H", "C", "N", "O", "F"))
    assert batch.num_graphs == len(SMILES) and batch.edge_attr.shape[1] == len(PYG_BOND_TYPES)
    assert batch.pos.dtype == torch.float32 and int(batch.charges.abs().sum()) == 2
    back = from_pyg(batch)
    for mol, new in zip(rdkit_molecules, back):
        assert canonical_smiles(new) == canonical_smiles(mol)
        assert [a.GetFormalCharge() for a in new.GetAtoms()] == [a.GetFormalCharge() for a in mol.GetAtoms()]
        np.testing.assert_allclose(new.GetConformer().GetPositions(), mol.GetConformer().GetPositions(), atol=1e-5)
    # one molecule, and a PyG Data rather than a Batch, work the same way
    single = to_pyg(rdkit_molecules[0])
    assert canonical_smiles(from_pyg(single.get_example(0))[0]) == canonical_smiles(rdkit_molecules[0])


def test_any_layout_of_the_edges_reads_back_the_same_bonds(rdkit_molecules):
    from torch_geometric.utils import coalesce

    from moldiff.molecules.bond_metrics import canonical_smiles
    from moldiff.molecules.pyg import from_pyg, to_pyg_data

    data = to_pyg_data(rdkit_molecules[4])  # pyrrole: aromatic bonds and an N-H
    classes = data.edge_attr.argmax(1) + 1
    edge_index, classes_sorted = coalesce(data.edge_index, classes)  # PyG's sorted, both directions
    sorted_data = data.clone()
    sorted_data.edge_index, sorted_data.edge_attr = edge_index, classes_sorted  # [E] integer classes
    half = data.clone()
    half.edge_index, half.edge_attr = (
        data.edge_index[:, : data.num_edges // 2].flip(0),
        data.edge_attr[: data.num_edges // 2],
    )
    want = canonical_smiles(rdkit_molecules[4])
    for variant in (sorted_data, half):
        assert canonical_smiles(from_pyg(variant)[0]) == want


def test_moldiff_batch_to_pyg_and_back_is_equal(bonded_qm9):
    from moldiff.molecules.bond_data import collate_bonded
    from moldiff.molecules.graph import collate_molecules
    from moldiff.molecules.pyg import batch_from_pyg, to_pyg
    from moldiff.molecules.qm9 import QM9Dataset

    bonded = collate_bonded([bonded_qm9[i] for i in range(7)])
    _assert_batches_equal(batch_from_pyg(to_pyg(bonded)), bonded)
    permuted = collate_bonded([bonded_qm9[3].permute(torch.randperm(bonded_qm9[3].num_atoms))])  # unsorted bonds
    _assert_batches_equal(batch_from_pyg(to_pyg(permuted)), permuted)
    plain = QM9Dataset("test", properties=("alpha", "gap"))
    packed = collate_molecules([plain[i] for i in range(5)])
    back = batch_from_pyg(to_pyg(packed))
    _assert_batches_equal(back, packed)
    assert back.properties.shape == (5, 2)


def test_the_dataset_view_batches_with_pyg_loader(bonded_qm9):
    from torch_geometric.data import Dataset
    from torch_geometric.loader import DataLoader

    from moldiff.molecules.bond_data import collate_bonded
    from moldiff.molecules.pyg import batch_from_pyg
    from moldiff.molecules.pyg_dataset import PyGMoleculeDataset

    view = PyGMoleculeDataset(bonded_qm9)
    assert isinstance(view, Dataset) and len(view) == len(bonded_qm9) and view.vocabulary == bonded_qm9.vocabulary
    assert len(view[:10]) == 10 and int(view[3].idx) == int(bonded_qm9.ids[3])
    batch = next(iter(DataLoader(view, batch_size=6)))
    _assert_batches_equal(batch_from_pyg(batch), collate_bonded([bonded_qm9[i] for i in range(6)]))


def test_sdf_dataset_view_keeps_charges(tmp_path, rdkit_molecules):
    from moldiff.molecules.pyg_dataset import PyGMoleculeDataset
    from moldiff.molecules.rdkit_io import write_sdf
    from moldiff.molecules.sdf import SDFDataset

    write_sdf(rdkit_molecules, tmp_path / "mols.sdf")
    view = PyGMoleculeDataset(SDFDataset(tmp_path / "mols.sdf"))
    assert int(view[1].charges.abs().sum()) == 2 and "edge_index" not in view[1].keys()  # SDFDataset keeps no bonds


def test_bad_graphs_are_named():
    from torch_geometric.data import Data

    from moldiff.molecules.pyg import batch_from_pyg

    water = {"pos": torch.zeros(3, 3), "z": torch.tensor([8, 1, 1])}
    with pytest.raises(InputError, match="vocabulary"):
        batch_from_pyg(Data(**water))
    with pytest.raises(InputError, match=r"\['O'\] are not in the vocabulary"):
        batch_from_pyg(Data(**water), vocabulary=["H", "C"])
    with pytest.raises(InputError, match="self-loop"):
        batch_from_pyg(
            Data(**water, edge_index=torch.tensor([[0], [0]]), edge_attr=torch.tensor([1])), vocabulary=[1, 8]
        )
    with pytest.raises(InputError, match="no edge_attr"):
        batch_from_pyg(Data(**water, edge_index=torch.tensor([[0], [1]])), vocabulary=[1, 8])


def _small_flow(dataset):
    from moldiff.molecules.flow_model import MoleculeFlow, MoleculeFlowConfig
    from moldiff.molecules.flow_task import flow_stats

    torch.manual_seed(0)
    return MoleculeFlow(MoleculeFlowConfig(hidden=32, pair_hidden=8, layers=2), flow_stats(dataset)).eval()


def test_both_denoisers_give_the_same_output_on_a_pyg_batch(bonded_qm9, rdkit_molecules):
    from moldiff.molecules.bond_data import collate_bonded
    from moldiff.molecules.model import MoleculeDiffusion, MoleculeModelConfig
    from moldiff.molecules.pyg import to_pyg

    graphs = [bonded_qm9[i] for i in range(5)]
    moldiff_batch, pyg_batch = collate_bonded(graphs), to_pyg(graphs)
    without_types = pyg_batch.clone()
    del without_types.atom_types  # atom types then come from z through the model's vocabulary

    flow = _small_flow(bonded_qm9)
    t = torch.tensor([0.2, 0.4, 0.5, 0.7, 0.9])
    with torch.no_grad():
        want = flow.denoise_batch(moldiff_batch, t)
        for batch in (pyg_batch, without_types):
            got = flow.denoise_batch(batch, t)
            for name in want:
                torch.testing.assert_close(got[name], want[name], rtol=0, atol=0)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    loss_a, _ = flow.training_loss(moldiff_batch, g1)
    loss_b, _ = flow.training_loss(pyg_batch, g2)
    assert float(loss_a.detach()) == float(loss_b.detach())

    torch.manual_seed(0)
    stats = {"atom_types": ["H", "C", "N", "O", "F"], "atomic_numbers": [1, 6, 7, 8, 9], "num_atoms_histogram": {9: 1}}
    edm = MoleculeDiffusion(MoleculeModelConfig(hidden=16, layers=2), stats).eval()
    with torch.no_grad():
        want = edm.denoise_batch(moldiff_batch, 0.5)
        torch.testing.assert_close(edm.denoise_batch(pyg_batch, 0.5), want, rtol=0, atol=0)
        torch.testing.assert_close(edm.denoise_batch(without_types, 0.5), want, rtol=0, atol=0)
        rdkit_batch = to_pyg(rdkit_molecules[:3])  # no atom_types: from z; no bonds needed by EDM's model
        assert edm.denoise_batch(rdkit_batch, 0.5).shape == (rdkit_batch.num_nodes, 3 + edm.feature_width)
    with pytest.raises(InputError, match="edge_index"):
        flow.denoise_batch(_no_edges(pyg_batch), 0.5)  # one PyG Data, without its bonds


def _no_edges(batch):
    data = batch.get_example(0)
    del data.edge_index, data.edge_attr
    return data
