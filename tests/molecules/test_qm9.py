import importlib.util
import tarfile

import numpy as np
import pytest

from moldiff.molecules.qm9 import (
    EDM_SPLIT_SIZES,
    QM9_PROPERTIES,
    QM9Dataset,
    atomic_reference_sum,
    atomization_energy,
    edm_split_indices,
    load_qm9,
    read_qm9_xyz,
)

# qm9pack's __init__ imports pkg_resources, which is gone, so pytest.importorskip("qm9pack") would
# always skip; moldiff only needs the package's files, so check that it is installed instead.
needs_qm9pack = pytest.mark.skipif(importlib.util.find_spec("qm9pack") is None, reason="qm9pack is not installed")


@pytest.fixture(scope="module")
def qm9():
    if importlib.util.find_spec("qm9pack") is None:
        pytest.skip("qm9pack is not installed")
    return load_qm9("qm9pack")  # parsed once into the cache (~10 s), then ~1 s


def test_edm_split_recipe():
    split = edm_split_indices()
    assert {k: len(v) for k, v in split.items()} == EDM_SPLIT_SIZES
    every = np.concatenate(list(split.values()))
    assert np.array_equal(np.sort(every), np.arange(130_831))
    np.random.seed(0)  # the recipe, literally
    perm = np.random.permutation(130_831)
    assert np.array_equal(split["test"], np.sort(perm[117_748:]))
    with pytest.raises(ValueError, match="130,831"):
        edm_split_indices(133_885)


@needs_qm9pack
def test_qm9pack_arrays(qm9):
    assert len(qm9["num_atoms"]) == 130_831 and qm9["num_atoms"].sum() == 2_359_210
    assert set(np.unique(qm9["atomic_numbers"]).tolist()) == {1, 6, 7, 8, 9}
    assert qm9["index"][:3].tolist() == [1, 2, 3] and qm9["smiles"][2] == "O"
    np.testing.assert_allclose(qm9["gap"], qm9["lumo"] - qm9["homo"], atol=1.1e-4)
    for name in QM9_PROPERTIES:
        assert qm9[name].shape == (130_831,)
    # methane: C-H 1.09 A; U0 atomisation energy about -0.67 Ha
    ch = np.linalg.norm(qm9["positions"][1] - qm9["positions"][0])
    assert ch == pytest.approx(1.092, abs=2e-3)
    assert atomization_energy(qm9)[0] == pytest.approx(-40.47893 + 37.846772 + 4 * 0.500273)
    # EDM's Cv targets: every element's reference heat capacity is 2.981 cal/(mol K)
    np.testing.assert_allclose(atomization_energy(qm9, "Cv"), qm9["Cv"] - 2.981 * qm9["num_atoms"], atol=1e-9)
    with pytest.raises(KeyError, match="'alpha'"):
        atomic_reference_sum(qm9["atomic_numbers"], qm9["num_atoms"], "alpha")


@needs_qm9pack
def test_test_split_equals_edm_test_npz(qm9, shared_data):
    """Our test split, built from qm9pack, is EDM's test.npz molecule for molecule."""
    ds = QM9Dataset("test", arrays=qm9)
    edm = np.load(shared_data / "qm9" / "edm_test.npz")
    assert len(ds) == 13_083
    np.testing.assert_array_equal(ds.ids, edm["index"])
    np.testing.assert_array_equal(ds.num_atoms, edm["num_atoms"])
    charges, positions = edm["charges"], edm["positions"]
    for i in range(len(ds)):
        z, pos = ds.molecule(i)
        n = len(z)
        assert np.array_equal(z, charges[i, :n]) and not charges[i, n:].any(), f"molecule {i}: atoms differ"
        assert np.array_equal(pos, positions[i, :n]), f"molecule {i}: coordinates differ"
    np.testing.assert_allclose(ds.property_values("gap"), edm["gap"], rtol=1e-6)


@needs_qm9pack
def test_dataset_splits_properties_and_vocabulary(qm9):
    train = QM9Dataset("train", arrays=qm9, properties=("alpha", "gap"))
    valid = QM9Dataset("valid", arrays=qm9)
    assert (len(train), len(valid)) == (100_000, 17_748)
    assert not set(train.ids.tolist()) & set(valid.ids.tolist())
    assert train.vocabulary == train.atom_types == ("H", "C", "N", "O", "F")
    hist = train.num_atoms_histogram()
    assert sum(hist.values()) == 100_000 and min(hist) == 3 and max(hist) == 29
    item = train[0]
    assert item.properties.shape == (2,) and item.pos.shape == (item.num_atoms, 3)
    assert item.properties[1].item() == pytest.approx(train.property_values("gap")[0], rel=1e-6)
    assert train.cache_key == "qm9-qm9pack-train"
    no_h = QM9Dataset("test", arrays=qm9, remove_hydrogens=True)
    assert no_h.vocabulary == ("C", "N", "O", "F") and no_h.num_atoms.max() == 9
    assert 1 not in no_h[5].atomic_numbers.tolist()
    with pytest.raises(ValueError, match="unknown QM9 properties"):
        QM9Dataset("test", arrays=qm9, properties=("bandgap",))


