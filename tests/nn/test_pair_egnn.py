"""PairEGNN: coordinates E(3)-equivariant, node and pair outputs invariant, and a permutation of the atoms
moves node outputs and pair outputs consistently (pair outputs are symmetric in i, j)."""

import torch

from moldiff.core import edge_permutation, upper_triangle_edges
from moldiff.nn.pair_egnn import PairEGNN
from moldiff.testing import random_permutation_within_graphs, random_rotation


def _setup(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    batch = torch.tensor([0] * 5 + [1] * 7)
    pairs = upper_triangle_edges(batch, 2)
    pos = torch.randn(12, 3, generator=g, dtype=dtype) * 1.5
    h = torch.randn(12, 6, generator=g, dtype=dtype)
    pair_attr = torch.randn(pairs.shape[1], 4, generator=g, dtype=dtype)
    torch.manual_seed(0)
    net = PairEGNN(6, 4, 5, 3, hidden=16, pair_hidden=8, layers=3, coords_range=2.0, normalization_factor=3.0).to(dtype)
    for layer in net.layers:  # let the coordinates move visibly, so the checks are not trivially about pos
        torch.nn.init.normal_(layer.coord_out.weight, std=0.3)
    return net, batch, pairs, pos, h, pair_attr, g


def test_coordinates_are_equivariant_and_features_invariant_under_rotations_reflections_translations():
    net, batch, pairs, pos, h, pair_attr, g = _setup()
    x, node, pair = net(pos, h, pair_attr, pairs)
    assert (x - pos).abs().max() > 1e-2  # the network does move the atoms
    for reflection in (False, True):
        q = random_rotation(g, reflection=reflection)
        shift = torch.randn(1, 3, generator=g, dtype=torch.float64) * 3
        x2, node2, pair2 = net(pos @ q.T + shift, h, pair_attr, pairs)
        torch.testing.assert_close(x2, x @ q.T + shift, atol=1e-9, rtol=1e-9)
        torch.testing.assert_close(node2, node, atol=1e-9, rtol=1e-9)
        torch.testing.assert_close(pair2, pair, atol=1e-9, rtol=1e-9)


def test_permuting_atoms_permutes_node_and_pair_outputs_consistently():
    net, batch, pairs, pos, h, pair_attr, g = _setup()
    x, node, pair = net(pos, h, pair_attr, pairs)
    perm = random_permutation_within_graphs(batch, g)
    moved = edge_permutation(perm, batch, 2)
    x2, node2, pair2 = net(pos[perm], h[perm], pair_attr[moved], pairs)
    torch.testing.assert_close(x2, x[perm], atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(node2, node[perm], atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(pair2, pair[moved], atol=1e-9, rtol=1e-9)


def test_graphs_of_a_batch_do_not_see_each_other():
    net, batch, pairs, pos, h, pair_attr, g = _setup()
    x, node, pair = net(pos, h, pair_attr, pairs)
    first = batch == 0
    sub_pairs = upper_triangle_edges(batch[first], 1)
    x1, node1, pair1 = net(pos[first], h[first], pair_attr[: sub_pairs.shape[1]], sub_pairs)
    torch.testing.assert_close(x1, x[first], atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(pair1, pair[: sub_pairs.shape[1]], atol=1e-9, rtol=1e-9)
