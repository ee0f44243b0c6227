"""Reading C-alpha traces from PDB / mmCIF files (Biopython) and writing generated backbones.

Reading (:func:`read_backbone`) keeps one chain of the first model and checks it residue by residue:

* every amino-acid residue needs a CA atom (:class:`MissingCAError`);
* consecutive CA atoms must be closer than ``max_ca_gap`` (4.2 A by default: natural CA-CA is
  3.80 A, cis peptides about 2.9 A) (:class:`ChainBreakError`);
* only the 20 standard amino acids are accepted (:class:`NonStandardResidueError`; MSE, UNK, ...,
  in ATOM or HETATM records); water and ligands (HETATM groups that are not amino acids) are ignored.

Alternate locations follow Biopython (the highest-occupancy atom). All three errors derive from
:class:`StructureError`, a ``ValueError``, and name the file, chain and residue.

Writing (:func:`write_backbone_pdb`) produces what structure tools expect from a CA-only design:
``HEADER``, ``REMARK`` lines, a unit ``CRYST1`` record, one ``ATOM`` line per residue named ``CA``
in ``GLY`` residues of chain ``A`` numbered from 1, motif residues flagged with B-factor 1.00
(0.00 elsewhere), ``TER`` and ``END``. :func:`write_design` adds a JSON sidecar (contig, seed,
motif mapping, ...).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Sequence

import numpy as np

from moldiff.errors import InputError
from moldiff.files import atomic_write, header_text

__all__ = [
    "STANDARD_RESIDUES",
    "StructureError",
    "MissingCAError",
    "ChainBreakError",
    "NonStandardResidueError",
    "Backbone",
    "read_backbone",
    "write_backbone_pdb",
    "write_design",
    "STRUCTURE_SUFFIXES",
    "PDB_MIN",
    "PDB_MAX",
]

#: three-letter code -> one-letter code of the 20 standard amino acids
STANDARD_RESIDUES: dict[str, str] = {
    "ALA": "A",
    "ARG": "R",
    "ASN": "N",
    "ASP": "D",
    "CYS": "C",
    "GLN": "Q",
    "GLU": "E",
    "GLY": "G",
    "HIS": "H",
    "ILE": "I",
    "LEU": "L",
    "LYS": "K",
    "MET": "M",
    "PHE": "F",
    "PRO": "P",
    "SER": "S",
    "THR": "T",
    "TRP": "W",
    "TYR": "Y",
    "VAL": "V",
}

#: The coordinates a PDB ATOM record holds: 8 columns with 3 decimals (``-999.999`` to ``9999.999`` A).
PDB_MIN, PDB_MAX = -999.9995, 9999.9995

#: file name endings read as structures (``.gz`` versions too)
STRUCTURE_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif")


class StructureError(InputError):
    """A structure file that cannot be used as a C-alpha trace."""


class MissingCAError(StructureError):
    """An amino-acid residue without a CA atom."""


class ChainBreakError(StructureError):
    """Two consecutive CA atoms further apart than the allowed gap."""


class NonStandardResidueError(StructureError):
    """A residue that is not one of the 20 standard amino acids (e.g. MSE, UNK)."""


@dataclass
class Backbone:
    """A C-alpha trace of one chain.

    Attributes:
        ca: ``[N, 3]`` float64 CA coordinates in Angstrom, in chain order.
        sequence: one-letter sequence (``"G" * N`` for generated backbones).
        chain: chain identifier.
        residue_ids: the residues' PDB numbers with insertion codes (``"15"``, ``"15A"``).
        name: an identifier (the file stem by default).
    """

    ca: np.ndarray
    sequence: str
    chain: str = "A"
    residue_ids: list[str] = field(default_factory=list)
    name: str = ""

    def __len__(self) -> int:
        return int(self.ca.shape[0])

    def residue_index(self, number: int | str) -> int:
        """Position (0-based) of PDB residue ``number`` in this trace.

        Raises:
            KeyError: naming the chain, when the residue is absent.
        """
        try:
            return self.residue_ids.index(str(number))
        except ValueError:
            raise KeyError(f"residue {self.chain}{number} is not in {self.name or 'the structure'}") from None


def _open_text(source: str | os.PathLike | IO) -> tuple[IO[str], str, bool]:
    """``(text stream, name, is_mmcif)`` for a path (``.gz`` allowed) or an open file."""
    if hasattr(source, "read"):
        name = str(getattr(source, "name", "structure"))
        data = source.read()
        if name.endswith(".gz"):
            name = name[:-3]
            if isinstance(data, bytes):
                try:
                    data = gzip.decompress(data)
                except (OSError, EOFError, zlib.error) as err:
                    raise StructureError(f"{name}.gz: cannot be read: not a valid gzip file ({err})") from None
        text = _text(data, name) if isinstance(data, bytes) else data
        return io.StringIO(text), name, name.lower().endswith((".cif", ".mmcif"))
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"structure file {path} not found")
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise StructureError(f"{path}: cannot be read: not a valid gzip file ({err})") from None
    return io.StringIO(_text(data, str(path))), str(path), name.lower().endswith((".cif", ".mmcif"))


def _text(data: bytes, name: str) -> str:
    """A structure file's bytes as text; binary data (a NUL byte) is refused, naming the file."""
    if b"\x00" in data:
        hint = "; it looks gzip-compressed: add .gz to its name" if data.startswith(b"\x1f\x8b") else ""
        raise StructureError(f"{name}: cannot be read: binary data, not a PDB or mmCIF text file{hint}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_backbone(
    source: str | os.PathLike | IO,
    chain: str | None = None,
    *,
    name: str | None = None,
    max_ca_gap: float | None = 4.2,
    allow_nonstandard: bool = False,
) -> Backbone:
    """Read the C-alpha trace of one chain from a PDB or mmCIF file.

    Args:
        source: a path (``.pdb``, ``.ent``, ``.cif``, ``.mmcif``, optionally ``.gz``) or an open
            text/binary stream whose ``name`` ends like that (e.g. a member of a tar archive).
        chain: chain identifier (default: the first chain with amino-acid residues).
        name: identifier stored in the result (default: the file stem).
        max_ca_gap: largest allowed consecutive CA-CA distance in Angstrom; ``None`` skips the
            check (e.g. for motif files that only need some residues) (default: 4.2).
        allow_nonstandard: keep non-standard amino acids (sequence letter ``X``) instead of raising
            (default: false).

    Returns:
        The :class:`Backbone`.

    Raises:
        FileNotFoundError: for a missing file.
        StructureError: no amino-acid chain, or the chain named is absent.
        MissingCAError, ChainBreakError, NonStandardResidueError: see the module docstring.
    """
    import warnings

    from Bio.PDB import MMCIFParser, PDBParser
    from Bio.PDB.PDBExceptions import PDBConstructionWarning
    from Bio.PDB.Polypeptide import is_aa

    handle, path, mmcif = _open_text(source)
    stem = Path(path).name.split(".")[0]
    parser = MMCIFParser(QUIET=True) if mmcif else PDBParser(QUIET=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PDBConstructionWarning)
        try:
            structure = parser.get_structure(stem, handle)
        except Exception as err:  # Biopython raises many kinds on malformed input
            raise StructureError(f"{path}: cannot parse structure ({err})") from err
    models = list(structure)
    if not models:
        raise StructureError(f"{path}: no atoms found")
    chains = {c.id: c for c in models[0]}
    if chain is None:
        protein = [c for c in chains.values() if any(is_aa(r, standard=False) for r in c)]
        if not protein:
            raise StructureError(f"{path}: no amino-acid chain found")
        selected = protein[0]
    elif chain in chains:
        selected = chains[chain]
    else:
        raise StructureError(f"{path}: chain {chain!r} not found (chains: {', '.join(sorted(chains)) or 'none'})")

    coords, letters, ids = [], [], []
    for residue in selected:
        hetflag, number, icode = residue.id
        if hetflag == "W" or (hetflag.startswith("H_") and not is_aa(residue, standard=False)):
            continue  # water, ligands (ATOM records are always residues of the chain)
        resname = residue.get_resname()
        rid = f"{number}{icode.strip()}"
        where = f"{path}: chain {selected.id} residue {resname} {rid}"
        if resname not in STANDARD_RESIDUES:
            if not allow_nonstandard:
                raise NonStandardResidueError(f"{where} is not one of the 20 standard amino acids")
        if "CA" not in residue:
            raise MissingCAError(f"{where} has no CA atom")
        xyz = residue["CA"].coord.astype(np.float64)
        if not np.isfinite(xyz).all():
            raise StructureError(f"{where}: non-finite CA coordinates {xyz.tolist()}")
        coords.append(xyz)
        letters.append(STANDARD_RESIDUES.get(resname, "X"))
        ids.append(rid)
    if not coords:
        raise StructureError(f"{path}: chain {selected.id} has no amino-acid residues")
    ca = np.stack(coords)
    if max_ca_gap is not None and len(ca) > 1:
        gaps = np.linalg.norm(np.diff(ca, axis=0), axis=1)
        bad = np.nonzero(gaps > max_ca_gap)[0]
        if bad.size:
            i = int(bad[0])
            raise ChainBreakError(
                f"{path}: chain break in chain {selected.id} between residues {ids[i]} and "
                f"{ids[i + 1]} (CA-CA {gaps[i]:.2f} A > {max_ca_gap} A; {bad.size} break(s))"
            )
    return Backbone(ca, "".join(letters), selected.id, ids, name or stem)