def test_shared_npz_sources(shared_data):
    full = load_qm9(shared_data / "qm9" / "qm9.npz")
    assert len(full["num_atoms"]) == 130_831 and full["atomic_numbers"].dtype == np.uint8
    edm = QM9Dataset("test", source=shared_data / "qm9" / "edm_test.npz")
    ours = QM9Dataset("test", arrays=full)
    assert len(edm) == len(ours) == 13_083
    for i in (0, 4567, 13_082):
        for a, b in zip(edm.molecule(i), ours.molecule(i)):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="one processed split"):
        QM9Dataset("train", source=shared_data / "qm9" / "edm_test.npz")


def _format(value: float) -> str:
    """Write numbers the way QM9's xyz files do, with Mathematica exponents."""
    return repr(float(value)).replace("e", "*^")


def _write_qm9_xyz(arrays, row, offsets) -> str:
    from moldiff.molecules.elements import element_symbol

    s = slice(offsets[row], offsets[row + 1])
    n = offsets[row + 1] - offsets[row]
    props = "\t".join(_format(arrays[k][row]) for k in list(QM9_PROPERTIES)[:15])
    lines = [str(n), f"gdb {arrays['index'][row]}\t{props}"]
    for z, (x, y, w), q in zip(
        arrays["atomic_numbers"][s], arrays["positions"][s].astype(float), arrays["mulliken"][s]
    ):
        lines.append(f"{element_symbol(z)}\t{_format(x)}\t{_format(y)}\t{_format(w)}\t{_format(q)}")
    lines += [
        "100.0\t200.0\t" + _format(arrays["omega1"][row]),
        f"{arrays['smiles'][row]}\tX",
        "InChI=1S/x\tInChI=1S/y",
    ]
    return "\n".join(lines) + "\n"


def test_original_xyz_folder_and_archive(tmp_path, shared_data):
    full = load_qm9(shared_data / "qm9" / "qm9.npz")
    offsets = np.concatenate([[0], np.cumsum(full["num_atoms"])])
    rows = [0, 2, 5, 1000]
    folder = tmp_path / "xyz"
    folder.mkdir()
    for r in rows:
        (folder / f"dsgdb9nsd_{full['index'][r]:06d}.xyz").write_text(_write_qm9_xyz(full, r, offsets))
    (folder / "uncharacterized.txt").write_text(f"header\n  {full['index'][5]}  CC  CC  CC  1.0\n")
    with tarfile.open(tmp_path / "dsgdb9nsd.xyz.tar.bz2", "w:bz2") as tar:
        for f in sorted(folder.glob("*.xyz")):
            tar.add(f, arcname=f.name)
    from_folder = load_qm9(folder, cache_dir=tmp_path / "cache")
    ids = full["index"][rows].tolist()
    assert from_folder["index"].tolist() == ids[:2] + ids[3:]  # the third is listed as uncharacterised
    from_archive = load_qm9(tmp_path / "dsgdb9nsd.xyz.tar.bz2", cache_dir=tmp_path / "cache")
    assert from_archive["index"].tolist() == ids  # no uncharacterized.txt beside the archive
    kept = [0, 2, 1000]
    expected_z = np.concatenate([full["atomic_numbers"][offsets[r] : offsets[r + 1]] for r in kept])
    expected_pos = np.concatenate([full["positions"][offsets[r] : offsets[r + 1]] for r in kept])
    np.testing.assert_array_equal(from_folder["atomic_numbers"], expected_z)
    np.testing.assert_array_equal(from_folder["positions"], expected_pos)
    for key in ("U0", "gap", "Cv", "omega1"):
        np.testing.assert_allclose(from_folder[key], full[key][kept], rtol=1e-7)
    assert len(list((tmp_path / "cache").glob("qm9_xyz-*.npz"))) == 2
    with pytest.raises(ValueError, match=r"bad\.xyz: malformed QM9 xyz file"):
        read_qm9_xyz("2\ngdb 1\t1.0\n", "bad.xyz")


def test_first_use_of_qm9_says_it_parses_once_and_where_the_cache_goes(tmp_path, monkeypatch, capsys):
    """One stderr line when the qm9pack parse starts (what, why, how long, where), none once cached.

    The reader is replaced by three molecules, so the test parses nothing of QM9 itself."""
    import moldiff.molecules.qm9 as qm9

    tiny = {
        "index": np.array([1, 2, 3], dtype=np.int32),
        "num_atoms": np.array([2, 1, 1], dtype=np.int32),
        "atomic_numbers": np.array([6, 1, 8, 1], dtype=np.uint8),
        "positions": np.zeros((4, 3), np.float32),
    }
    calls = []
    monkeypatch.setattr(qm9, "_qm9pack_data_dir", lambda: tmp_path / "qm9pack" / "data")
    monkeypatch.setattr(qm9, "_read_qm9pack", lambda: calls.append(1) or dict(tiny))
    monkeypatch.setenv("MOLDIFF_CACHE_DIR", str(tmp_path / "cache"))
    first = load_qm9("qm9pack")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("moldiff: parsing QM9 from qm9pack")
    assert "once" in err and "about 25 s" in err and str(tmp_path / "cache") in err
    again = load_qm9("qm9pack")
    assert capsys.readouterr().err == "" and calls == [1]
    np.testing.assert_array_equal(again["atomic_numbers"], first["atomic_numbers"])
