"""Fixtures of the protein tests: the shared CATH archive (read in place) and crafted PDB text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moldiff.proteins.geometry import ideal_helix


@pytest.fixture(scope="session")
def cath_tar(shared_data) -> Path:
    path = shared_data / "proteins" / "cath_domains_1000.tar.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def pdb_text(
    n: int = 8, *, skip_ca: int | None = None, break_after: int | None = None, resnames: dict[int, str] | None = None
) -> str:
    """A small helical chain with N, CA and C atoms per residue, optionally broken on purpose.

    Args:
        n: residues.
        skip_ca: residue (1-based) written without its CA atom.
        break_after: residues after this one (1-based) are shifted by 10 A (a chain break).
        resnames: ``{residue: name}`` overrides (MSE goes to a HETATM record, as in the PDB).
    """
    ca = ideal_helix(n).numpy()
    lines, serial = [], 1
    for i in range(n):
        shift = np.array([10.0, 0.0, 0.0]) if break_after is not None and i >= break_after else 0.0
        name = (resnames or {}).get(i + 1, "ALA")
        record = "HETATM" if name == "MSE" else "ATOM  "
        for atom, offset in (("N", -0.8), ("CA", 0.0), ("C", 0.8)):
            if atom == "CA" and skip_ca == i + 1:
                continue
            x, y, z = ca[i] + shift + offset
            lines.append(
                f"{record}{serial:5d}  {atom:<3} {name} A{i + 1:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00 20.00"
                f"           {atom[0]}"
            )
            serial += 1
    return "\n".join(lines + ["END"]) + "\n"