def fits_pdb(ca) -> bool:
    """Whether ``[N, 3]`` coordinates are finite and fit the PDB coordinate columns (``PDB_MIN..PDB_MAX``)."""
    ca = np.asarray(ca.detach().cpu() if hasattr(ca, "detach") else ca, dtype=np.float64)
    return bool(np.isfinite(ca).all() and ca.min(initial=0.0) > PDB_MIN and ca.max(initial=0.0) < PDB_MAX)


def write_backbone_pdb(
    path: str | os.PathLike,
    ca: np.ndarray,
    *,
    motif_mask: Sequence[bool] | None = None,
    title: str = "moldiff generated backbone",
    remarks: Sequence[str] = (),
) -> Path:
    """Write a C-alpha trace as a PDB file.

    Args:
        path: output file (folders are created).
        ca: ``[N, 3]`` coordinates in Angstrom (numpy or torch).
        motif_mask: ``[N]`` true for motif residues, written with B-factor 1.00 (others 0.00).
        title: text of the ``HEADER`` line (up to 40 characters are kept).
        remarks: extra ``REMARK 250`` lines.

    Returns:
        The path written.
    """
    ca = np.asarray(ca.detach().cpu() if hasattr(ca, "detach") else ca, dtype=np.float64)
    if ca.ndim != 2 or ca.shape[1] != 3:
        raise ValueError(f"ca must be [N, 3], got {ca.shape}")
    if ca.shape[0] > 9999:
        raise ValueError("a PDB chain holds at most 9999 residues")
    if not fits_pdb(ca):
        raise StructureError(
            f"{path}: coordinates must be finite and within {PDB_MIN:g}..{PDB_MAX:g} A to fit the PDB columns "
            f"(8.3f), got {ca.min():g}..{ca.max():g}"
        )
    mask = np.zeros(len(ca), bool) if motif_mask is None else np.asarray(motif_mask, bool)
    if mask.shape != (len(ca),):
        raise ValueError(f"motif_mask must have {len(ca)} entries, got {mask.shape}")
    # user text (a model path, a contig) is one line of ASCII: a newline would add records (a fake ATOM)
    lines = [
        f"HEADER    {header_text(title, 40, ascii_only=True):<40}",
        "REMARK 250 C-ALPHA TRACE; ALL RESIDUES GLY; B-FACTOR 1.00 = MOTIF RESIDUE",
    ]
    lines += [f"REMARK 250 {header_text(r, ascii_only=True)}"[:80] for r in remarks]
    lines.append("CRYST1    1.000    1.000    1.000  90.00  90.00  90.00 P 1           1")
    for i, (x, y, z) in enumerate(ca):
        b = 1.0 if mask[i] else 0.0
        lines.append(f"ATOM  {i + 1:5d}  CA  GLY A{i + 1:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00{b:6.2f}           C")
    lines.append(f"TER   {len(ca) + 1:5d}      GLY A{len(ca):4d}")
    lines.append("END")
    text = "\n".join(lines) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_design(
    out_dir: str | os.PathLike, name: str, ca: np.ndarray, metadata: dict, *, motif_mask: Sequence[bool] | None = None
) -> tuple[Path, Path]:
    """Write ``<name>.pdb`` and its JSON sidecar ``<name>.json`` into ``out_dir``.

    Args:
        out_dir: output folder.
        name: file stem.
        ca: ``[N, 3]`` coordinates in Angstrom.
        metadata: JSON-serialisable facts about the design (model, seed, sampler, contig, motif
            mapping, motif RMSD, ...); ``length`` is added.
        motif_mask: ``[N]`` motif flags (B-factor 1.00).

    Returns:
        ``(pdb_path, json_path)``.
    """
    out_dir = Path(out_dir)
    remarks = [f"{k.upper()} {metadata[k]}" for k in ("model", "seed", "contig") if metadata.get(k) is not None]
    pdb = write_backbone_pdb(out_dir / f"{name}.pdb", ca, motif_mask=motif_mask, remarks=remarks)
    text = json.dumps({"name": name, "length": int(len(ca)), **metadata}, indent=2) + "\n"
    sidecar = atomic_write(out_dir / f"{name}.json", lambda tmp: tmp.write_text(text))
    return pdb, sidecar
