"""One seeding rule for every modality: a sample depends on the seed and its position in the job only,
not on the batch size nor on how many processes share the job."""

from __future__ import annotations

import numpy as np
import torch

import moldiff
from moldiff.core import EuclideanSpace, GraphSpace, item_generators, molecule_space


def test_per_item_noise_does_not_depend_on_the_batch():
    sizes = torch.tensor([3, 5, 2, 4])
    batch = torch.repeat_interleave(torch.arange(4), sizes)
    whole = molecule_space(batch, 6, 4).randn(item_generators(7, range(4)))
    halves = [
        molecule_space(torch.repeat_interleave(torch.arange(2), sizes[k : k + 2]), 6, 2).randn(
            item_generators(7, range(k, k + 2))
        )
        for k in (0, 2)
    ]
    assert torch.equal(whole, torch.cat(halves))
    assert torch.allclose(GraphSpace(batch, 3, 4, zero_com=True).node_mean(whole[:, :3]), torch.zeros(4, 3), atol=1e-6)
    images = EuclideanSpace((3, 1, 4, 4)).randn(item_generators(7, range(3)))
    assert torch.equal(images[2:], EuclideanSpace((1, 1, 4, 4)).randn(item_generators(7, [2])))
    assert not torch.equal(images[0], images[1])  # items draw different noise


def test_molecules_do_not_depend_on_batch_size_or_processes():
    from moldiff.molecules.generator import sample_in_processes

    gen = moldiff.load_pretrained("qm9_edm")
    kw = dict(seed=3, sampler="dpmpp_2m", steps=6)
    one = gen.sample_arrays(5, batch_size=5, **kw)
    three = gen.sample_arrays(5, batch_size=2, **kw)
    parallel, _ = sample_in_processes(
        "qm9_edm", gen.plan(5, 3), 3, processes=2, batch_size=2, sampler="dpmpp_2m", steps=6
    )
    for (z1, p1), (z2, p2), (z3, p3) in zip(one, three, parallel):
        assert np.array_equal(z1, z2) and np.array_equal(z1, z3)
        np.testing.assert_allclose(p1, p2, atol=1e-4)
        np.testing.assert_allclose(p1, p3, atol=1e-4)


def test_bond_aware_molecules_do_not_depend_on_batch_size():
    gen = moldiff.load_pretrained("qm9")
    one = gen.sample_arrays(4, seed=2, steps=5, batch_size=4)
    two = gen.sample_arrays(4, seed=2, steps=5, batch_size=3)
    for a, b in zip(one, two):
        assert np.array_equal(a["atomic_numbers"], b["atomic_numbers"]) and np.array_equal(a["bonds"], b["bonds"])
        np.testing.assert_allclose(a["positions"], b["positions"], atol=1e-4)


def test_backbones_do_not_depend_on_batch_size():
    gen = moldiff.load_pretrained("cath_ca")
    a = gen.sample(3, length=20, seed=1, steps=5, batch_size=3, potentials={})
    b = gen.sample(3, length=20, seed=1, steps=5, batch_size=1, potentials={})
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.ca, y.ca, rtol=1e-5, atol=1e-4)  # float rounding of different batch shapes
    assert not np.allclose(a[0].ca, a[1].ca)
    # the guiding potentials (relu thresholds, a per-chain trust region) amplify that rounding to ~3e-3 A
    a = gen.sample(3, length=20, seed=1, steps=5, batch_size=3)
    b = gen.sample(3, length=20, seed=1, steps=5, batch_size=1)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.ca, y.ca, rtol=0, atol=2e-2)


def test_images_do_not_depend_on_batch_size():
    gen = moldiff.load_pretrained("fashion_mnist")
    a = gen.sample(3, seed=2, steps=4, labels=[0, 1, 2], batch_size=3)
    b = gen.sample(3, seed=2, steps=4, labels=[0, 1, 2], batch_size=2)
    assert torch.allclose(a, b, atol=1e-4)
