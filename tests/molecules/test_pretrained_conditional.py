"""The shipped conditional models of EDM's Table 3 protocol: the bond-aware generators (one per
property, `qm9_alpha` ... `qm9_Cv`, and the six-property `qm9_cond`) with their judge `qm9_judge` and
guide `qm9_guide`; the EDM-style `qm9_alpha_edm` with `qm9_alpha_predictor` and `qm9_alpha_guide`
(CPU-size models; figures in the README)."""

from importlib.util import find_spec

import numpy as np
import pytest
import torch

import moldiff
from moldiff.pretrained import PRETRAINED, PROPERTY_MODELS, pretrained_path

needs_qm9 = pytest.mark.skipif(
    find_spec("qm9pack") is None, reason="qm9pack is not installed (pip install 'moldiff[qm9]')"
)


def test_the_shipped_models_are_small_and_follow_edms_halves():
    names = ("qm9_alpha_edm", "qm9_alpha_predictor", "qm9_alpha_guide")
    gen, pred, guide = (torch.load(pretrained_path(n), map_location="cpu", weights_only=True) for n in names)
    for ckpt, name in zip((gen, pred, guide), names):
        assert ckpt["format"] == "moldiff-weights" and pretrained_path(name).stat().st_size < 20 * 2**20
    assert gen["task"] == "molecules" and gen["config"]["model"]["context"] == ["alpha"]
    for predictor in (pred, guide):
        assert predictor["task"] == "property_predictor" and predictor["config"]["model"]["properties"] == ["alpha"]
    # the generator and its judge never saw each other's molecules; the guide learnt from the generator's
    assert gen["config"]["data"]["half"] == guide["config"]["data"]["half"] == "generator"
    assert pred["config"]["data"]["half"] == "predictor"
    assert gen["dataset_stats"]["num_molecules"] == pred["dataset_stats"]["num_molecules"] == 50_000


def test_the_shipped_generator_follows_its_condition():
    generator = moldiff.load_pretrained("qm9_alpha_edm")
    predictor = moldiff.load_pretrained("qm9_alpha_predictor")
    # Two targets inside the alpha range of 19-atom training molecules, a fifth of it from each end.
    lo, hi = generator.model.stats["context_given_n"]["alpha"][19]["range"]
    low, high = lo + 0.2 * (hi - lo), hi - 0.2 * (hi - lo)
    kw = dict(seed=0, sampler="dpmpp_2m", steps=50, num_atoms=19)
    predicted = {
        target: predictor.predict_molecules(generator.sample_arrays(32, condition={"alpha": target}, **kw))[:, 0]
        for target in (low, high)
    }
    # the samples' predicted polarisability moves with the condition: at least half of the asked change
    assert predicted[high].mean() - predicted[low].mean() > 0.5 * (high - low), (low, high, predicted)


@needs_qm9
def test_the_shipped_predictor_is_far_better_than_the_atom_count_on_the_generators_half():
    from moldiff.molecules.qm9 import QM9Dataset
    from moldiff.molecules.training_data import training_half_rows

    predictor = moldiff.load_pretrained("qm9_alpha_predictor")
    train = QM9Dataset("train", properties=["alpha"])
    rows = np.random.default_rng(0).choice(training_half_rows(len(train), "generator"), 500, replace=False)
    labels = np.asarray(train.property("alpha"), dtype=np.float64)[rows]
    mae = np.abs(predictor.predict_molecules([train.molecule(int(i)) for i in rows])[:, 0] - labels).mean()
    atoms = np.abs(predictor.atom_count_baseline.predict(np.asarray(train.num_atoms)[rows])["alpha"] - labels).mean()
    assert mae < 0.35 * atoms, (mae, atoms)


def test_predictor_guidance_of_the_shipped_pair_stays_finite_and_divergence_is_named():
    generator = moldiff.load_pretrained("qm9_alpha_edm")
    predictor = moldiff.load_pretrained("qm9_alpha_predictor")
    kw = dict(
        seed=0,
        sampler="dpmpp_2m",
        steps=50,
        num_atoms=19,
        condition={"alpha": 80.0},
        predictor=predictor,
        predictor_scale=1.0,
    )
    pairs = generator.sample_arrays(16, **kw)  # defaults: sigma <= GUIDANCE_SIGMA_MAX, bounded steps
    assert all(np.isfinite(x).all() and np.abs(x).max() < 20 for _, x in pairs)
    # unbounded guidance of this model from sigma = 5 diverges: a clear error, not molecules of NaN
    with pytest.raises(FloatingPointError, match="predictor guidance diverged at noise level"):
        generator.sample_arrays(16, **kw, predictor_sigma_max=5.0, predictor_max_step=None)


# ------------------------------------------------------------------------------------------------
# The bond-aware conditional model on all six properties, its judge and its guide (issue 23)
# ------------------------------------------------------------------------------------------------

SIX = ["alpha", "gap", "homo", "lumo", "mu", "Cv"]


