"""2D depictions of generated molecules: a grid of RDKit drawings as a PNG or SVG file.

Each molecule is drawn with the bonds of the chosen protocol (:func:`~moldiff.molecules.properties.scored_molecule`:
the file's own bonds, or bonds perceived from the coordinates), hydrogens removed and 2D coordinates
computed (RDKit's ``rdDepictor``), by ``rdkit.Chem.Draw.MolsToGridImage``. A molecule that does not
sanitise is drawn as it is, without aromaticity perception, and its legend starts with ``invalid``.
Legends are the SMILES (default) or chosen properties (:data:`~moldiff.molecules.properties.PROPERTIES`).

Example::

    draw_file("samples.sdf", "grid.png", bonds="file", legend=["qed", "sa"], per_row=5)
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal, Sequence

from moldiff.errors import InputError
from moldiff.files import atomic_write

from .properties import PROPERTIES, PROPERTY_NAMES, format_value, molecule_table, read_scored_items, scored_molecule

__all__ = ["DRAW_FORMATS", "depiction", "depiction_grid", "draw_file", "grid_shape", "legend_texts", "parse_legend"]

#: Output formats of :func:`draw_file`, by suffix.
DRAW_FORMATS = {".png": "png", ".svg": "svg"}


def parse_legend(spec: str | Sequence[str] | None) -> list[str]:
    """``"qed,sa"`` -> ``["qed", "sa"]`` (``None``: ``["smiles"]``).

    Raises:
        InputError: an unknown property name (the message lists the known ones).
    """
    if spec is None:
        return ["smiles"]
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec) if n.strip()]
    unknown = [n for n in names if n not in PROPERTIES]
    if unknown or not names:
        what = f"unknown {unknown}" if unknown else "no property named"
        raise InputError(f"legend: {what}; known: {', '.join(PROPERTY_NAMES)}")
    return names


def legend_texts(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> list[str]:
    """One legend per property row: the values of ``names`` (``smiles`` alone shows the SMILES;
    several show ``name value`` pairs); ``invalid`` (and the values that exist) for an invalid molecule."""
    out = []
    for row in rows:
        parts = []
        for name in names:
            text = format_value(name, row.get(name))
            if name == "smiles" and len(names) == 1:
                parts.append(text)
            elif text != "":
                parts.append(f"{name} {text}")
        legend = "  ".join(p for p in parts if p)
        if row.get("valid") is False:
            legend = "invalid" + (f"  {legend}" if legend else "")
        out.append(legend)
    return out


def depiction(mol):
    """A copy of an RDKit molecule ready to draw in 2D: sanitised when it can be (else drawn as it is),
    hydrogens removed, 2D coordinates, RDKit's drawing preparation (wedges, Kekulé form)."""
    from rdkit import Chem, rdBase
    from rdkit.Chem import rdDepictor
    from rdkit.Chem.Draw import rdMolDraw2D

    with rdBase.BlockLogs():
        m = Chem.Mol(mol)
        try:
            Chem.SanitizeMol(m)
            ok = True
        except Exception:  # noqa: BLE001 - RDKit raises several types; an invalid molecule is drawn as is
            ok = False
            m.UpdatePropertyCache(strict=False)
        try:
            m = Chem.RemoveHs(m, sanitize=ok)
        except Exception:  # noqa: BLE001 - a hydrogen RDKit will not remove (e.g. H2) stays
            pass
        m.RemoveAllConformers()
        rdDepictor.Compute2DCoords(m)
        try:
            return rdMolDraw2D.PrepareMolForDrawing(m, kekulize=ok, addChiralHs=False)
        except Exception:  # noqa: BLE001 - Kekulé form impossible: aromatic flags drawn as they are
            return rdMolDraw2D.PrepareMolForDrawing(m, kekulize=False, addChiralHs=False)


