"""State spaces: everything a sampler needs to know about the shape of the data.

A state space describes one *batch* of items (images, molecules, protein backbones) stored as a
single tensor ``x``. Samplers, losses and guidance only ever touch ``x`` through the space:

* ``randn(generator)``  draws standard Gaussian noise *in the space* (for zero centre-of-mass
  coordinates: an isotropic Gaussian restricted to the subspace, as in EDM, Hoogeboom et al. 2022,
  Sec. 3.2);
* ``project(x)``        maps any tensor of the right shape orthogonally onto the space;
* ``per_item(v)``       broadcasts a per-item vector ``[B]`` to a tensor that multiplies ``x``;
* ``sum_per_item(x)``   reduces ``x`` to one number per item, ``[B]``;
* ``dof``               degrees of freedom per item, ``[B]`` (``(N_i - 1) * 3`` for zero-CoM coordinates);
* ``take_items(x, i)``  the state whose item ``b`` is item ``i[b]`` of ``x`` (particle resampling).

Three kinds are provided:

* :class:`EuclideanSpace` — a dense batch ``[B, ...]`` (images), item ``b`` is ``x[b]``;
* :class:`GraphSpace` — a *packed* graph batch, ``x`` is ``[N, D]`` with a batch-index vector
  ``batch`` of shape ``[N]`` naming each node's graph; optionally zero centre of mass per graph;
* :class:`ProductSpace` — several graph blocks side by side along the last dimension, e.g. atom
  coordinates (zero-CoM, 3 columns) next to atom-type features (Euclidean, K columns).

**Noise per item.** Every ``generator`` argument may be one ``torch.Generator`` (the whole batch
draws from it, in order) or a sequence of ``B`` generators, one per item (:func:`item_generators`):
then item ``b`` draws all its noise from its own generator, so what it gets does not depend on
which other items share its batch. Samplers and spaces pass the argument through unchanged; this is
how moldiff's generators make samples that depend on the seed only, not on the batch size or the
number of processes.

Nothing here knows about chemistry.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, Sequence, Union

import torch

Tensor = torch.Tensor
#: A batch's source of randomness: one generator, one per item, or ``None`` (torch's global one).
Generators = Union[torch.Generator, Sequence[torch.Generator], None]


def item_seed(seed: int, index: int, stream: str = "noise") -> int:
    """The seed of item ``index`` of a job seeded by ``seed`` (a 63-bit hash of the three)."""
    digest = hashlib.sha256(f"moldiff-{stream}:{int(seed)}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def item_generators(
    seed: int, indices: Iterable[int], device: torch.device | str = "cpu", stream: str = "noise"
) -> list[torch.Generator]:
    """One generator per item, seeded by :func:`item_seed`: item ``i`` of a job draws the same noise
    whatever batch it is sampled in.

    Args:
        seed: the job's seed.
        indices: the items' positions in the job (e.g. ``range(start, start + batch)``).
        device: where the noise is drawn.
        stream: a name that separates independent uses of one seed.
    """
    device = torch.device(device)
    return [torch.Generator(device=device).manual_seed(item_seed(seed, i, stream)) for i in indices]


def per_item_randn(
    rows_per_item: Sequence[int],
    tail: tuple[int, ...],
    generators: Sequence[torch.Generator],
    device: torch.device,
    dtype: torch.dtype,
) -> Tensor:
    """Standard normal ``[sum(rows_per_item), *tail]``: the rows of item ``b`` (contiguous, in item
    order) drawn from ``generators[b]``."""
    if len(generators) != len(rows_per_item):
        raise ValueError(f"{len(generators)} generators for {len(rows_per_item)} items")
    parts = [
        torch.randn((int(n), *tail), generator=g, device=device, dtype=dtype) for n, g in zip(rows_per_item, generators)
    ]
    return torch.cat(parts) if parts else torch.empty((0, *tail), device=device, dtype=dtype)


def _per_item(generator: Generators) -> bool:
    return isinstance(generator, (list, tuple))


class StateSpace:
    """Interface shared by every state space. ``B`` is the number of items in the batch."""

    num_items: int
    shape: tuple[int, ...]
    device: torch.device
    dtype: torch.dtype

    def randn(self, generator: Generators = None, dtype: torch.dtype | None = None) -> Tensor:
        """Standard Gaussian noise in the space, shaped like a state; ``generator`` is one generator or
        one per item (see the module docstring)."""
        raise NotImplementedError

    def project(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def take_items(self, x: Tensor, index: Tensor) -> Tensor:
        """The state whose item ``b`` is item ``index[b]`` of ``x`` (``index [B]`` long; items swapped
        this way must have the same size): how particle methods copy one particle onto another."""
        raise NotImplementedError

    def per_item(self, values: Tensor) -> Tensor:
        raise NotImplementedError

    def sum_per_item(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    @property
    def dof(self) -> Tensor:
        raise NotImplementedError

    @property
    def numel_per_item(self) -> Tensor:
        """Number of tensor entries belonging to each item, ``[B]`` (``dof`` plus constrained ones)."""
        raise NotImplementedError

    # Derived helpers: defined once here for every space.
    def mean_per_item(self, x: Tensor) -> Tensor:
        """Mean over each item's entries, ``[B]`` (EDM's per-molecule normalisation of the loss)."""
        return self.sum_per_item(x) / self.numel_per_item.to(x.dtype)

    def dot(self, a: Tensor, b: Tensor) -> Tensor:
        """Per-item inner product ``<a, b>``, ``[B]``."""
        return self.sum_per_item(a * b)

    def norm(self, x: Tensor) -> Tensor:
        """Per-item Euclidean norm, ``[B]``."""
        return self.dot(x, x).clamp_min(0).sqrt()

    def align_known(self, known: Tensor, mask: Tensor, reference: Tensor) -> Tensor:
        """Move ``known`` values into the frame of ``reference`` (used by inpainting).

        For unconstrained spaces this returns ``known``. For zero centre-of-mass blocks the known
        part is translated, per graph, so that its masked mean equals the masked mean of
        ``reference``; the masked part of ``known`` then fits the constrained frame, and replacing
        ``reference[mask]`` by it keeps the centre of mass where it was.
        """
        return known

    def full(self, value: float | Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """A per-item vector ``[B]`` filled with ``value`` (e.g. one noise level for every item)."""
        return torch.full((self.num_items,), float(value), device=self.device, dtype=dtype or self.dtype)

    def log_normal(self, x: Tensor, variance: Tensor | float, mean: Tensor | float = 0.0) -> Tensor:
        """Log-density of an isotropic Gaussian ``N(mean, variance I)`` *restricted to the space*.

        Args:
            x: a point of the space.
            variance: scalar or per-item ``[B]`` variance.
            mean: scalar or point of the space.

        Returns:
            ``[B]``: ``-dof/2 log(2 pi variance) - |x - mean|^2 / (2 variance)``. For zero-CoM
            coordinates the density lives on the ``(N-1)*3``-dimensional subspace (EDM, Eq. 5).
        """
        variance = torch.as_tensor(variance, dtype=x.dtype, device=x.device)
        if variance.dim() == 0:
            variance = variance.expand(self.num_items)
        sq = self.sum_per_item((x - mean) ** 2)
        dof = self.dof.to(x.dtype)
        return -0.5 * dof * torch.log(2 * torch.pi * variance) - 0.5 * sq / variance


@dataclass
class EuclideanSpace(StateSpace):
    """A dense batch of shape ``[B, *item_shape]`` in plain Euclidean space (images, vectors).

    Args:
        shape: full tensor shape including the batch dimension.
        device: torch device (default: CPU).
        dtype: default floating dtype for noise (default: float32).
    """

    shape: tuple[int, ...]
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        self.shape = tuple(int(s) for s in self.shape)
        self.device = torch.device(self.device)
        self.num_items = self.shape[0]

    @classmethod
    def like(cls, x: Tensor) -> "EuclideanSpace":
        return cls(tuple(x.shape), x.device, x.dtype)

    def randn(self, generator=None, dtype=None):
        if _per_item(generator):
            return per_item_randn([1] * self.num_items, self.shape[1:], generator, self.device, dtype or self.dtype)
        return torch.randn(self.shape, generator=generator, device=self.device, dtype=dtype or self.dtype)

    def project(self, x):
        return x

    def take_items(self, x, index):
        return x[index]

    def per_item(self, values):
        return values.reshape((-1,) + (1,) * (len(self.shape) - 1))

    def sum_per_item(self, x):
        return x.reshape(x.shape[0], -1).sum(dim=1)

    @property
    def dof(self):
        n = 1
        for s in self.shape[1:]:
            n *= s
        return torch.full((self.num_items,), n, device=self.device, dtype=torch.long)

    @property
    def numel_per_item(self):
        return self.dof


class GraphSpace(StateSpace):
    """Node features of a packed batch of graphs: ``x`` is ``[N, width]``, no padding.

    Args:
        batch: ``[N]`` long tensor, the graph index of every node, values in ``0..num_graphs-1``.
        width: number of feature columns ``D``.
        num_graphs: number of graphs ``B`` (default: ``batch.max() + 1``; pass it explicitly to
            avoid a device synchronisation).
        zero_com: if true, each graph's columns are constrained to zero mean over its nodes (zero
            centre of mass for coordinates), giving ``(N_i - 1) * width`` degrees of freedom.
        dtype: default floating dtype for noise.
    """

    def __init__(
        self,
        batch: Tensor,
        width: int,
        num_graphs: int | None = None,
        zero_com: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if batch.dim() != 1:
            raise ValueError(f"batch must be a 1-D index vector, got shape {tuple(batch.shape)}")
        self.batch = batch.long()
        self.width = int(width)
        self.num_items = int(batch.max().item()) + 1 if num_graphs is None else int(num_graphs)
        self.zero_com = bool(zero_com)
        self.device = batch.device
        self.dtype = dtype
        self.shape = (batch.numel(), self.width)
        self.num_nodes = torch.bincount(self.batch, minlength=self.num_items)
        if self.zero_com and bool((self.num_nodes < 2).any()):
            raise ValueError("a zero centre-of-mass space needs at least 2 nodes in every graph")

    def with_width(self, width: int, zero_com: bool | None = None) -> "GraphSpace":
        """The same graphs with another number of columns (shares the batch vector and the node
        counts: nothing is recounted)."""
        zero_com = self.zero_com if zero_com is None else bool(zero_com)
        if zero_com and not self.zero_com:
            return GraphSpace(self.batch, width, self.num_items, zero_com, self.dtype)  # checks the sizes
        out = object.__new__(GraphSpace)
        out.__dict__.update(self.__dict__)
        out.width, out.zero_com, out.shape = int(width), zero_com, (self.batch.numel(), int(width))
        return out

    def node_sum(self, x: Tensor) -> Tensor:
        """Sum over each graph's nodes, ``[N, D] -> [B, D]``."""
        out = torch.zeros((self.num_items,) + tuple(x.shape[1:]), device=x.device, dtype=x.dtype)
        return out.index_add_(0, self.batch, x)

    def node_mean(self, x: Tensor) -> Tensor:
        """Mean over each graph's nodes, ``[N, D] -> [B, D]``."""
        counts = self.num_nodes.to(x.dtype).reshape((-1,) + (1,) * (x.dim() - 1))
        return self.node_sum(x) / counts

    def randn(self, generator=None, dtype=None):
        if _per_item(generator):  # nodes of a packed batch are grouped by graph, in graph order
            z = per_item_randn(self.num_nodes.tolist(), (self.width,), generator, self.device, dtype or self.dtype)
        else:
            z = torch.randn(self.shape, generator=generator, device=self.device, dtype=dtype or self.dtype)
        return self.project(z)

    def project(self, x):
        if not self.zero_com:
            return x
        return x - self.node_mean(x)[self.batch]

    def take_items(self, x, index):
        index = torch.as_tensor(index, device=x.device, dtype=torch.long)
        if not bool((self.num_nodes[index] == self.num_nodes).all()):
            raise ValueError("take_items swaps only graphs with the same number of nodes")
        start = torch.cumsum(self.num_nodes, 0) - self.num_nodes
        local = torch.arange(x.shape[0], device=x.device) - start[self.batch]
        return x[start[index][self.batch] + local]

    def per_item(self, values):
        return values[self.batch].unsqueeze(-1)

    def align_known(self, known, mask, reference):
        if not self.zero_com:
            return known
        m = mask.to(known.dtype).expand_as(known)
        count = self.node_sum(m).clamp_min(1.0)
        offset = self.node_sum(m * (reference - known)) / count
        return known + offset[self.batch]

    def sum_per_item(self, x):
        return self.node_sum(x.reshape(x.shape[0], -1).sum(dim=1))

    @property
    def dof(self):
        n = self.num_nodes - 1 if self.zero_com else self.num_nodes
        return n * self.width

    @property
    def numel_per_item(self):
        return self.num_nodes * self.width


