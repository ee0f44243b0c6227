"""Graph builders and reductions against brute force."""

from __future__ import annotations

import pytest
import torch

from moldiff.nn.graph import (
    IndexPlan,
    build_edges,
    fully_connected_edges,
    knn_edges,
    radius_edges,
    remove_mean,
    scatter_sum,
    segment_sum,
    sequence_edges,
    sort_edges,
)

SIZES = [1, 5, 0, 9, 2, 13]  # includes an empty graph and a single node


def make_batch(sizes, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    pos = torch.randn(batch.numel(), 3, generator=g, dtype=dtype) * 2
    return pos, batch


def pairs(edge_index):
    return [tuple(e) for e in edge_index.t().tolist()]


def brute_force(pos, batch, keep):
    """All (i, j), i != j, same graph, keep(i, j, d) — in (i, j) order."""
    n = batch.numel()
    d = torch.cdist(pos, pos)
    return [(i, j) for i in range(n) for j in range(n) if i != j and batch[i] == batch[j] and keep(i, j, d)]


def brute_force_ranked(pos, batch, cutoff, k):
    """For each i: neighbours within cutoff sorted by (distance, index), first k, then by j."""
    n = batch.numel()
    d = torch.cdist(pos, pos)
    out = []
    for i in range(n):
        cand = [j for j in range(n) if j != i and batch[j] == batch[i] and d[i, j] < cutoff]
        cand.sort(key=lambda j: (float(d[i, j]), j))
        out += [(i, j) for j in sorted(cand[:k])]
    return out


def test_fully_connected_matches_brute_force():
    pos, batch = make_batch(SIZES)
    ei = fully_connected_edges(batch, num_graphs=len(SIZES))
    assert pairs(ei) == brute_force(pos, batch, lambda i, j, d: True)
    assert ei.shape[1] == sum(n * (n - 1) for n in SIZES)


def test_fully_connected_edge_cases():
    assert fully_connected_edges(torch.zeros(0, dtype=torch.long), num_graphs=0).shape == (2, 0)
    assert fully_connected_edges(torch.tensor([0, 1, 2])).shape == (2, 0)  # singletons only
    with pytest.raises(ValueError, match="sorted"):
        fully_connected_edges(torch.tensor([1, 0]))


@pytest.mark.parametrize("cutoff", [0.5, 2.0, 100.0])
def test_radius_matches_brute_force(cutoff):
    pos, batch = make_batch(SIZES, seed=1)
    ei = radius_edges(pos, batch, cutoff, num_graphs=len(SIZES))
    assert pairs(ei) == brute_force(pos, batch, lambda i, j, d: d[i, j] < cutoff)
    # tiny chunks give the same graph
    assert torch.equal(radius_edges(pos, batch, cutoff, chunk_size=7), ei)


@pytest.mark.parametrize("max_neighbours", [1, 3])
def test_radius_max_neighbours_keeps_closest(max_neighbours):
    pos, batch = make_batch(SIZES, seed=2)
    ei = radius_edges(pos, batch, 2.5, max_neighbours=max_neighbours)
    assert pairs(ei) == brute_force_ranked(pos, batch, 2.5, max_neighbours)


@pytest.mark.parametrize("k", [1, 4, 20])
def test_knn_matches_brute_force(k):
    pos, batch = make_batch(SIZES, seed=3)
    ei = knn_edges(pos, batch, k)
    assert pairs(ei) == brute_force_ranked(pos, batch, float("inf"), k)
    assert torch.equal(knn_edges(pos, batch, k, chunk_size=5), ei)
    assert ei.shape[1] == sum(n * min(k, max(n - 1, 0)) for n in SIZES)


def test_large_system_chunked_equals_unchunked():
    """1,000 atoms: a chunk of 64 x 1000 distances gives the same graphs as one block."""
    g = torch.Generator().manual_seed(0)
    pos = torch.rand(1000, 3, generator=g) * 20
    batch = torch.zeros(1000, dtype=torch.long)
    small = 64 * 1000
    assert torch.equal(radius_edges(pos, batch, 3.0, chunk_size=small), radius_edges(pos, batch, 3.0))
    assert torch.equal(knn_edges(pos, batch, 8, chunk_size=small), knn_edges(pos, batch, 8))


def test_sequence_edges():
    batch = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    ei = sequence_edges(batch, offsets=(1, 2))
    expect = sorted((i, j) for i in range(7) for j in range(7) if batch[i] == batch[j] and abs(i - j) in (1, 2))
    assert pairs(ei) == expect


def test_build_edges_dispatch():
    pos, batch = make_batch([4, 6])
    assert torch.equal(build_edges("full", pos, batch), fully_connected_edges(batch))
    assert torch.equal(build_edges("knn", pos, batch, knn=2), knn_edges(pos, batch, 2))
    with pytest.raises(ValueError):
        build_edges("delaunay", pos, batch)


def test_index_plan_matches_index_add_and_is_differentiable():
    g = torch.Generator().manual_seed(0)
    n = 6
    for index in (torch.tensor([0, 0, 1, 3, 3, 3, 5]), torch.tensor([3, 0, 5, 3, 1, 0, 3])):  # sorted / not
        plan = IndexPlan(index, n)
        src = torch.randn(index.numel(), 4, generator=g, dtype=torch.float64, requires_grad=True)
        x = torch.randn(n, 4, generator=g, dtype=torch.float64, requires_grad=True)
        assert torch.allclose(plan.scatter(src), scatter_sum(src, index, n))
        assert torch.allclose(segment_sum(src, index, n), scatter_sum(src, index, n))
        assert torch.equal(plan.gather(x), x[index])
        assert torch.autograd.gradcheck(plan.scatter, (src,))
        assert torch.autograd.gradcheck(plan.gather, (x,))
        assert torch.autograd.gradgradcheck(plan.scatter, (src,))


def test_sort_edges_permutes_attributes():
    ei = torch.tensor([[2, 0, 1, 0], [0, 2, 0, 1]])
    attr = torch.arange(4.0)[:, None]
    sorted_ei, sorted_attr = sort_edges(ei, attr)
    assert pairs(sorted_ei) == [(0, 1), (0, 2), (1, 0), (2, 0)]
    assert sorted_attr.squeeze(1).tolist() == [3.0, 1.0, 2.0, 0.0]


def test_remove_mean_zero_com_per_graph():
    pos, batch = make_batch([3, 7, 12])
    out = remove_mean(pos + 5.0, batch, 3)
    com = torch.zeros(3, 3, dtype=torch.float64).index_add_(0, batch, out)
    assert com.abs().max() < 1e-12
