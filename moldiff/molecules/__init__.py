"""moldiff.molecules: chemistry for generated and real molecules.

* :mod:`~moldiff.molecules.elements`: element symbols <-> atomic numbers, ``QM9_ATOM_TYPES``;
* :mod:`~moldiff.molecules.bonds`: EDM's bond-length tables, ``edm_bond_matrix``, valences and
  ``atom_stability``;
* :mod:`~moldiff.molecules.rdkit_io`: ``build_molecule`` (RDKit Mol with a 3D conformer),
  SDF / XYZ readers and writers;
* :mod:`~moldiff.molecules.metrics`: EDM's metrics (``evaluate_molecules``);
* :mod:`~moldiff.molecules.evaluate`: ``evaluate_sdf`` and ``evaluate_dataset`` for the CLI.

Names are imported lazily: ``import moldiff.molecules`` imports neither RDKit nor torch.
"""

from __future__ import annotations

from moldiff._lazy import lazy_exports

_EXPORTS = {
    "ELEMENT_SYMBOLS": "elements",
    "QM9_ATOM_TYPES": "elements",
    "UnknownElementError": "elements",
    "atomic_number": "elements",
    "atomic_numbers": "elements",
    "element_symbol": "elements",
    "element_symbols": "elements",
    "ALLOWED_VALENCES": "bonds",
    "BOND_LENGTHS_PM": "bonds",
    "EDM_MARGINS_PM": "bonds",
    "atom_stability": "bonds",
    "edm_bond_matrix": "bonds",
    "edm_bond_order": "bonds",
    "molecule_stability": "bonds",
    "MoleculeRecordError": "rdkit_io",
    "XYZFormatError": "rdkit_io",
    "build_molecule": "rdkit_io",
    "mol_to_arrays": "rdkit_io",
    "read_sdf_records": "rdkit_io",
    "read_xyz": "rdkit_io",
    "write_sdf": "rdkit_io",
    "write_xyz": "rdkit_io",
    "assess_molecule": "metrics",
    "evaluate_molecules": "metrics",
    "molecule_smiles": "metrics",
    "evaluate_dataset": "evaluate",
    "evaluate_sdf": "evaluate",
}

_SUBMODULES = ("elements", "bonds", "rdkit_io", "metrics", "evaluate")

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _SUBMODULES)
