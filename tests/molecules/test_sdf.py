import gzip
import shutil

import numpy as np
import pytest

from moldiff.molecules.rdkit_io import MoleculeRecordError
from moldiff.molecules.sdf import SDFDataset

DRUG_LIKE = "molecules/drug_like_3d.sdf.gz"
ATOM = "{:10.4f}{:10.4f}{:10.4f} {:<3s} 0  0  0  0  0  0  0  0  0  0  0  0\n"


def mol_block(title, atoms):
    text = f"{title}\n  moldiff      3D\n\n{len(atoms):3d}  0  0  0  0  0  0  0  0  0999 V2000\n"
    for sym, (x, y, z) in atoms:
        text += ATOM.format(x, y, z, sym)
    return text + "M  END\n$$$$\n"


def test_drug_like_sdf(shared_data):
    ds = SDFDataset(shared_data / DRUG_LIKE)
    assert len(ds) == 436 and ds.skipped == {}
    assert ds.vocabulary == ("H", "C", "N", "O", "F", "S", "Cl", "Br", "I")
    sizes = ds.num_atoms
    assert sizes.min() == 25 and sizes.max() == 76
    assert ds.titles[0] == "ZINC02640583" and ds.sources[-1][1] == 436
    batch = next(iter(ds.loader(batch_size=8)))
    assert batch.num_graphs == 8 and batch.pos.shape[0] == int(sizes[:8].sum())
    assert batch.charges is not None
    heavy = SDFDataset(shared_data / DRUG_LIKE, remove_hydrogens=True)
    assert "H" not in heavy.vocabulary and 17 <= heavy.num_atoms.min() and heavy.num_atoms.max() <= 37


def test_folder_bad_records_raise_or_skip(tmp_path, shared_data):
    folder = tmp_path / "mols"
    folder.mkdir()
    shutil.copy(shared_data / DRUG_LIKE, folder / "a.sdf.gz")
    water = [("O", (0.0, 0.0, 0.1173)), ("H", (0.0, 0.7572, -0.4692)), ("H", (0.0, -0.7572, -0.4692))]
    bad = (
        mol_block("ok", water)
        + mol_block("alien", [("C", (0, 0, 0)), ("Xx", (1.5, 0, 0.2))])
        + mol_block("lonely", [("C", (0, 0, 0.3))])
        + mol_block("nan-mol", [("C", (0, 0, 0)), ("O", (float("nan"), 0, 0.2))])
    )
    with gzip.open(folder / "b.sdf.gz", "wt") as fh:
        fh.write(bad)
    with pytest.raises(MoleculeRecordError, match=r"b\.sdf\.gz, record 2 \('alien'\): unknown element 'Xx'"):
        SDFDataset(folder)
    ds = SDFDataset(folder, on_error="skip")
    assert len(ds) == 437
    assert ds.skipped == {"unknown_element": 1, "too_few_atoms": 1, "nonfinite_coordinates": 1}
    assert [(s.record, s.title) for s in ds.skipped_records] == [(2, "alien"), (3, "lonely"), (4, "nan-mol")]


def test_fixed_vocabulary(tmp_path):
    path = tmp_path / "x.sdf"
    path.write_text(
        mol_block("hcl", [("H", (0, 0, 0)), ("Cl", (0, 0, 1.27))])
        + mol_block("co", [("C", (0, 0, 0)), ("O", (0, 0, 1.13))])
    )
    with pytest.raises(MoleculeRecordError, match="record 1 .*not in the vocabulary"):
        SDFDataset(path, vocabulary=("H", "C", "N", "O"))
    ds = SDFDataset(path, vocabulary=("H", "C", "N", "O"), on_error="skip")
    assert len(ds) == 1 and ds.skipped == {"not_in_vocabulary": 1}
    assert ds.vocabulary == ("H", "C", "N", "O") and ds[0].atom_types.tolist() == [1, 3]
    np.testing.assert_allclose(ds[0].pos.numpy()[1], [0, 0, 1.13], atol=1e-6)