def test_the_six_property_models_are_small_and_follow_edms_halves():
    names = ("qm9_cond", "qm9_judge", "qm9_guide")
    gen, judge, guide = (torch.load(pretrained_path(n), map_location="cpu", weights_only=True) for n in names)
    for ckpt, name in zip((gen, judge, guide), names):
        assert ckpt["format"] == "moldiff-weights" and pretrained_path(name).stat().st_size < 20 * 2**20
    assert gen["task"] == "molecule_flow" and gen["config"]["model"]["conditioning"] == SIX
    for predictor in (judge, guide):
        assert predictor["task"] == "property_predictor" and predictor["config"]["model"]["properties"] == SIX
    assert gen["config"]["data"]["half"] == guide["config"]["data"]["half"] == "generator"
    assert judge["config"]["data"]["half"] == "predictor"
    assert judge["config"]["train"]["seed"] != guide["config"]["train"]["seed"]


def test_every_property_name_is_its_own_model_or_the_six_property_one():
    assert set(PROPERTY_MODELS) <= set(SIX) and PROPERTY_MODELS
    for name in SIX:
        own = pretrained_path(f"qm9_{name}") != pretrained_path("qm9_cond")
        assert own == (name in PROPERTY_MODELS), name


@pytest.mark.parametrize("name", PROPERTY_MODELS)
def test_a_property_with_a_model_of_its_own_has_a_small_one_trained_on_the_generators_half(name):
    """EDM's one model per property: qm9_<property> is conditioned on that property alone, never
    dropped but for the null condition of classifier-free guidance, trained on the generator half."""
    path = pretrained_path(f"qm9_{name}")
    assert path != pretrained_path("qm9_cond") and path.stat().st_size < 5 * 2**20
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = ckpt["config"]["model"]
    assert ckpt["format"] == "moldiff-weights" and ckpt["task"] == "molecule_flow"
    assert model["conditioning"] == [name] and model["condition_dropout"] == 0 and model["condition_dropout_all"] > 0
    assert ckpt["config"]["data"]["half"] == "generator"
    assert ckpt["dataset_stats"]["num_molecules"] == 50_000
    # the description names the model it was fine-tuned from, as its recorded recipe does
    start = ckpt["config"]["train"]["init_from"]
    assert start in ("qm9", "qm9_cond") and f"{start} fine-tuned with {name}" in PRETRAINED[f"qm9_{name}"][1]


def test_each_property_name_draws_its_own_property_alone_without_a_condition():
    """Sampled without a condition, qm9_<property> draws that property from p(c | N); qm9_cond all six."""
    sizes = torch.tensor([9, 14, 19, 19])
    everything = moldiff.load_pretrained("qm9_cond").plan_condition(sizes, seed=0)
    assert sorted(everything) == sorted(SIX)
    for name in ("gap", "Cv"):
        drawn = moldiff.load_pretrained(f"qm9_{name}").plan_condition(sizes, seed=0)
        assert list(drawn) == [name] and drawn[name].shape == (4,)
    # a given condition is taken as given; a one-property model refuses the others, naming its own
    given = moldiff.load_pretrained("qm9_cond").plan_condition(sizes, condition={"alpha": 70.0, "gap": 0.25})
    assert sorted(given) == ["alpha", "gap"]
    with pytest.raises(ValueError, match="lumo"):
        moldiff.load_pretrained("qm9_lumo").sample(2, condition={"alpha": 70.0})


@pytest.mark.parametrize(("model", "name"), [("qm9_alpha", "alpha"), ("qm9_lumo", "lumo"), ("qm9_cond", "gap")])
def test_the_conditional_generators_follow_their_condition(model, name):
    generator = moldiff.load_pretrained(model)
    judge = moldiff.load_pretrained("qm9_judge")
    column = judge.properties.index(name)
    lo, hi = generator.model.stats["context_given_n"][name][19]["range"]
    low, high = lo + 0.2 * (hi - lo), hi - 0.2 * (hi - lo)
    predicted = {
        target: judge.predict_molecules(generator.sample_arrays(24, seed=0, num_atoms=19, condition={name: target}))[
            :, column
        ]
        for target in (low, high)
    }
    # the judged property moves with the condition, by at least a quarter of the asked change (an
    # unconditional model: none; Table 3's slopes beyond the atom count: qm9_alpha 0.66, qm9_lumo 0.65,
    # qm9_cond's gap 0.46, README). Medians: a broken molecule now and then gets an absurd judged value
    # (alpha -622 bohr^3)
    moved = np.median(predicted[high]) - np.median(predicted[low])
    assert moved > 0.25 * (high - low), (low, high, predicted)


@needs_qm9
def test_the_six_property_judge_is_far_better_than_the_atom_count_on_the_generators_half():
    """On real molecules the judge sees for the first time: its MAE is well under that of a model of
    the atom count alone, for each property (measured 0.08-0.30 of it; EDM's 7 x 128 judge is 3-4x
    more accurate again, README)."""
    from moldiff.molecules.qm9 import QM9Dataset
    from moldiff.molecules.training_data import training_half_rows

    judge = moldiff.load_pretrained("qm9_judge")
    train = QM9Dataset("train", properties=SIX)
    rows = np.random.default_rng(0).choice(training_half_rows(len(train), "generator"), 500, replace=False)
    predicted = judge.predict_molecules([train.molecule(int(i)) for i in rows])
    atoms = judge.atom_count_baseline.predict(np.asarray(train.num_atoms)[rows])
    for column, name in enumerate(SIX):
        labels = np.asarray(train.property(name), dtype=np.float64)[rows]
        mae, baseline = np.abs(predicted[:, column] - labels).mean(), np.abs(atoms[name] - labels).mean()
        assert mae < 0.4 * baseline, (name, mae, baseline)
