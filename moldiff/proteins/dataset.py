"""Datasets of C-alpha traces: the shared CATH archive (read in place) or any folder of structures.

* ``cath_domains_1000.tar.gz`` (``../shared/data/proteins/``; see its README): 1,000 CATH domains of
  50-300 residues, read member by member with :mod:`tarfile`, never unpacked;
* a folder (searched recursively) of ``.pdb``, ``.ent``, ``.cif`` or ``.mmcif`` files, optionally
  gzipped: a user's own dataset.

Every structure goes through :func:`~moldiff.proteins.pdb_io.read_backbone`; with
``on_error="raise"`` (default) the first bad file stops loading with its error (missing CA, chain
break, non-standard residue), with ``on_error="skip"`` bad files are skipped and counted by kind
(:attr:`BackboneDataset.skipped`).

**Held-out split.** A structure belongs to the held-out set when the SHA-256 of its name (file
stem) falls in the first ``holdout_fraction`` of the hash range. The split thus depends only on the
names: it is the same for every run, machine and file order, and adding files never moves old
ones between the sets. The default 10% gives about 100 held-out CATH domains.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from moldiff.hub import shared_data_dir

from .pdb_io import STRUCTURE_SUFFIXES, Backbone, StructureError, read_backbone

__all__ = [
    "DEFAULT_CATH",
    "default_cath_path",
    "in_holdout",
    "iter_structures",
    "BackboneDataset",
    "BackboneBatch",
    "collate_backbones",
]

#: the shared CATH archive, relative to the repository's working directory
DEFAULT_CATH = "../shared/data/proteins/cath_domains_1000.tar.gz"


def default_cath_path() -> Path:
    """The CATH archive in the shared data folder (:func:`moldiff.hub.shared_data_dir`:
    ``$MOLDIFF_DATA_DIR/proteins/...`` when set, else :data:`DEFAULT_CATH`)."""
    return shared_data_dir() / "proteins" / Path(DEFAULT_CATH).name


def in_holdout(name: str, fraction: float) -> bool:
    """Whether structure ``name`` is in the fixed held-out set of size ``fraction`` (see module docstring)."""
    h = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") / 2.0**64
    return h < fraction


def _is_structure(name: str) -> bool:
    low = name.lower()
    low = low[:-3] if low.endswith(".gz") else low
    return low.endswith(STRUCTURE_SUFFIXES)


def _stem(name: str) -> str:
    return Path(name).name.split(".")[0]


def iter_structures(source: str | os.PathLike, names: set[str] | None = None) -> Iterator[tuple[str, object]]:
    """Yield ``(name, opened stream or path)`` for every structure of a tar archive or folder.

    Args:
        source: a ``.tar``/``.tar.gz`` archive or a folder.
        names: only these stems (default: all).
    """
    source = Path(source)
    if source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file() and _is_structure(p.name)):
            if names is None or _stem(path.name) in names:
                yield _stem(path.name), path
    elif source.is_file() and tarfile.is_tarfile(source):
        with tarfile.open(source) as tar:
            for member in tar:
                if member.isfile() and _is_structure(member.name) and (names is None or _stem(member.name) in names):
                    handle = io.BytesIO(tar.extractfile(member).read())
                    handle.name = member.name  # read_backbone picks the format from the name
                    yield _stem(member.name), handle
    elif source.exists():
        raise ValueError(f"{source} is neither a folder nor a tar archive of structures")
    else:
        raise FileNotFoundError(f"protein data {source} not found")


def _list_names(source: Path) -> list[str]:
    if source.is_dir():
        return [name for name, _ in iter_structures(source)]
    if source.is_file() and tarfile.is_tarfile(source):
        with tarfile.open(source) as tar:
            return [_stem(m.name) for m in tar.getmembers() if m.isfile() and _is_structure(m.name)]
    return [name for name, _ in iter_structures(source)]  # raises the right error


class BackboneDataset(torch.utils.data.Dataset):
    """C-alpha traces of a CATH archive or a folder, one :class:`~moldiff.proteins.pdb_io.Backbone` per item.

    Args:
        source: tar archive or folder (default: :func:`default_cath_path`).
        split: ``"train"``, ``"holdout"`` or ``"all"`` (default: ``"train"``).
        holdout_fraction: size of the held-out set (default: 0.1).
        on_error: ``"raise"`` or ``"skip"`` bad structures (default: ``"raise"``).
        min_length: skip (and count as ``"too_short"``) shorter chains (default: 2).
        max_length: skip (and count as ``"too_long"``) longer chains (default: none).
        limit: read at most this many structures of the split, in name order (default: all).
        max_ca_gap: chain-break threshold of the reader in A (default: 4.2).

    Attributes:
        backbones: the traces, sorted by name.
        skipped: ``{reason: count}`` of skipped structures (error class names, ``too_short``,
            ``too_long``).
        skipped_files: ``[(name, message)]`` of structures skipped for errors.
    """

    def __init__(
        self,
        source: str | os.PathLike | None = None,
        split: str = "train",
        *,
        holdout_fraction: float = 0.1,
        on_error: str = "raise",
        min_length: int = 2,
        max_length: int | None = None,
        limit: int | None = None,
        max_ca_gap: float = 4.2,
    ) -> None:
        if split not in ("train", "holdout", "all"):
            raise ValueError(f"split must be 'train', 'holdout' or 'all', got {split!r}")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.source = Path(source) if source is not None else default_cath_path()
        self.split = split
        names = sorted(
            n
            for n in _list_names(self.source)
            if split == "all" or in_holdout(n, holdout_fraction) == (split == "holdout")
        )
        if limit is not None:
            names = names[:limit]
        wanted = set(names)
        self.skipped: Counter = Counter()
        self.skipped_files: list[tuple[str, str]] = []
        found: dict[str, Backbone] = {}
        for name, handle in iter_structures(self.source, wanted):
            try:
                bb = read_backbone(handle, name=name, max_ca_gap=max_ca_gap)
            except StructureError as err:
                if on_error == "raise":
                    raise
                self.skipped[type(err).__name__] += 1
                self.skipped_files.append((name, str(err)))
                continue
            if len(bb) < max(min_length, 2):
                self.skipped["too_short"] += 1
            elif max_length is not None and len(bb) > max_length:
                self.skipped["too_long"] += 1
            else:
                found[name] = bb
        self.backbones: list[Backbone] = [found[n] for n in names if n in found]
        if not self.backbones:
            raise ValueError(f"no usable structures in {self.source} (split {split!r}; skipped: {dict(self.skipped)})")

    def __len__(self) -> int:
        return len(self.backbones)

    def __getitem__(self, i: int) -> Backbone:
        return self.backbones[i]

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.backbones]

    def lengths(self) -> np.ndarray:
        """Chain lengths, ``[len(self)]``."""
        return np.array([len(b) for b in self.backbones])

    def length_histogram(self) -> dict[int, int]:
        """``{length: count}`` over the dataset (the model draws sample lengths from it)."""
        return {int(k): int(v) for k, v in sorted(Counter(self.lengths().tolist()).items())}


@dataclass
class BackboneBatch:
    """A packed batch of C-alpha traces (no padding).

    Attributes:
        ca: ``[N, 3]`` float32 CA coordinates in A, each chain in residue order.
        batch: ``[N]`` long, the chain of every residue (sorted).
        lengths: ``[B]`` long, residues per chain.
    """

    ca: torch.Tensor
    batch: torch.Tensor
    lengths: torch.Tensor

    @property
    def num_graphs(self) -> int:
        return int(self.lengths.numel())


def collate_backbones(items: Sequence[Backbone]) -> BackboneBatch:
    """Pack traces into a :class:`BackboneBatch`."""
    lengths = torch.tensor([len(b) for b in items], dtype=torch.long)
    ca = torch.cat([torch.as_tensor(b.ca, dtype=torch.float32) for b in items])
    return BackboneBatch(ca, torch.repeat_interleave(torch.arange(len(items)), lengths), lengths)
