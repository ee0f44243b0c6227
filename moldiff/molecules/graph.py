"""Molecules as graphs and packed batches (no padding to the largest molecule).

A batch of ``B`` molecules with ``N`` atoms in total is stored as concatenated per-atom tensors
plus a ``batch`` vector naming each atom's molecule, the layout of torch_geometric and of
:class:`moldiff.core.spaces.GraphSpace`::

    pos            [N, 3] float32   coordinates, Å
    atomic_numbers [N]    long
    atom_types     [N]    long      index into the dataset's vocabulary
    batch          [N]    long      molecule index 0..B-1, sorted
    num_atoms      [B]    long
    properties     [B, P] float32   optional
    charges        [N]    long      optional formal charges

Example:
    >>> import torch
    >>> a = MoleculeGraph(torch.zeros(2, 3), torch.tensor([6, 8]), torch.tensor([1, 3]))
    >>> b = MoleculeGraph(torch.ones(3, 3), torch.tensor([1, 1, 8]), torch.tensor([0, 0, 3]))
    >>> batch = collate_molecules([a, b])
    >>> batch.batch.tolist(), batch.num_atoms.tolist()
    ([0, 0, 1, 1, 1], [2, 3])
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Sequence

import torch

__all__ = ["MoleculeGraph", "PackedMolecules", "collate_molecules"]

Tensor = torch.Tensor


def _move(obj: Any, fn) -> Any:
    """A copy of a dataclass with ``fn`` applied to every tensor field."""
    return replace(
        obj, **{f.name: fn(getattr(obj, f.name)) for f in fields(obj) if isinstance(getattr(obj, f.name), Tensor)}
    )


@dataclass
class MoleculeGraph:
    """One molecule.

    Attributes:
        pos: ``[n, 3]`` float32 coordinates in Å.
        atomic_numbers: ``[n]`` long.
        atom_types: ``[n]`` long, index into the dataset's vocabulary.
        properties: optional ``[P]`` float32 molecular properties (units: see the dataset).
        charges: optional ``[n]`` long formal charges.
        index: optional identifier of the molecule in its dataset (e.g. the QM9 GDB-9 id).
    """

    pos: Tensor
    atomic_numbers: Tensor
    atom_types: Tensor
    properties: Tensor | None = None
    charges: Tensor | None = None
    index: int | None = None

    def __post_init__(self) -> None:
        n = self.atomic_numbers.shape[0]
        if self.pos.shape != (n, 3) or self.atom_types.shape != (n,):
            raise ValueError(
                f"inconsistent molecule: pos {tuple(self.pos.shape)}, atomic_numbers {tuple(self.atomic_numbers.shape)}, "
                f"atom_types {tuple(self.atom_types.shape)}"
            )
        if self.charges is not None and self.charges.shape != (n,):
            raise ValueError(f"charges must have shape ({n},), got {tuple(self.charges.shape)}")

    @property
    def num_atoms(self) -> int:
        return int(self.atomic_numbers.shape[0])

    def to(self, device: torch.device | str) -> "MoleculeGraph":
        return _move(self, lambda t: t.to(device))


@dataclass
class PackedMolecules:
    """A packed batch of molecules (see the module docstring for the fields and shapes).

    ``ptr`` ``[B + 1]`` holds the offsets: molecule ``b`` owns atoms ``ptr[b]:ptr[b+1]``.
    """

    pos: Tensor
    atomic_numbers: Tensor
    atom_types: Tensor
    batch: Tensor
    num_atoms: Tensor
    ptr: Tensor
    properties: Tensor | None = None
    charges: Tensor | None = None
    index: Tensor | None = None

    @property
    def num_graphs(self) -> int:
        """Number of molecules ``B``."""
        return int(self.num_atoms.shape[0])

    def __len__(self) -> int:
        return self.num_graphs

    @property
    def device(self) -> torch.device:
        return self.pos.device

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "PackedMolecules":
        """A copy with every tensor moved to ``device``."""
        return _move(self, lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> "PackedMolecules":
        """Pinned-memory copy (called by ``DataLoader(pin_memory=True)``)."""
        return _move(self, lambda t: t.pin_memory())

    def one_hot(self, num_classes: int) -> Tensor:
        """One-hot atom types, ``[N, num_classes]`` float32."""
        return torch.nn.functional.one_hot(self.atom_types, num_classes).to(self.pos.dtype)

    def unbatch(self) -> list[MoleculeGraph]:
        """The molecules of the batch, on the batch's device."""
        out = []
        ptr = self.ptr.tolist()
        index = None if self.index is None else self.index.tolist()
        for b in range(self.num_graphs):
            s = slice(ptr[b], ptr[b + 1])
            out.append(
                MoleculeGraph(
                    self.pos[s],
                    self.atomic_numbers[s],
                    self.atom_types[s],
                    None if self.properties is None else self.properties[b],
                    None if self.charges is None else self.charges[s],
                    None if index is None else index[b],
                )
            )
        return out


def collate_molecules(molecules: Sequence[MoleculeGraph]) -> PackedMolecules:
    """Pack molecules into one batch (usable as a ``DataLoader`` ``collate_fn``).

    Args:
        molecules: a non-empty sequence of :class:`MoleculeGraph`. Optional fields
            (``properties``, ``charges``, ``index``) are packed when every molecule has them.

    Returns:
        :class:`PackedMolecules` with ``pos`` in float32.
    """
    if len(molecules) == 0:
        raise ValueError("collate_molecules needs at least one molecule")
    num_atoms = torch.tensor([m.num_atoms for m in molecules], dtype=torch.long)
    ptr = torch.zeros(len(molecules) + 1, dtype=torch.long)
    torch.cumsum(num_atoms, 0, out=ptr[1:])
    batch = torch.repeat_interleave(torch.arange(len(molecules)), num_atoms)

    def cat_optional(name: str) -> Tensor | None:
        values = [getattr(m, name) for m in molecules]
        if any(v is None for v in values):
            return None
        return torch.cat(values)

    properties = None
    if all(m.properties is not None for m in molecules):
        properties = torch.stack([m.properties for m in molecules]).to(torch.float32)
    index = None
    if all(m.index is not None for m in molecules):
        index = torch.tensor([m.index for m in molecules], dtype=torch.long)
    return PackedMolecules(
        pos=torch.cat([m.pos for m in molecules]).to(torch.float32),
        atomic_numbers=torch.cat([m.atomic_numbers for m in molecules]).long(),
        atom_types=torch.cat([m.atom_types for m in molecules]).long(),
        batch=batch,
        num_atoms=num_atoms,
        ptr=ptr,
        properties=properties,
        charges=cat_optional("charges"),
        index=index,
    )