class ProductSpace(StateSpace):
    """Graph blocks concatenated along the last dimension, e.g. ``[pos (zero-CoM) | features]``.

    Args:
        blocks: graph spaces over the *same* batch vector; their widths add up to ``x.shape[-1]``.
    """

    def __init__(self, blocks: Sequence[GraphSpace]) -> None:
        if not blocks:
            raise ValueError("a product space needs at least one block")
        first = blocks[0]
        for b in blocks[1:]:
            if b.batch is not first.batch and not torch.equal(b.batch, first.batch):
                raise ValueError("all blocks of a product space must share one batch vector")
        self.blocks = list(blocks)
        self.widths = [b.width for b in self.blocks]
        self.num_items = first.num_items
        self.device = first.device
        self.dtype = first.dtype
        self.batch = first.batch
        self.shape = (first.shape[0], sum(self.widths))

    def split(self, x: Tensor) -> list[Tensor]:
        """Split ``x`` into its blocks along the last dimension."""
        return list(torch.split(x, self.widths, dim=-1))

    def randn(self, generator=None, dtype=None):
        return torch.cat([b.randn(generator, dtype) for b in self.blocks], dim=-1)

    def project(self, x):
        return torch.cat([b.project(xb) for b, xb in zip(self.blocks, self.split(x))], dim=-1)

    def take_items(self, x, index):
        return self.blocks[0].take_items(x, index)  # the blocks share their rows

    def per_item(self, values):
        return self.blocks[0].per_item(values)

    def align_known(self, known, mask, reference):
        mask = mask.expand_as(known)
        parts = zip(self.blocks, self.split(known), self.split(mask), self.split(reference))
        return torch.cat([b.align_known(k, m, r) for b, k, m, r in parts], dim=-1)

    def sum_per_item(self, x):
        return self.blocks[0].sum_per_item(x)

    @property
    def dof(self):
        return sum(b.dof for b in self.blocks)

    @property
    def numel_per_item(self):
        return sum(b.numel_per_item for b in self.blocks)


def zero_com_space(batch: Tensor, num_graphs: int | None = None, dim: int = 3, dtype=torch.float32) -> GraphSpace:
    """Coordinates of a packed batch of point clouds with zero centre of mass per graph."""
    return GraphSpace(batch, dim, num_graphs, zero_com=True, dtype=dtype)


def molecule_space(
    batch: Tensor, num_features: int, num_graphs: int | None = None, dtype=torch.float32
) -> ProductSpace:
    """EDM's state: ``[pos (3, zero-CoM) | atom features (num_features, Euclidean)]`` per node."""
    pos = GraphSpace(batch, 3, num_graphs, zero_com=True, dtype=dtype)
    if num_features == 0:
        return ProductSpace([pos])
    return ProductSpace([pos, pos.with_width(num_features, zero_com=False)])