def depiction_grid(
    molecules: Sequence[Any],
    legends: Sequence[str] | None = None,
    *,
    per_row: int = 5,
    size: int = 250,
    image_format: Literal["png", "svg"] = "png",
) -> bytes | str:
    """A grid of 2D depictions (:func:`depiction` of each RDKit molecule) by ``MolsToGridImage``.

    Args:
        molecules: RDKit molecules (drawn with their own bonds).
        legends: one text under each drawing.
        per_row: drawings per row; the grid is ``min(per_row, n) * size`` wide and
            ``ceil(n / per_row) * size`` high.
        size: pixels of each drawing's square.
        image_format: ``"png"`` (bytes of a PNG file) or ``"svg"`` (the SVG text).
    """
    from rdkit import rdBase
    from rdkit.Chem import Draw
    from rdkit.Chem.Draw import rdMolDraw2D

    if per_row < 1 or size < 16:
        raise InputError(f"per_row must be at least 1 and size at least 16, got {per_row} and {size}")
    if not molecules:
        raise InputError("no molecules to draw")
    if image_format not in ("png", "svg"):
        raise InputError(f"image_format must be 'png' or 'svg', got {image_format!r}")
    mols = [depiction(m) for m in molecules]
    options = rdMolDraw2D.MolDrawOptions()
    options.prepareMolsBeforeDrawing = False  # prepared above, leniently
    with rdBase.BlockLogs():
        return Draw.MolsToGridImage(
            mols,
            molsPerRow=min(per_row, len(mols)),
            subImgSize=(size, size),
            legends=list(legends) if legends is not None else None,
            useSVG=image_format == "svg",
            returnPNG=image_format == "png",
            drawOptions=options,
        )


def grid_shape(num: int, per_row: int) -> tuple[int, int]:
    """``(columns, rows)`` of a grid of ``num`` drawings."""
    return min(per_row, num), math.ceil(num / per_row)


def draw_file(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    bonds: Literal["edm", "rdkit", "file"] = "edm",
    legend: str | Sequence[str] | None = None,
    per_row: int = 5,
    max_molecules: int = 50,
    size: int = 250,
    on_error: Literal["raise", "skip"] = "raise",
) -> int:
    """Draw the first ``max_molecules`` molecules of a samples file as a grid (what ``moldiff draw`` does).

    Args:
        path: SDF, XYZ file or folder (:func:`~moldiff.molecules.properties.read_scored_items`).
        out: ``.png`` or ``.svg`` (written atomically; the command checks ``--overwrite`` before).
        bonds: the protocol whose bonds are drawn and whose properties the legends show.
        legend: property names for the legends (``"qed,sa"`` or a list; default: the SMILES).
        per_row, size: as :func:`depiction_grid`.
        max_molecules: draw at most this many (the first ones).
        on_error: skip bad SDF records (``"skip"``) or stop.

    Returns:
        The number of molecules drawn.
    """
    out = Path(out)
    image_format = DRAW_FORMATS.get(out.suffix.lower())
    if image_format is None:
        raise InputError(f"--out {out}: a drawing is {' or '.join(DRAW_FORMATS)}, not {out.suffix or 'no suffix'!r}")
    if max_molecules < 1:
        raise InputError(f"max_molecules must be at least 1, got {max_molecules}")
    names = parse_legend(legend)
    items = read_scored_items(path, bonds, on_error)[:max_molecules]
    rows = molecule_table(items, bonds, sorted({"valid", *names}, key=PROPERTY_NAMES.index))
    image = depiction_grid(
        [scored_molecule(m, bonds) for m in items],
        legend_texts(rows, names),
        per_row=per_row,
        size=size,
        image_format=image_format,
    )

    def write(tmp: Path) -> None:
        if isinstance(image, str):  # RDKit's SVG declares encoding iso-8859-1
            tmp.write_bytes(image.encode("iso-8859-1", errors="xmlcharrefreplace"))
        else:
            tmp.write_bytes(image)

    atomic_write(out, write)
    return len(items)
