"""The `molecules` task through the training engine: your own SDF files and QM9, then sampling."""

from pathlib import Path

import pytest

import moldiff
from moldiff.train.config import load_config
from moldiff.train.loop import train

REPO = Path(__file__).resolve().parents[2]


def _quick(overrides):
    return load_config(
        REPO / "configs" / "qm9_small.yaml",
        [
            "model.hidden=16",
            "model.layers=2",
            "train.batch_size=8",
            "train.log_every=2",
            "train.ckpt_every=4",
            "train.eval_every=1000",
            "train.warmup_steps=2",
            "train.best_metric=null",
            "data.eval_samples=0",
            "train.progress=false",
            *overrides,
        ],
    )


def test_train_on_an_sdf_file_then_sample(shared_data, tmp_path):
    sdf = shared_data / "molecules" / "drug_like_3d.sdf.gz"
    config = _quick(
        [
            f"data.source={sdf}",
            "data.dataset=sdf",
            "data.valid_split=null",
            "train.steps=4",
            "model.normalization_factor=40",
        ]
    )
    result = train(config, out_dir=tmp_path / "run")
    assert result.step == 4 and result.skipped_steps == 0
    generator = moldiff.load_pretrained(result.last_checkpoint)
    # the vocabulary came from the data: the drug-like set has S, Cl, Br and I besides H C N O F
    assert generator.atom_types == ["H", "C", "N", "O", "F", "S", "Cl", "Br", "I"]
    mols = generator.sample(2, seed=0, sampler="ddim", steps=4, num_atoms=30)
    assert [m.GetNumAtoms() for m in mols] == [30, 30]


def test_qm9_task_with_a_validation_split(tmp_path):
    pytest.importorskip("rdkit")
    from importlib.util import find_spec

    if find_spec("qm9pack") is None:
        pytest.skip("qm9pack is not installed (pip install 'moldiff[qm9]')")
    config = _quick(
        [
            "train.steps=4",
            "data.limit=64",
            "train.eval_every=4",
            "train.eval_batches=1",
            "data.eval_samples=3",
            "data.eval_steps=3",
        ]
    )
    result = train(config, out_dir=tmp_path / "run")
    assert result.step == 4
    from moldiff.train.logs import read_log

    evals = read_log(tmp_path / "run" / "log.jsonl", kind="eval")
    assert evals and "valid_loss" in evals[-1] and "atom_stability" in evals[-1]
    assert list((tmp_path / "run" / "eval").glob("samples_step*.sdf"))


def test_edm_scale_config_trains_and_resumes_on_cpu(tmp_path):
    """configs/qm9_edm.yaml at full size (9 x 256, 5.34 M parameters), two steps, then a resume."""
    from importlib.util import find_spec

    if find_spec("qm9pack") is None:
        pytest.skip("qm9pack is not installed (pip install 'moldiff[qm9]')")
    overrides = [
        "train.steps=2",
        "train.batch_size=4",
        "data.limit=16",
        "data.valid_split=null",
        "data.eval_samples=0",
        "train.eval_every=0",
        "train.ckpt_every=1",
        "train.log_every=1",
        "train.num_workers=0",
        "train.best_metric=null",
        "train.progress=false",
    ]
    config = load_config(REPO / "configs" / "qm9_edm.yaml", overrides)
    assert config.train.precision == "bf16" and config.model.hidden == 256 and config.model.layers == 9
    first = train(config, out_dir=tmp_path / "run")
    assert first.step == 2
    more = load_config(REPO / "configs" / "qm9_edm.yaml", [*overrides[1:], "train.steps=3"])
    resumed = train(more, out_dir=tmp_path / "run", resume=True)
    assert resumed.step == 3 and resumed.skipped_steps == 0
    model = moldiff.load_model(resumed.last_checkpoint)
    assert sum(p.numel() for p in model.parameters()) == 5_339_663  # EDM's 5.34 M (feature output without t)
