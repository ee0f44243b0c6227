"""The shipped conditional pair of EDM's Table 3 protocol: the `qm9_alpha` generator and its judge,
`qm9_alpha_predictor` (CPU-size models; figures in the README)."""

from importlib.util import find_spec

import numpy as np
import pytest
import torch

import moldiff
from moldiff.models.pretrained import pretrained_path

needs_qm9 = pytest.mark.skipif(find_spec("qm9pack") is None, reason="qm9pack is not installed (pip install 'moldiff[qm9]')")


def test_the_shipped_pair_is_small_and_follows_edms_halves():
    gen = torch.load(pretrained_path("qm9_alpha"), map_location="cpu", weights_only=True)
    pred = torch.load(pretrained_path("qm9_alpha_predictor"), map_location="cpu", weights_only=True)
    for ckpt, path in ((gen, pretrained_path("qm9_alpha")), (pred, pretrained_path("qm9_alpha_predictor"))):
        assert ckpt["format"] == "moldiff-weights" and path.stat().st_size < 20 * 2**20
    assert gen["task"] == "molecules" and gen["config"]["model"]["context"] == ["alpha"]
    assert pred["task"] == "property_predictor" and pred["config"]["model"]["properties"] == ["alpha"]
    # generator and judge never saw each other's molecules
    assert gen["config"]["data"]["half"] == "generator" and pred["config"]["data"]["half"] == "predictor"
    assert gen["dataset_stats"]["num_molecules"] == pred["dataset_stats"]["num_molecules"] == 50_000


def test_the_shipped_generator_follows_its_condition():
    generator = moldiff.load_pretrained("qm9_alpha")
    predictor = moldiff.load_pretrained("qm9_alpha_predictor")
    # Two targets inside the alpha range of 19-atom training molecules, a fifth of it from each end.
    lo, hi = generator.model.stats["context_given_n"]["alpha"][19]["range"]
    low, high = lo + 0.2 * (hi - lo), hi - 0.2 * (hi - lo)
    kw = dict(seed=0, sampler="dpmpp_2m", steps=50, num_atoms=19)
    predicted = {target: predictor.predict_molecules(generator.sample_arrays(32, condition={"alpha": target}, **kw))[:, 0]
                 for target in (low, high)}
    # the samples' predicted polarisability moves with the condition: at least half of the asked change
    assert predicted[high].mean() - predicted[low].mean() > 0.5 * (high - low), (low, high, predicted)


@needs_qm9
def test_the_shipped_predictor_is_far_better_than_the_atom_count_on_the_generators_half():
    from moldiff.data.qm9 import QM9Dataset
    from moldiff.models.molecule_task import training_half_rows

    predictor = moldiff.load_pretrained("qm9_alpha_predictor")
    train = QM9Dataset("train", properties=["alpha"])
    rows = np.random.default_rng(0).choice(training_half_rows(len(train), "generator"), 500, replace=False)
    labels = np.asarray(train.property("alpha"), dtype=np.float64)[rows]
    mae = np.abs(predictor.predict_molecules([train.molecule(int(i)) for i in rows])[:, 0] - labels).mean()
    atoms = np.abs(predictor.atom_count_baseline.predict(np.asarray(train.num_atoms)[rows])["alpha"] - labels).mean()
    assert mae < 0.35 * atoms, (mae, atoms)
