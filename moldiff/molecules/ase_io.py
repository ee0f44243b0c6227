"""RDKit molecules to and from ASE ``Atoms``, so generated molecules go straight into ASE calculators.

:func:`to_ase` keeps what an ASE calculator reads and what the way back needs:

* ``numbers`` and ``positions`` (Å) of every atom of the molecule (hydrogens are atoms; add RDKit's
  implicit ones first with ``Chem.AddHs(mol, addCoords=True)``);
* the **formal charges** as the initial charges (``atoms.get_initial_charges()``): calculators such
  as tblite's ``TBLite`` take their sum as the total charge; the total is also in ``atoms.info["charge"]``;
* the **bonds** as ``atoms.info["bonds"]``, an ``[B, 3]`` int64 array of rows ``(i, j, class)``
  (:data:`~moldiff.molecules.bond_metrics.BOND_CLASSES`: 1 single, 2 double, 3 triple, 4 aromatic).
  It lives in memory and moves with the atoms through an optimiser; file formats may drop it.

:func:`from_ase` builds the RDKit molecule from those bonds when ``info["bonds"]`` is there, and
otherwise perceives them from the coordinates with RDKit's ``rdDetermineBonds.DetermineBonds``
(connectivity from covalent radii, then bond orders and formal charges for the total charge).

ASE is imported inside the functions (the optional extra ``ase``: ``pip install 'moldiff[ase]'``).

Example::

    from ase.optimize import BFGS
    from tblite.ase import TBLite

    atoms = to_ase(mol)                            # a sampled molecule, charges and bonds kept
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    BFGS(atoms, logfile=None).run(fmax=0.05)
    relaxed = from_ase(atoms)                      # the same bonds, relaxed coordinates
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np

from moldiff._optional import require
from moldiff.errors import InputError

from .bond_metrics import bonded_molecule, mol_bond_arrays
from .rdkit_io import build_molecule, mol_to_arrays

__all__ = ["from_ase", "to_ase"]


def _ase():
    return require("ase", extra="ase", purpose="moldiff's ASE conversion")


def to_ase(mol: Any, conf_id: int = -1):
    """An ASE ``Atoms`` of an RDKit molecule's conformer (or a list of ``Atoms`` for a list of molecules).

    Args:
        mol: an RDKit molecule with a conformer, or a sequence of them.
        conf_id: the conformer (default: the first).

    Returns:
        ``ase.Atoms`` with the formal charges as initial charges, ``info["charge"]`` (their sum) and
        ``info["bonds"]`` (``[B, 3]`` rows ``(i, j, class)``); see the module docstring.

    Raises:
        ValueError: the molecule has no conformer, or a bond type without a moldiff class (dative, ...).
    """
    if isinstance(mol, Sequence) and not hasattr(mol, "GetAtoms"):
        return [to_ase(m, conf_id) for m in mol]
    ase = _ase()
    z, pos = mol_to_arrays(mol, conf_id)
    _, charges, index, classes = mol_bond_arrays(mol)
    atoms = ase.Atoms(numbers=z, positions=pos)
    atoms.set_initial_charges(charges.astype(np.float64))
    atoms.info["charge"] = int(charges.sum())
    atoms.info["bonds"] = np.concatenate([index, classes[:, None]], axis=1).astype(np.int64)
    return atoms


def _formal_charges(atoms) -> np.ndarray:
    """The initial charges as integer formal charges, or zeros when they are not integers."""
    q = np.asarray(atoms.get_initial_charges(), dtype=np.float64)
    return q.round().astype(np.int64) if np.allclose(q, q.round()) else np.zeros(len(q), dtype=np.int64)


def from_ase(atoms: Any, *, charge: int | None = None, bonds: Literal["auto", "perceive"] = "auto"):
    """The RDKit molecule of an ASE ``Atoms`` (or a list of molecules for a list of ``Atoms``).

    Args:
        atoms: ``ase.Atoms`` (from :func:`to_ase`, a calculator, a file) or a sequence of them.
        charge: the total charge used to perceive bonds (default: ``info["charge"]``, else the sum of
            the initial charges rounded, else 0).
        bonds: ``"auto"`` uses ``info["bonds"]`` when present (with the initial charges as formal
            charges) and perceives bonds otherwise; ``"perceive"`` always perceives them with RDKit's
            ``rdDetermineBonds.DetermineBonds``. (default: ``"auto"``)

    Returns:
        ``rdkit.Chem.Mol`` with a 3D conformer (not sanitised when the bonds come from ``info``:
        :func:`~moldiff.molecules.bond_metrics.bonded_molecule` builds them exactly as given).

    Raises:
        InputError: RDKit finds no bond orders consistent with the atoms and the total charge.
    """
    if isinstance(atoms, Sequence) and not hasattr(atoms, "get_positions"):
        return [from_ase(a, charge=charge, bonds=bonds) for a in atoms]
    if bonds not in ("auto", "perceive"):
        raise ValueError(f"bonds must be 'auto' or 'perceive', got {bonds!r}")
    z = np.asarray(atoms.get_atomic_numbers(), dtype=np.int64)
    pos = np.asarray(atoms.get_positions(), dtype=np.float64)
    q = _formal_charges(atoms)
    stored = atoms.info.get("bonds")
    if bonds == "auto" and stored is not None:
        rows = np.asarray(stored, dtype=np.int64).reshape(-1, 3)
        return bonded_molecule(z, q, pos, rows)
    if charge is None:
        charge = int(atoms.info.get("charge", int(round(float(np.asarray(atoms.get_initial_charges()).sum())))))
    try:
        return build_molecule(z, pos, bonds="rdkit", total_charge=int(charge))
    except ValueError as err:
        raise InputError(
            f"cannot perceive the bonds of {atoms.get_chemical_formula()} (charge {charge}): {err}"
        ) from None
