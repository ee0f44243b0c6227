"""Conditioning the bond-aware model (MoleculeFlow) on QM9 properties: the condition reaches the network
and keeps its symmetries, dropout masks what it should, classifier-free guidance at scale 1 is the
conditional model, p(N | c), partial initialisation from an unconditional model, gradient guidance by
a predictor, and the whole path through the engine, the generator and ``moldiff sample --condition``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from moldiff.core import item_generators
from moldiff.molecules.bond_data import BondedQM9Dataset, collate_bonded, derive_bonded_arrays
from moldiff.molecules.flow_model import MoleculeFlow, MoleculeFlowConfig
from moldiff.molecules.flow_task import flow_stats
from moldiff.molecules.qm9 import load_qm9
from moldiff.molecules.training_data import context_histograms, sample_num_atoms_given_context
from moldiff.testing import assert_equivariant

from .conftest import permute_atoms, write_weights

REPO = Path(__file__).resolve().parents[2]
PROPS = ["alpha", "gap"]


@pytest.fixture(scope="module")
def small_qm9():
    """80 QM9 molecules with bonds, charges, alpha and gap (derived here, no cache of all of QM9)."""
    arrays = derive_bonded_arrays(load_qm9("qm9pack"), rows=list(range(0, 8000, 100)))
    return BondedQM9Dataset("all", arrays=arrays, properties=PROPS)


def _model(dataset, conditioning=PROPS, **overrides):
    torch.manual_seed(0)
    cfg = MoleculeFlowConfig(hidden=32, pair_hidden=8, layers=2, conditioning=list(conditioning), **overrides)
    model = MoleculeFlow(cfg, flow_stats(dataset, conditioning))
    if model.network.film is not None:  # FiLM starts at zero (no effect): give it one to test
        for film in model.network.film:
            torch.nn.init.normal_(film.weight, std=0.3)
    return model


def _noisy(model, batch, g):
    space = model.space(batch.batch, batch.num_graphs, batch.edge_index)
    t = torch.rand(batch.num_graphs, generator=g, dtype=torch.float64) * 0.8 + 0.1
    return space.noise(model.encode(batch), t, g), t.float()


def test_the_dataset_carries_the_properties_and_the_stats_their_normalisation(small_qm9):
    raw = load_qm9("qm9pack")
    rows = small_qm9.rows
    assert np.allclose(small_qm9.property("alpha"), raw["alpha"][rows]) and small_qm9[3].properties.shape == (2,)
    assert torch.equal(
        collate_bonded([small_qm9[i] for i in range(4)]).properties[:, 1],
        torch.from_numpy(small_qm9.property("gap")[:4]),
    )
    stats = flow_stats(small_qm9, PROPS)
    v = small_qm9.property("gap").astype(np.float64)
    assert np.isclose(stats["context_mad"]["gap"], np.abs(v - v.mean()).mean())
    assert set(stats["context_given_n"]["alpha"]) == set(np.unique(small_qm9.num_atoms).tolist())
    model = _model(small_qm9)
    values, present = model.condition_inputs({"gap": 0.3}, 2, allow_missing=True)
    assert present.tolist() == [[False, True], [False, True]] and values[0, 0] == 0
    assert torch.allclose(values[:, 1], torch.tensor((0.3 - v.mean()) / stats["context_mad"]["gap"]).float())
    with pytest.raises(ValueError, match="unknown \\['mu'\\]"):
        model.condition_inputs({"mu": 1.0}, 2)


def test_edms_generator_half_of_the_bonded_training_split():
    from moldiff.molecules.qm9 import edm_split_indices
    from moldiff.molecules.training_data import training_half_rows

    half = BondedQM9Dataset("train", half="generator", properties=["alpha"])
    train = np.sort(edm_split_indices(len(load_qm9("qm9pack")["num_atoms"]))["train"])
    expected = train[training_half_rows(len(train), "generator")]
    assert np.array_equal(half.rows, expected[np.isin(expected, half.rows)]) and len(half) <= 50_000
    assert not np.isin(half.rows, train[training_half_rows(len(train), "predictor")]).any()
    with pytest.raises(ValueError, match="split='train'"):
        BondedQM9Dataset("valid", half="generator")


@pytest.mark.parametrize("mode", ["input", "film", "both"])
def test_the_condition_changes_the_outputs_and_keeps_every_symmetry(small_qm9, mode):
    model = _model(small_qm9, condition_mode=mode).double()
    batch = collate_bonded([small_qm9[i] for i in range(3)])
    g = torch.Generator().manual_seed(1)
    state, t = _noisy(model, batch, g)
    state["pos"] = state["pos"].double()
    kw = {"batch": batch.batch, "pairs": batch.edge_index}
    low, _ = model.condition_inputs({"alpha": 20.0, "gap": 0.2}, 3)
    high, _ = model.condition_inputs({"alpha": 90.0, "gap": 0.35}, 3)
    a, b = model.denoise(state, t, condition=low.double(), **kw), model.denoise(state, t, condition=high.double(), **kw)
    unconditional = model.denoise(state, t, **kw)
    for name in ("pos", "type", "bond"):
        assert not torch.allclose(a[name], b[name], atol=1e-6) and not torch.allclose(
            a[name], unconditional[name], atol=1e-6
        )
    # a missing property: its value is never read
    mask = torch.tensor([[False, True]] * 3)
    other = low.clone()
    other[:, 0] = 123.0
    for name, value in model.denoise(state, t, condition=other.double(), condition_mask=mask, **kw).items():
        torch.testing.assert_close(
            value, model.denoise(state, t, condition=low.double(), condition_mask=mask, **kw)[name]
        )

    # E(3): coordinates equivariant (a clean-state prediction: translations move it), everything else invariant
    def fn(pos, h, batch_, num_graphs):
        out = model.denoise(dict(state, pos=pos), t, condition=high.double(), **kw)
        return out["pos"], torch.cat([out["type"], out["charge"]], dim=1)

    assert_equivariant(
        fn, state["pos"], torch.zeros(len(state["pos"]), 1, dtype=torch.float64), batch.batch, 3,
        reflections=True, permutation=False, translation="equivariant", atol=1e-8, rtol=1e-8,
    )  # fmt: skip
    out = model.denoise(state, t, condition=high.double(), **kw)
    q = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))[0]
    moved = model.denoise(dict(state, pos=state["pos"] @ q.T), t, condition=high.double(), **kw)
    torch.testing.assert_close(moved["bond"], out["bond"], atol=1e-8, rtol=1e-8)
    # permutations of the atoms permute every output, the condition being per molecule
    permuted, perm, pair_perm = permute_atoms(state, batch, g)
    p_out = model.denoise(permuted, t, condition=high.double(), **kw)
    for name in ("pos", "type", "charge"):
        torch.testing.assert_close(p_out[name], out[name][perm], atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(p_out["bond"], out["bond"][pair_perm], atol=1e-8, rtol=1e-8)


def test_dropout_masks_properties_as_configured(small_qm9):
    present = torch.ones(20000, 2, dtype=torch.bool)
    for p, p_all in ((0.0, 0.0), (0.3, 0.0), (0.5, 0.1), (1.0, 0.0)):
        model = _model(small_qm9, condition_dropout=p, condition_dropout_all=p_all)
        kept = model.drop_conditions(present, torch.Generator().manual_seed(0))
        assert abs(float(kept.float().mean()) - (1 - p) * (1 - p_all)) < 0.01, (p, p_all)
        assert abs(float((~kept).all(1).float().mean()) - (p_all + (1 - p_all) * p**2)) < 0.01
        if 0 < p < 1:  # independently per property
            both = float(kept.all(1).float().mean())
            assert abs(both - (1 - p) ** 2 * (1 - p_all)) < 0.01
        again = model.drop_conditions(present, torch.Generator().manual_seed(0))
        assert torch.equal(kept, again)  # all randomness from the training generator
    # condition_single: that share of molecules keeps exactly one property, uniformly drawn; a
    # property a molecule lacks stays missing
    present = torch.ones(30000, 3, dtype=torch.bool)
    present[:, 2] = torch.arange(30000) % 2 == 0
    model = _model(small_qm9, condition_dropout=0.5, condition_dropout_all=0.1, condition_single=0.6)
    kept = model.drop_conditions(present, torch.Generator().manual_seed(0))
    assert not (kept & ~present).any()
    count = kept.sum(1)
    # exactly one kept: 0.9 * (0.6 * P(drawn one is present) + 0.4 * P(one of the independent draws))
    independent_one = 0.5 * (2 * 0.5 * 0.5) + 0.5 * (3 * 0.5**3)
    expected_one = 0.9 * (0.6 * (2 / 3 + 1 / 6) + 0.4 * independent_one)
    assert abs(float((count == 1).float().mean()) - expected_one) < 0.01
    assert abs(float((count == 0).float().mean()) - (0.1 + 0.9 * (0.6 / 6 + 0.4 * (0.5 * 0.25 + 0.5 * 0.125)))) < 0.01
    assert abs(float(kept[:, 0].float().mean()) - 0.9 * (0.6 / 3 + 0.4 * 0.5)) < 0.01
    # training passes the batch's properties, normalised, with the mask
    model = _model(small_qm9, condition_dropout=0.5)
    seen = []
    denoise = model.denoise
    model.denoise = lambda *a, **kw: seen.append((kw["condition"], kw["condition_mask"])) or denoise(*a, **kw)
    batch = collate_bonded([small_qm9[i] for i in range(16)])
    loss, terms = model.training_loss(batch, torch.Generator().manual_seed(3))
    values, mask = seen[0]
    expected, _ = model.condition_inputs(batch.properties, 16)
    assert torch.equal(values, expected) and mask.shape == (16, 2) and 0 < int(mask.sum()) < 32
    assert torch.isfinite(loss) and {"pos_loss", "bond_loss"} <= terms.keys()
    assert model.config.condition_optional and not _model(small_qm9).config.condition_optional


def test_config_checks_and_round_trip():
    from moldiff.errors import ConfigError
    from moldiff.train.config import from_dict, load_config, to_dict

    with pytest.raises(ConfigError, match="unknown QM9 properties \\['beta'\\]"):
        MoleculeFlowConfig(conditioning=["beta"])
    with pytest.raises(ConfigError, match="more than once"):
        MoleculeFlowConfig(conditioning=["mu", "mu"])
    with pytest.raises(ConfigError, match="condition_dropout"):
        MoleculeFlowConfig(conditioning=["mu"], condition_dropout=1.5)
    with pytest.raises(ConfigError, match="condition_single"):
        MoleculeFlowConfig(conditioning=["mu"], condition_single=-0.1)
    with pytest.raises(ConfigError, match="time_weight_floor"):
        MoleculeFlowConfig(time_weight_floor=0.0)
    cfg = load_config(REPO / "configs" / "qm9_flow_cond.yaml")
    assert cfg.model.conditioning == ["alpha", "gap", "homo", "lumo", "mu", "Cv"] and cfg.data.half == "generator"
    assert cfg.train.init_from == "qm9" and cfg.train.init_partial
    assert from_dict(type(cfg.model), to_dict(cfg.model)) == cfg.model
    assert load_config(REPO / "configs" / "qm9_flow_cond.yaml", ["model.conditioning=[gap]"]).model.conditioning == [
        "gap"
    ]
    for prop in ("alpha", "gap", "homo", "lumo", "mu", "Cv"):
        judge = load_config(REPO / "configs" / f"qm9_predictor_{prop}.yaml")
        assert (
            judge.task == "property_predictor" and judge.model.properties == [prop] and judge.data.half == "predictor"
        )


def test_cfg_scale_one_is_the_conditional_model_and_zero_the_unconditional(small_qm9):
    model = _model(small_qm9, condition_dropout=0.3).eval()
    sizes = torch.tensor([5, 8, 6])

    def run(**kw):
        return model.sample_states(sizes, steps=4, generator=item_generators(2, range(3)), **kw)

    cond = run(condition={"alpha": 70.0, "gap": 0.3})
    uncond = run(condition=None)
    for scale, expected in ((1.0, cond), (0.0, uncond)):
        out = run(condition={"alpha": 70.0, "gap": 0.3}, guidance_scale=scale)
        for name in ("type", "charge", "bond"):
            assert torch.equal(out[name], expected[name]), (scale, name)
        torch.testing.assert_close(out["pos"], expected["pos"], atol=1e-5, rtol=1e-5)
    guided = run(condition={"alpha": 70.0, "gap": 0.3}, guidance_scale=3.0)
    assert not torch.allclose(guided["pos"], cond["pos"], atol=1e-4)
    with pytest.raises(ValueError, match="pass condition="):
        _model(small_qm9).sample_states(sizes, steps=2)  # no dropout in training: no unconditional model


def test_sizes_from_p_n_given_c():
    sizes = np.array([3, 3, 4, 5, 5, 5, 9, 9])
    alpha = np.array([10.0, 12.0, 20.0, 30.0, 35.0, 40.0, 80.0, 84.0])
    stats = {
        "num_atoms_histogram": {int(n): int(c) for n, c in zip(*np.unique(sizes, return_counts=True))},
        "context_given_n": {"alpha": context_histograms(sizes, alpha, bins=10)},
    }
    g = torch.Generator().manual_seed(0)
    draw = sample_num_atoms_given_context(stats, {"alpha": torch.tensor([11.0, 33.0, 82.0] * 50)}, g)
    assert draw.reshape(50, 3)[:, 0].eq(3).all() and draw.reshape(50, 3)[:, 1].eq(5).all()
    assert draw.reshape(50, 3)[:, 2].eq(9).all()
    # a target no size reaches: the nearest size's range
    assert sample_num_atoms_given_context(stats, {"alpha": torch.tensor([500.0, -5.0, 25.0])}, g).tolist() == [9, 3, 4]


def test_partial_init_grows_an_unconditional_model_into_a_conditional_one_that_starts_equal(small_qm9):
    from moldiff.train.loop import grow_weights

    uncond = _model(small_qm9, conditioning=[])
    for mode in ("input", "both"):
        torch.manual_seed(1)
        cond = MoleculeFlow(
            MoleculeFlowConfig(hidden=32, pair_hidden=8, layers=2, conditioning=PROPS, condition_mode=mode),
            flow_stats(small_qm9, PROPS),
        )
        weights, report = grow_weights(uncond.state_dict(), cond.state_dict())
        cond.load_state_dict(weights)
        assert report["grown"] == ["network.node_embedding.weight"]
        assert {k.split(".")[0] for k in report["new"]} == {"condition_embedding"} | (
            {"network"} if mode == "both" else set()
        )
        batch = collate_bonded([small_qm9[i] for i in range(3)])
        state, t = _noisy(uncond, batch, torch.Generator().manual_seed(4))
        kw = {"batch": batch.batch, "pairs": batch.edge_index}
        values, _ = cond.condition_inputs({"alpha": 50.0, "gap": 0.2}, 3)
        a, b = uncond.denoise(state, t, **kw), cond.denoise(state, t, condition=values, **kw)
        for name in a:
            torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-6)


def test_gradient_guidance_by_a_predictor_moves_the_coordinates_only_and_stays_finite(small_qm9):
    from moldiff.molecules.generator import FlowMoleculeGenerator
    from moldiff.molecules.predictor import PropertyPredictor, PropertyPredictorConfig

    torch.manual_seed(0)
    stats = {
        "atom_types": list(small_qm9.vocabulary),
        "atomic_numbers": [1, 6, 7, 8, 9],
        "property_mean": {"alpha": 70.0},
        "property_mad": {"alpha": 7.0},
        "property_range": {"alpha": [10.0, 200.0]},
    }
    predictor = PropertyPredictor(PropertyPredictorConfig(properties=["alpha"], hidden=16, layers=2), stats)
    gen = FlowMoleculeGenerator(_model(small_qm9, conditioning=[]).eval())
    kw = dict(seed=0, steps=6, num_atoms=6)
    plain = gen.sample_arrays(2, **kw)
    guided = gen.sample_arrays(2, condition={"alpha": 120.0}, predictor=predictor, predictor_scale=5.0, **kw)
    assert all(np.isfinite(r["positions"]).all() for r in guided)
    assert not np.allclose(plain[0]["positions"], guided[0]["positions"], atol=1e-5)
    with pytest.raises(ValueError, match="needs targets"):
        gen.sample_arrays(2, predictor=predictor, **kw)


def test_the_engine_trains_a_conditional_model_from_an_unconditional_one_and_it_samples_given_any_subset(
    tmp_path, small_qm9, monkeypatch, capsys
):
    import moldiff
    from moldiff.cli import main
    from moldiff.errors import ConfigError, InputError
    from moldiff.molecules import flow_task
    from moldiff.molecules.flow_task import FlowDataConfig
    from moldiff.train.config import ExperimentConfig, TrainConfig
    from moldiff.train.logs import read_log
    from moldiff.train.loop import Trainer

    monkeypatch.setattr(flow_task, "BondedQM9Dataset", lambda split, source, **options: small_qm9)

    def config(conditioning, **train):
        return ExperimentConfig(
            task="molecule_flow",
            model=MoleculeFlowConfig(
                hidden=16, pair_hidden=8, layers=1, sample_steps=3, conditioning=conditioning, condition_dropout=0.3
            ),
            data=FlowDataConfig(valid_split=None, eval_samples=3, eval_steps=2),
            train=TrainConfig(
                steps=2, batch_size=8, log_every=1, ckpt_every=2, eval_every=2, eval_batches=0, device="cpu",
                progress=False, best_metric=None, **train,
            ),
        )  # fmt: skip

    first = Trainer(config([]), out_dir=tmp_path / "uncond").fit()
    with pytest.raises(ConfigError, match="do not fit"):
        Trainer(config(PROPS, init_from=str(first.last_checkpoint)), out_dir=tmp_path / "strict").fit()
    result = Trainer(
        config(PROPS, init_from=str(first.last_checkpoint), init_partial=True), out_dir=tmp_path / "c"
    ).fit()
    start = read_log(tmp_path / "c" / "log.jsonl", kind="event")[0]
    assert start["init_partial"]["grown"] == ["network.node_embedding.weight"]
    assert "molecule_stability" in read_log(tmp_path / "c" / "log.jsonl", kind="eval")[-1]
    ckpt = str(result.last_checkpoint)

    # a one-property model initialised from the two-property one denoises as it did with that property
    # alone (the other's constant "missing" embedding folded in), given and missing alike
    single = Trainer(config(["gap"]), out_dir=tmp_path / "g")
    single.init_weights(ckpt, partial=True)
    assert single.init_report == {"adapted": [f"condition_embedding.{n}" for n in ("weight", "bias", "missing")]}
    two = moldiff.load_pretrained(ckpt).model
    two_config = {"model": {"conditioning": PROPS}}
    batch = collate_bonded([small_qm9[i] for i in range(3)])
    g = torch.Generator().manual_seed(0)
    t = torch.rand(3, generator=g)
    with torch.no_grad():  # two training steps barely move the condition's weights: make them count
        for name, value in two.named_parameters():
            if name.startswith("condition_embedding") or ".film." in name or "node_embedding" in name:
                value.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(value.numel()))
    single.model.load_state_dict(single.model.adapt_trained_weights(two.state_dict(), two_config)[0])
    values = torch.tensor([[0.5, -0.3]] * 3)
    outputs = {}
    for given in (True, False):
        mask = torch.tensor([[False, given]] * 3)
        want = two.denoise_batch(batch, t, condition=values, condition_mask=mask)
        got = single.model.denoise_batch(batch, t, condition=values[:, 1:], condition_mask=mask[:, 1:])
        for block in want:
            torch.testing.assert_close(got[block], want[block], rtol=1e-4, atol=1e-5)
        outputs[given] = torch.cat([want[block].flatten() for block in sorted(want)])
    assert (outputs[True] - outputs[False]).abs().max() > 1e-2  # the condition matters

    gen = moldiff.load_pretrained(ckpt)
    alpha_lo, alpha_hi = gen.model.stats["context_range"]["alpha"]
    both = {"alpha": float(alpha_lo + alpha_hi) / 2, "gap": 0.25}
    assert len(gen.sample(2, seed=0, condition=both)) == 2
    assert len(gen.sample(2, seed=0, condition={"gap": 0.25}, guidance_scale=2.0)) == 2  # a subset, guided
    records = gen.sample_arrays(3, seed=0, condition={"alpha": alpha_hi})
    big = gen.plan(40, 0, condition={"alpha": alpha_hi})  # p(N | c): the largest molecules have the largest alpha
    assert float(big.float().mean()) > float(gen.plan(40, 0).float().mean()) and len(records) == 3
    with pytest.raises(InputError, match="outside this model's training range of alpha"):
        gen.sample(2, condition={"alpha": alpha_hi + 100})
    with pytest.raises(InputError, match="finite"):
        gen.sample(2, condition={"alpha": float("nan")}, force=True)
    with pytest.raises(InputError, match="unknown \\['mu'\\]"):
        gen.sample(2, condition={"mu": 1.0})

    out = tmp_path / "s.sdf"
    base = ["sample", "--model", ckpt, "--num", "2", "--steps", "2", "--no-progress", "--out", str(out)]
    assert main([*base, "--condition", "alpha=80", "--condition", "gap=0.25", "--guidance-scale", "2"]) == 0
    assert "alpha=80 gap=0.25" in out.read_text()
    assert main([*base, "--condition", f"alpha={alpha_hi + 100}", "--overwrite"]) == 2
    assert "outside this model's training range of alpha" in capsys.readouterr().err
    assert main([*base, "--condition", "alpha=nan", "--force-condition", "--overwrite"]) == 2
    assert main([*base, "--condition", "gap=0.2", "--condition", "gap=0.3", "--overwrite"]) == 2
    assert "'gap' twice" in capsys.readouterr().err
    assert main([*base, "--condition", "mu=1", "--overwrite"]) == 2
    assert "unknown ['mu']" in capsys.readouterr().err


def test_the_table3_benchmark_runs_on_several_properties_of_a_bond_aware_model(small_qm9, tmp_path):
    import json
    import os
    import subprocess
    import sys

    from moldiff.molecules.predictor import PropertyPredictor, PropertyPredictorConfig, predictor_stats

    generator = write_weights(
        _model(small_qm9, condition_dropout=0.3, sample_steps=3), "molecule_flow", tmp_path / "g.pt"
    )
    judges = []
    for seed, props in enumerate((["alpha"], ["gap"])):
        torch.manual_seed(seed)
        model = PropertyPredictor(
            PropertyPredictorConfig(properties=props, hidden=16, layers=2), predictor_stats(small_qm9, props)
        )
        judges += ["--predictor", str(write_weights(model, "property_predictor", tmp_path / f"p{seed}.pt"))]
    command = [
        sys.executable, str(REPO / "benchmarks" / "qm9_conditional.py"), "--generator", str(generator), *judges,
        "--num", "3", "--batch-size", "2", "--steps", "2", "--num-real", "8", "--guidance-scale", "2",
        "--predictor-scale", "0.5", "--guide-predictor", judges[1], "--samples-dir", str(tmp_path / "rows"),
    ]  # fmt: skip

    def table3(*extra):
        env = dict(os.environ, OMP_NUM_THREADS="1")
        run = subprocess.run([*command, *extra], capture_output=True, text=True, env=env, timeout=300)
        assert run.returncode == 0, run.stderr
        return run, json.loads(run.stdout.strip().splitlines()[-1])

    run, result = table3()
    assert result["properties"] == ["alpha", "gap"] and result["results"]["gap"]["unit"] == "meV"
    for name, one in result["results"].items():
        assert one["family"] == "bond-aware"
        assert {
            "Naive (shuffled labels)",
            "#Atoms",
            "ours, no guidance",
            "ours, CFG s=2",
            "predictor on real molecules",
        } <= set(one["mae"])
        guided = [k for k in one["mae"] if k.startswith("ours, predictor guidance 0.5")]
        # alpha has its own guide (the alpha predictor), gap is guided by its judge, and says so
        assert guided == ["ours, predictor guidance 0.5" + ("" if name == "alpha" else " (guided by the judge)")]
        assert all(
            0 <= q["molecule_stability"] <= 1 and 0 <= q["connected_validity"] <= 1 for q in one["quality"].values()
        )
    assert result["summary"]["EDM (published)"] == {"alpha": 2.76, "gap": 655}
    assert result["summary"]["GeoBFN (published)"] == {"alpha": 2.34, "gap": 577}
    assert "Table 3, MAE" in run.stdout and "mol. st." in run.stdout
    # every generated row was kept and a second run scores the same molecules without sampling again
    assert len(list((tmp_path / "rows").glob("*.pkl"))) == 2 * 3
    assert all(one["reused_samples"] == [] for one in result["results"].values())
    _, again = table3()
    for name, one in again["results"].items():
        generated = [k for k in one["mae"] if k.startswith("ours")]
        assert one["reused_samples"] == generated
        assert {k: one["mae"][k] for k in generated} == {k: result["results"][name]["mae"][k] for k in generated}
    # another seed is other molecules: not reused
    _, other = table3("--seed", "1")
    assert all(one["reused_samples"] == [] for one in other["results"].values())
