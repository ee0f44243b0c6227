"""The ``backbones`` and ``backbone_angles`` tasks through the engine, ``moldiff sample`` for backbones and ``moldiff evaluate-backbones``."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from moldiff.cli import main
from moldiff.proteins.geometry import ideal_helix
from moldiff.proteins.pdb_io import read_backbone, write_backbone_pdb
from moldiff.train.config import load_config
from moldiff.train.loop import train

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "config_name, motif_tolerance",
    [("cath_ca.yaml", 1e-3), ("cath_ca_angles.yaml", 0.05)],  # coordinates replaced; angles fixed (3.80 A bonds)
)
def test_train_then_sample_and_scaffold_from_the_cli(cath_tar, tmp_path, capsys, config_name, motif_tolerance):
    config = load_config(
        REPO / "configs" / config_name,
        [
            f"data.source={cath_tar}",
            "data.limit=6",
            "data.valid=false",
            "data.eval_samples=2",
            "data.eval_lengths=[12]",
            "data.eval_steps=2",
            "model.hidden=8",
            "model.layers=1",
            "train.steps=2",
            "train.batch_size=3",
            "train.log_every=1",
            "train.ckpt_every=2",
            "train.eval_every=2",
            "train.warmup_steps=1",
            "train.best_metric=null",
            "train.progress=false",
        ],
    )
    result = train(config, out_dir=tmp_path / "run")
    assert result.step == 2 and result.skipped_steps == 0
    from moldiff.train.logs import read_log

    evals = read_log(tmp_path / "run" / "log.jsonl", kind="eval")
    assert evals and "rg_ratio_mean" in evals[-1]  # scored, even where an untrained model leaves the PDB columns
    written = len(list((tmp_path / "run" / "eval").rglob("*.pdb")))
    assert written == round(2 * (1 - evals[-1]["unwritable_fraction"]))
    ckpt = str(result.last_checkpoint)

    out = tmp_path / "designs"
    assert (
        main(
            [
                "sample",
                "--model",
                ckpt,
                "--length",
                "30",
                "--num",
                "2",
                "--steps",
                "3",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    pdbs = sorted(out.glob("*.pdb"))
    assert len(pdbs) == 2 and len(read_backbone(pdbs[0], max_ca_gap=None)) == 30
    assert json.loads(pdbs[0].with_suffix(".json").read_text())["model"] == ckpt

    motif = tmp_path / "motif.pdb"
    write_backbone_pdb(motif, ideal_helix(20).numpy())
    out = tmp_path / "scaffolds"
    assert (
        main(
            [
                "sample",
                "--model",
                ckpt,
                "--contig",
                "5-8/A4-13/5-8",
                "--motif-pdb",
                str(motif),
                "--num",
                "2",
                "--steps",
                "3",
                "--temperature",
                "0.5",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    meta = json.loads(sorted(out.glob("*.json"))[0].read_text())
    assert meta["contig"] == "5-8/A4-13/5-8" and meta["motif_rmsd"] < motif_tolerance and meta["temperature"] == 0.5
    assert len(meta["motif_mapping"]) == 10 and "seed" in meta
    assert (
        main(["sample", "--model", ckpt, "--contig", "5/A40-45/5", "--motif-pdb", str(motif), "--out", str(out) + "_2"])
        == 2
    )
    assert "A40 is not in motif" in capsys.readouterr().err


def test_evaluate_backbones_on_three_real_domains(cath_tar, tmp_path, capsys):
    from moldiff.proteins.dataset import iter_structures

    folder = tmp_path / "real"
    folder.mkdir()
    for k, (name, handle) in enumerate(iter_structures(cath_tar)):
        (folder / f"{name}.pdb").write_bytes(handle.read())
        if k == 2:
            break
    assert (
        main(
            ["evaluate-backbones", str(folder), "--reference", str(cath_tar), "--max-reference", "20", "--no-tm-score"]
        )
        == 0
    )
    report = capsys.readouterr().out
    assert "real-vs-real" in report and "designability" in report and "Rg / 3.22 N^0.318" in report
    assert (
        main(
            [
                "evaluate-backbones",
                str(folder),
                "--reference",
                str(cath_tar),
                "--max-reference",
                "20",
                "--no-tm-score",
                "--json",
                *(["--novelty", "4"] if importlib.util.find_spec("tmtools") else []),
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["summary"]["num_backbones"] == 3 and result["summary"]["chain_breaks"] == 0
    if importlib.util.find_spec("tmtools"):  # novelty against the first 4 training domains of the reference
        assert result["summary"]["novelty_num_train"] == 4
        assert 0 < result["summary"]["tm_novelty_mean"] <= 1
    assert np.isfinite(result["baseline"]["w1_dihedral"]) and result["summary"]["w1_bond_angle"] < 10


def test_benchmark_smoke(cath_tar, tmp_path, benchmark_script):
    bench = benchmark_script("backbones")
    summary = bench.main(
        [
            "--model",
            "untrained",
            "--num",
            "2",
            "--lengths",
            "12",
            "16",
            "--steps",
            "2",
            "--reference",
            str(cath_tar),
            "--max-reference",
            "6",
            "--out",
            str(tmp_path / "b.json"),
        ]
    )
    assert set(summary["per_length"]) == {"12", "16"} and summary["all"]["num_backbones"] == 4
    assert summary["real_vs_real_baseline"]["num_a"] == 3


def test_denoising_profile_benchmark(cath_tar, benchmark_script):
    bench = benchmark_script("backbone_denoising")
    sigmas = [0.1, 1.0, 10.0]
    summary = bench.main(
        ["--model", "untrained", "--num", "3", "--sigmas", *map(str, sigmas), "--reference", str(cath_tar)]
    )
    assert summary["num_domains"] == 3 and [r["sigma_A"] for r in summary["levels"]] == sigmas
    for row in summary["levels"]:
        # zero-CoM noise of std sigma per coordinate: RMSD about sigma * sqrt(3 (L - 1) / L) ~ 1.7 sigma
        assert 1.2 * row["sigma_A"] < row["rmsd_in"] < 2.2 * row["sigma_A"]
        assert np.isfinite(row["rmsd_out"]) and row["ca_ca_out_std"] >= 0
    # input CA-CA errors grow with the noise
    errs = [r["ca_ca_abs_err_in"] for r in summary["levels"]]
    assert errs == sorted(errs)
