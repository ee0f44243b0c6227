"""A user's own molecules: an SDF file, a gzipped SDF or a folder of them as a dataset.

Every record must hold one molecule with a 3D conformer. Hydrogens are kept as written unless
``remove_hydrogens=True``; bonds in the file are not used (generative models see atoms and
coordinates; bonds are perceived again when decoding). The atom-type vocabulary is the set of
elements found, ordered by atomic number, unless one is given.

Example::

    ds = SDFDataset("../shared/data/molecules/drug_like_3d.sdf.gz")
    ds.vocabulary   # ('H', 'C', 'N', 'O', 'F', 'S', 'Cl', 'Br', 'I')
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from moldiff.errors import InputError

from .dataset import MoleculeDataset
from .elements import atomic_number, element_symbol, vocabulary_from_atomic_numbers
from .rdkit_io import MoleculeRecordError, SDFRecord, SkippedRecord, read_sdf_records

__all__ = ["SDFDataset", "find_sdf_files"]

_SDF_SUFFIXES = (".sdf", ".sdf.gz", ".sd", ".sd.gz", ".mol", ".mol.gz")


def find_sdf_files(path_or_folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """The SDF files named by a path: the file itself, or the ``.sdf``/``.sdf.gz``/``.sd``/``.mol``
    files of a folder, sorted by name.

    Raises:
        FileNotFoundError: if the path does not exist or the folder holds no SDF file.
    """
    path = Path(path_or_folder).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no such SDF file or folder: {path}")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in path.glob(pattern) if p.is_file() and p.name.lower().endswith(_SDF_SUFFIXES))
    if not files:
        raise FileNotFoundError(f"no SDF files ({', '.join(_SDF_SUFFIXES)}) in {path}")
    return files


class SDFDataset(MoleculeDataset):
    """Molecules from SDF files as a map-style torch ``Dataset`` of ``MoleculeGraph``.

    Args:
        path_or_folder: an ``.sdf`` / ``.sdf.gz`` file or a folder of them.
        on_error: ``"raise"`` stops at the first bad record with a :class:`MoleculeRecordError`
            naming file, record number and title; ``"skip"`` leaves bad records out and counts
            them in :attr:`skipped`. Bad means: unparsable block, unknown element, non-finite
            coordinates, fewer than 2 atoms, no 3D conformer, or (with ``vocabulary``) an element
            outside the vocabulary. (default: ``"raise"``)
        remove_hydrogens: drop hydrogen atoms after reading. (default: False)
        vocabulary: a fixed atom-type vocabulary (e.g. the training set's, to featurise a test set
            the same way); by default the elements present, ordered by atomic number.
        recursive: also search sub-folders. (default: False)

    Attributes:
        vocabulary / atom_types: the atom-type symbols.
        skipped: ``{reason: count}`` of skipped records (empty when none).
        skipped_records: one :class:`SkippedRecord` per skipped record.
        titles: title line of each molecule, ``[M]``.
        sources: ``(file, record number)`` of each molecule, ``[M]``.
        files: the files read.
    """

    def __init__(
        self,
        path_or_folder: str | os.PathLike,
        on_error: Literal["raise", "skip"] = "raise",
        remove_hydrogens: bool = False,
        vocabulary: Sequence[str] | None = None,
        recursive: bool = False,
    ) -> None:
        self.files = find_sdf_files(path_or_folder, recursive=recursive)
        self.skipped_records: list[SkippedRecord] = []
        allowed = None if vocabulary is None else {atomic_number(s) for s in vocabulary}
        records: list[SDFRecord] = []
        for path in self.files:
            for rec in read_sdf_records(path, on_error=on_error, skipped=self.skipped_records):
                if allowed is not None:
                    outside = sorted({element_symbol(z) for z in rec.atomic_numbers.tolist() if z not in allowed})
                    if outside:
                        error = MoleculeRecordError(
                            rec.path,
                            rec.record,
                            rec.title,
                            "not_in_vocabulary",
                            f"elements {outside} are not in the vocabulary {tuple(vocabulary)}",
                        )
                        if on_error == "raise":
                            raise error
                        self.skipped_records.append(
                            SkippedRecord(rec.path, rec.record, rec.title, "not_in_vocabulary", str(error))
                        )
                        continue
                records.append(rec)
        if not records:
            reasons = dict(Counter(s.reason for s in self.skipped_records))
            first = f"; first: {self.skipped_records[0].message}" if self.skipped_records else ""
            raise InputError(f"no usable molecules in {path_or_folder} (skipped: {reasons or 'none'}{first})")
        self.skipped: dict[str, int] = dict(Counter(s.reason for s in self.skipped_records))
        self.titles = [r.title for r in records]
        self.sources = [(r.path, r.record) for r in records]
        z = np.concatenate([r.atomic_numbers for r in records])
        pos = np.concatenate([r.positions for r in records])
        charges = np.concatenate([r.formal_charges for r in records])
        num_atoms = np.array([len(r.atomic_numbers) for r in records])
        if remove_hydrogens:
            keep = z != 1
            num_atoms = np.bincount(np.repeat(np.arange(len(records)), num_atoms)[keep], minlength=len(records))
            z, pos, charges = z[keep], pos[keep], charges[keep]
        if vocabulary is None:
            vocabulary = vocabulary_from_atomic_numbers(z)
        elif remove_hydrogens:
            vocabulary = tuple(s for s in vocabulary if s != "H")
        key = hashlib.sha1(
            repr(
                (
                    [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in self.files],
                    remove_hydrogens,
                    tuple(vocabulary),
                    on_error,
                )
            ).encode()
        ).hexdigest()[:12]
        super().__init__(z, pos, num_atoms, vocabulary, charges=charges, cache_key=f"sdf-{key}")

    def __repr__(self) -> str:
        skipped = f", skipped={self.skipped}" if self.skipped else ""
        return f"SDFDataset({len(self)} molecules, vocabulary={self.vocabulary}{skipped})"
