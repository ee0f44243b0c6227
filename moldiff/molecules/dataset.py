"""A map-style dataset of molecules held as packed numpy arrays, shared by QM9 and SDF datasets.

Molecule ``i`` owns atoms ``offsets[i]:offsets[i+1]`` of the concatenated per-atom arrays, so
memory is proportional to the number of atoms (no padding). Items are
:class:`~moldiff.molecules.graph.MoleculeGraph`; batch them with
:func:`~moldiff.molecules.graph.collate_molecules` (``dataset.loader(...)`` does it for you).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from moldiff.hub import cache_dir as _cache_dir
from moldiff.train.checkpoint import atomic_write

from . import bonds
from .elements import element_symbol, vocabulary_index
from .graph import MoleculeGraph, collate_molecules
from .metrics import molecule_smiles

__all__ = ["MoleculeDataset", "training_smiles"]


class MoleculeDataset(Dataset):
    """Molecules stored as packed arrays.

    Args:
        atomic_numbers: ``[N]`` atomic numbers of all atoms, molecule after molecule.
        positions: ``[N, 3]`` coordinates in Å.
        num_atoms: ``[M]`` atoms per molecule.
        vocabulary: atom-type symbols; ``atom_types`` index into it. Every element present must
            be in it.
        properties: optional ``[M, P]`` molecular properties, named by ``property_names``.
        property_names: names of the ``P`` property columns.
        charges: optional ``[N]`` formal charges.
        ids: optional ``[M]`` integer identifiers (e.g. QM9's GDB-9 index).
        cache_key: a string identifying exactly these molecules (used to cache derived data such
            as training SMILES), or ``None`` to disable caching.
    """

    def __init__(
        self,
        atomic_numbers: np.ndarray,
        positions: np.ndarray,
        num_atoms: np.ndarray,
        vocabulary: Sequence[str],
        properties: np.ndarray | None = None,
        property_names: Sequence[str] = (),
        charges: np.ndarray | None = None,
        ids: np.ndarray | None = None,
        cache_key: str | None = None,
    ) -> None:
        self._z = np.ascontiguousarray(atomic_numbers, dtype=np.int64)
        self._pos = np.ascontiguousarray(positions, dtype=np.float32)
        self._num_atoms = np.asarray(num_atoms, dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(self._num_atoms)])
        if self._offsets[-1] != len(self._z) or self._pos.shape != (len(self._z), 3):
            raise ValueError(
                f"inconsistent arrays: num_atoms sums to {self._offsets[-1]}, atomic_numbers has {len(self._z)}, "
                f"positions {self._pos.shape}"
            )
        self._vocabulary = tuple(vocabulary)
        table = vocabulary_index(self._vocabulary)
        types = table[self._z]
        if (types < 0).any():
            missing = sorted({element_symbol(z) for z in np.unique(self._z[types < 0]).tolist()})
            raise ValueError(f"elements {missing} are not in the vocabulary {self._vocabulary}")
        self._types = types
        self.property_names = tuple(property_names)
        self._properties = (
            None if properties is None else np.asarray(properties, dtype=np.float32).reshape(len(self._num_atoms), -1)
        )
        if self._properties is not None and self._properties.shape[1] != len(self.property_names):
            raise ValueError(f"{self._properties.shape[1]} property columns but names {self.property_names}")
        self._charges = None if charges is None else np.asarray(charges, dtype=np.int64)
        self._ids = None if ids is None else np.asarray(ids, dtype=np.int64)
        self.cache_key = cache_key

    # -- sizes and vocabulary ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._num_atoms)

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """Atom-type symbols, in the order of ``atom_types`` indices (and of one-hot columns)."""
        return self._vocabulary

    @property
    def atom_types(self) -> tuple[str, ...]:
        """Alias of :attr:`vocabulary`."""
        return self._vocabulary

    @property
    def num_atoms(self) -> np.ndarray:
        """Atoms per molecule, ``[M]`` int64."""
        return self._num_atoms

    def num_atoms_histogram(self) -> dict[int, int]:
        """How many molecules have each number of atoms, ``{num_atoms: count}`` sorted by size."""
        sizes, counts = np.unique(self._num_atoms, return_counts=True)
        return {int(s): int(c) for s, c in zip(sizes, counts)}

    def atom_type_counts(self) -> dict[str, int]:
        """How many atoms of each vocabulary type the dataset holds."""
        counts = np.bincount(self._types, minlength=len(self._vocabulary))
        return {s: int(c) for s, c in zip(self._vocabulary, counts)}

    # -- access --------------------------------------------------------------------------------
    def molecule(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Atomic numbers ``[n]`` int64 and positions ``[n, 3]`` float32 (Å) of molecule ``i``."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"molecule index {i} out of range for {len(self)} molecules")
        i %= len(self)
        s = slice(self._offsets[i], self._offsets[i + 1])
        return self._z[s], self._pos[s]

    def iter_molecules(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(atomic_numbers, positions)`` of every molecule, in order."""
        for i in range(len(self)):
            yield self.molecule(i)

    def __getitem__(self, i: int) -> MoleculeGraph:
        z, pos = self.molecule(int(i))
        i = int(i) % len(self)
        s = slice(self._offsets[i], self._offsets[i + 1])
        return MoleculeGraph(
            pos=torch.from_numpy(pos.copy()),
            atomic_numbers=torch.from_numpy(z.copy()),
            atom_types=torch.from_numpy(self._types[s].copy()),
            properties=None if self._properties is None else torch.from_numpy(self._properties[i].copy()),
            charges=None if self._charges is None else torch.from_numpy(self._charges[s].copy()),
            index=None if self._ids is None else int(self._ids[i]),
        )

    def loader(self, batch_size: int, shuffle: bool = False, **kwargs) -> DataLoader:
        """A ``DataLoader`` yielding :class:`~moldiff.molecules.graph.PackedMolecules`."""
        return DataLoader(self, batch_size=batch_size, shuffle=shuffle, collate_fn=collate_molecules, **kwargs)


def _smiles_pipeline_version() -> str:
    """Identifies the SMILES pipeline (bond tables + RDKit version) in cache file names."""
    import rdkit

    text = repr((bonds.BOND_LENGTHS_PM, bonds.EDM_MARGINS_PM, rdkit.__version__))
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def _rough_duration(low: float, high: float) -> str:
    """``"about 55-120 s"``, ``"about 2-4 min"``, ``"under a second"``: a time range for people."""
    if high < 1:
        return "under a second"
    if high < 120:
        return f"about {max(1, round(low))}-{round(high)} s"
    return f"about {max(1, round(low / 60))}-{round(high / 60)} min"


def training_smiles(
    dataset: MoleculeDataset,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> frozenset[str]:
    """The SMILES of a training set, made by EDM's pipeline, for novelty.

    Each molecule gets EDM bonds from its coordinates and is sanitized; the canonical SMILES of the
    whole molecule is kept (molecules that do not sanitize are left out), as EDM does when it builds
    its reference list. The result is cached under the cache folder when ``dataset.cache_key`` is
    set (about one to two minutes for QM9's 100,000 training molecules, announced by one line on stderr;
    then instant).

    Args:
        dataset: the training set (e.g. ``QM9Dataset("train")``).
        cache_dir: cache folder (default: see :func:`moldiff.hub.cache_dir`).
        progress: show a progress bar while computing.

    Returns:
        The set of SMILES.
    """
    path: Path | None = None
    if getattr(dataset, "cache_key", None):
        path = _cache_dir(cache_dir) / f"smiles_{dataset.cache_key}_{_smiles_pipeline_version()}.txt"
        if path.is_file():
            return frozenset(path.read_text(encoding="utf-8").split())
        took = _rough_duration(len(dataset) * 0.55e-3, len(dataset) * 1.2e-3)  # 55-120 s for QM9's 100k
        print(
            f"moldiff: computing the SMILES of {len(dataset):,} training molecules ({dataset.cache_key}) for the "
            f"novelty metric, once: cached for next time ({took}) in {path}",
            file=sys.stderr,
            flush=True,
        )
    items = dataset.iter_molecules()
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, total=len(dataset), desc="training SMILES", unit="mol")
    smiles = {s for z, pos in items if (s := molecule_smiles(z, pos)) is not None}
    if path is not None:
        text = "\n".join(sorted(smiles)) + "\n"
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return frozenset(smiles)
