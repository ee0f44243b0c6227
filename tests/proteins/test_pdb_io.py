"""PDB reading (real CATH domains, crafted bad files, skip-and-count) and writing (round trip, records)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from moldiff.proteins.dataset import BackboneDataset, collate_backbones, in_holdout, iter_structures
from moldiff.proteins.pdb_io import (
    ChainBreakError,
    MissingCAError,
    NonStandardResidueError,
    read_backbone,
    write_design,
)

from .conftest import pdb_text


def test_reads_real_cath_domains_in_place(cath_tar):
    data = BackboneDataset(cath_tar, "holdout", limit=3)
    assert len(data) == 3
    for bb in data:
        assert bb.ca.shape == (len(bb.sequence), 3) and set(bb.sequence) <= set("ACDEFGHIKLMNPQRSTVWY")
        assert 50 <= len(bb) <= 300 and len(bb.residue_ids) == len(bb)
        gaps = np.linalg.norm(np.diff(bb.ca, axis=0), axis=1)
        assert gaps.max() < 4.2 and abs(np.median(gaps) - 3.8) < 0.05
    batch = collate_backbones(data.backbones)
    assert batch.num_graphs == 3 and batch.ca.shape[0] == int(batch.lengths.sum())


def test_holdout_split_is_fixed_by_name():
    names = [f"d{i}" for i in range(2000)]
    held = [n for n in names if in_holdout(n, 0.1)]
    assert 150 < len(held) < 250
    assert held == [n for n in reversed(names) if in_holdout(n, 0.1)][::-1]  # order does not matter


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"skip_ca": 4}, MissingCAError, "ALA 4 has no CA"),
        ({"break_after": 5}, ChainBreakError, "between residues 5 and 6"),
        ({"resnames": {3: "MSE"}}, NonStandardResidueError, "MSE 3"),
        ({"resnames": {6: "UNK"}}, NonStandardResidueError, "UNK 6"),
    ],
)
def test_clear_errors_on_bad_files(tmp_path, kwargs, error, words):
    path = tmp_path / "bad.pdb"
    path.write_text(pdb_text(**kwargs))
    with pytest.raises(error, match=words):
        read_backbone(path)


def test_folder_dataset_skips_and_counts(tmp_path):
    (tmp_path / "good.pdb").write_text(pdb_text(12))
    (tmp_path / "noca.pdb").write_text(pdb_text(skip_ca=2))
    (tmp_path / "broken.pdb").write_text(pdb_text(break_after=3))
    (tmp_path / "mse.pdb").write_text(pdb_text(resnames={5: "MSE"}))
    with pytest.raises(ChainBreakError, match="broken.pdb"):  # the first bad file in name order
        BackboneDataset(tmp_path, "all")
    data = BackboneDataset(tmp_path, "all", on_error="skip")
    assert data.names == ["good"]
    assert dict(data.skipped) == {"MissingCAError": 1, "ChainBreakError": 1, "NonStandardResidueError": 1}
    assert len(data.skipped_files) == 3


def test_writer_round_trip_and_records(tmp_path):
    ca = np.random.default_rng(0).normal(size=(12, 3)) * 10
    mask = np.zeros(12, bool)
    mask[3:6] = True
    pdb, sidecar = write_design(tmp_path, "x", ca, {"seed": 3, "contig": "3/A1-3/6"}, motif_mask=mask)
    lines = pdb.read_text().splitlines()
    assert lines[0].startswith("HEADER") and any(line.startswith("CRYST1") for line in lines)
    atoms = [line for line in lines if line.startswith("ATOM")]
    assert len(atoms) == 12
    assert all(line[12:16] == " CA " and line[17:20] == "GLY" and line[21] == "A" for line in atoms)
    assert [int(line[22:26]) for line in atoms] == list(range(1, 13))
    assert [float(line[60:66]) for line in atoms] == [1.0 if m else 0.0 for m in mask]
    assert all(len(line) <= 80 for line in lines) and lines[-1] == "END"
    back = read_backbone(pdb, max_ca_gap=None)
    assert back.sequence == "G" * 12 and np.abs(back.ca - ca).max() < 1e-3
    meta = json.loads(sidecar.read_text())
    assert meta["seed"] == 3 and meta["contig"] == "3/A1-3/6" and meta["length"] == 12


def test_iter_structures_names_missing_source(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(iter_structures(tmp_path / "nowhere"))


def test_reads_mmcif(tmp_path):
    from Bio.PDB import MMCIFIO, PDBParser

    (tmp_path / "x.pdb").write_text(pdb_text(9))
    io = MMCIFIO()
    io.set_structure(PDBParser(QUIET=True).get_structure("x", tmp_path / "x.pdb"))
    io.save(str(tmp_path / "x.cif"))
    a, b = read_backbone(tmp_path / "x.pdb"), read_backbone(tmp_path / "x.cif")
    assert b.sequence == a.sequence == "A" * 9 and np.allclose(a.ca, b.ca) and b.name == "x"
