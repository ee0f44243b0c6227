"""Sampling with a filter: the molecules found are the first that pass in job order, each seeded by its
job index, whatever the batch size or the number of processes; the budget; the command."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import moldiff
from moldiff.cli import main
from moldiff.molecules.filters import FilterError
from moldiff.molecules.properties import molecule_properties

Chem = pytest.importorskip("rdkit.Chem")

STEPS = 20  # enough for a fair share of valid molecules


@pytest.fixture(scope="module")
def qm9():
    return moldiff.load_pretrained("qm9")


def _pos(mol) -> np.ndarray:
    return mol.GetConformer().GetPositions()


def test_the_molecules_found_are_the_first_that_pass_in_job_order(qm9):
    found = qm9.sample(4, seed=3, steps=STEPS, filter="valid and connected", batch_size=3)
    assert len(found) == 4 and found.drawn >= 4
    assert found.indices == sorted(found.indices) and len(set(found.indices)) == 4
    again = qm9.sample(4, seed=3, steps=STEPS, filter="valid and connected", batch_size=250)
    assert again.indices == found.indices
    assert all(np.array_equal(_pos(a), _pos(b)) for a, b in zip(found, again))
    # every molecule drawn before the last one found failed the filter, every one found passes it
    for mol in found:
        row = molecule_properties(mol, "file", ["valid", "connected"])
        assert row["valid"] and row["connected"]
    # round 0 is the unfiltered job: its passing molecules are the first ones found
    plain = qm9.sample(4, seed=3, steps=STEPS)
    passing = [
        i
        for i, m in enumerate(plain)
        if molecule_properties(m, "file", ["valid", "connected"]) == {"valid": True, "connected": True}
    ]
    assert [i for i in found.indices if i < 4] == passing
    for i, mol in zip(found.indices, found):
        if i < 4:
            assert np.array_equal(_pos(mol), _pos(plain[i]))
    # a molecule of a later round: sizes from the stream (seed, round), noise from (seed, index)
    later = [(i, m) for i, m in zip(found.indices, found) if i >= 4]
    assert later, "seed 3 finds molecules in later rounds"
    i, mol = later[0]
    size = qm9.plan(4, 3, part=i // 4)[i % 4 : i % 4 + 1]
    record = qm9.sample_chunk(size, 3, i, steps=STEPS)[0]
    assert np.allclose(_pos(mol), record["positions"], atol=1e-5)


def test_a_filter_everything_passes_gives_the_unfiltered_sample(qm9):
    found = qm9.sample(3, seed=1, steps=STEPS, filter="num_atoms > 0")
    plain = qm9.sample(3, seed=1, steps=STEPS)
    assert found.indices == [0, 1, 2] and found.drawn == 3
    assert all(np.array_equal(_pos(a), _pos(b)) for a, b in zip(found, plain))


def test_the_budget_stops_the_search_with_a_warning(qm9):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = qm9.sample(2, seed=0, steps=STEPS, filter="qed > 0.99", max_samples=5, batch_size=2)
    assert len(found) == 0 and found.drawn == 5
    assert any("only 0 of the 2 asked for passed within the budget of 5" in str(w.message) for w in caught)
    with pytest.raises(FilterError, match="known names"):
        qm9.sample(2, steps=STEPS, filter="qed >> 1")


def test_edm_style_models_are_judged_by_their_perceived_bonds():
    gen = moldiff.load_pretrained("qm9_edm")
    assert gen.property_bonds("edm") == "edm" and moldiff.load_pretrained("qm9").property_bonds("edm") == "file"
    found = gen.sample(2, seed=0, sampler="dpmpp_2m", steps=5, filter="num_atoms > 0")
    plain = gen.sample(2, seed=0, sampler="dpmpp_2m", steps=5)
    assert found.indices == [0, 1] and all(np.array_equal(_pos(a), _pos(b)) for a, b in zip(found, plain))


def _titles(path) -> list[str]:
    return [m.GetProp("_Name") for m in Chem.SDMolSupplier(str(path), sanitize=False, removeHs=False)]


def test_the_command_filters_names_each_molecules_index_and_writes_properties(tmp_path, capsys):
    out = tmp_path / "kept.sdf"
    args = ["sample", "--model", "qm9", "--num", "3", "--steps", str(STEPS), "--seed", "2", "--no-progress"]
    assert main([*args, "--out", str(out), "--filter", "valid and connected", "--properties", "--batch-size", "2"]) == 0
    err = capsys.readouterr().err
    assert "filter 'valid and connected': kept 3 of " in err and "molecules drawn" in err
    found = moldiff.load_pretrained("qm9").sample(3, seed=2, steps=STEPS, filter="valid and connected")
    assert _titles(out) == [f"moldiff qm9 seed=2 #{i}" for i in found.indices]
    back = list(Chem.SDMolSupplier(str(out), sanitize=False, removeHs=False))
    assert all(m.GetProp("moldiff_valid") == "1" and m.GetProp("moldiff_connected") == "1" for m in back)
    assert all(0 < float(m.GetProp("moldiff_qed")) < 1 and m.HasProp("moldiff_smiles") for m in back)
    # the file's own table agrees with the filter
    table = tmp_path / "t.csv"
    assert main(["evaluate", str(out), "--bonds", "file", "--per-molecule", str(table)]) == 0
    lines = table.read_text().splitlines()
    assert len(lines) == 4 and all(line.split(",")[1] == "1" for line in lines[1:])


def test_the_command_refuses_bad_filters_and_options_before_sampling(tmp_path, capsys):
    out = tmp_path / "x.sdf"
    base = ["sample", "--model", "qm9", "--num", "2", "--steps", "2", "--out", str(out), "--no-progress"]
    assert main([*base, "--filter", "valid and qed > 0.5 and not pain"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown name 'pain' (did you mean 'pains'?)" in err[0] and "known names: index," in err[0]
    assert main([*base, "--max-samples", "10"]) == 2
    assert "--max-samples is the budget of --filter" in capsys.readouterr().err
    assert main([*base, "--filter", "valid", "--max-samples", "0"]) == 2
    assert main([*base[:-3], "--out", str(tmp_path / "x.xyz"), "--properties"]) == 2
    assert "XYZ file" in capsys.readouterr().err
    assert not out.exists()
    assert main([*base, "--filter", "qed > 0.99", "--max-samples", "2"]) == 2
    err = capsys.readouterr().err
    assert "kept 0 of 2 molecules drawn" in err and "nothing written" in err and not out.exists()
    images = ["sample", "--model", "fashion_mnist", "--num", "2", "--out", str(tmp_path / "g.png"), "--filter", "valid"]
    assert main(images) == 2
    assert "apply to molecule models" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_torchrun_filtered_sampling_writes_the_same_file_as_one_process(tmp_path):
    args = ["sample", "--model", "qm9", "-n", "3", "--batch-size", "2", "--steps", str(STEPS), "--seed", "4"]
    args += ["--filter", "valid and connected", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one = subprocess.run(
        [sys.executable, "-m", "moldiff.cli", *args, "--out", str(tmp_path / "one.sdf")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert one.returncode == 0, one.stderr
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2"]
    cmd += ["--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "moldiff.cli", *args]
    two = subprocess.run(
        [*cmd, "--out", str(tmp_path / "two.sdf")], capture_output=True, text=True, env=env, timeout=600
    )
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-2000:]
    assert "2 process(es)" in two.stderr
    assert (tmp_path / "one.sdf").read_text() == (tmp_path / "two.sdf").read_text()
