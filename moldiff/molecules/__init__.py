"""moldiff.molecules: chemistry for generated and real molecules.

* :mod:`~moldiff.molecules.elements`: element symbols <-> atomic numbers, ``QM9_ATOM_TYPES``;
* :mod:`~moldiff.molecules.bonds`: EDM's bond-length tables, ``edm_bond_matrix``, valences and
  ``atom_stability``;
* :mod:`~moldiff.molecules.rdkit_io`: ``build_molecule`` (RDKit Mol with a 3D conformer),
  SDF / XYZ readers and writers;
* :mod:`~moldiff.molecules.metrics`: EDM's metrics (``evaluate_molecules``);
* :mod:`~moldiff.molecules.evaluate`: ``evaluate_file`` (SDF or XYZ samples; ``evaluate_sdf`` is its old
  name) and ``evaluate_dataset`` for the CLI.
* :mod:`~moldiff.molecules.bond_data`: QM9 with bonds and formal charges (``BondedQM9Dataset``,
  ``collate_bonded``: every atom pair's bond class, for models that generate bonds);
* :mod:`~moldiff.molecules.bond_metrics`: metrics of molecules generated with bonds and charges
  (``evaluate_bonded_molecules``, ``bonded_molecule``);
* :mod:`~moldiff.molecules.properties`: per-molecule properties (validity, stability, SMILES, QED, SA
  score, logP, rings, PAINS and Brenk alerts; ``file_properties``, ``molecule_properties``);
* :mod:`~moldiff.molecules.filters`: filter expressions over them (``parse_filter``, ``filter_molecules``);
* :mod:`~moldiff.molecules.draw`: 2D depiction grids (``draw_file``, ``depiction_grid``);
* :mod:`~moldiff.molecules.report`: the self-contained HTML report (``write_report``; needs matplotlib);
* :mod:`~moldiff.molecules.geometry`: physics checks of geometries (MMFF94 and GFN2-xTB relaxation,
  PoseBusters; ``evaluate_geometry``);
* :mod:`~moldiff.molecules.pyg`, :mod:`~moldiff.molecules.pyg_dataset`: torch_geometric graphs
  (``to_pyg``, ``from_pyg``, ``batch_from_pyg``, ``PyGMoleculeDataset``);
* :mod:`~moldiff.molecules.ase_io`: ASE ``Atoms`` (``to_ase``, ``from_ase``).

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
    "evaluate_file": "evaluate",
    "evaluate_sdf": "evaluate",
    "BOND_CLASSES": "bond_metrics",
    "CHARGE_VALUES": "bond_metrics",
    "MIDI_VALENCES": "bond_metrics",
    "STRICT_VALENCES": "bond_metrics",
    "assess_bonded_molecule": "bond_metrics",
    "bonded_molecule": "bond_metrics",
    "canonical_smiles": "bond_metrics",
    "evaluate_bonded_molecules": "bond_metrics",
    "BondDerivationError": "bond_data",
    "BondedBatch": "bond_data",
    "BondedMoleculeGraph": "bond_data",
    "BondedQM9Dataset": "bond_data",
    "collate_bonded": "bond_data",
    "dense_bond_matrix": "bond_data",
    "derive_bonds": "bond_data",
    "load_bonded_qm9": "bond_data",
    "training_bonded_smiles": "bond_data",
    "MoleculeGraph": "graph",
    "PackedMolecules": "graph",
    "collate_molecules": "graph",
    "MoleculeDataset": "dataset",
    "training_smiles": "dataset",
    "QM9Dataset": "qm9",
    "QM9_PROPERTIES": "qm9",
    "HARTREE_TO_EV": "qm9",
    "HARTREE_TO_MEV": "qm9",
    "edm_split_indices": "qm9",
    "load_qm9": "qm9",
    "SDFDataset": "sdf",
    "MoleculeDiffusion": "model",
    "MoleculeModelConfig": "model",
    "MoleculeFlow": "flow_model",
    "MoleculeFlowConfig": "flow_model",
    "MoleculeGenerator": "generator",
    "FlowMoleculeGenerator": "generator",
    "SampledMolecules": "generator",
    "PropertyPredictor": "predictor",
    "PROPERTIES": "properties",
    "file_properties": "properties",
    "molecule_properties": "properties",
    "molecule_table": "properties",
    "write_properties_csv": "properties",
    "FilterError": "filters",
    "filter_molecules": "filters",
    "parse_filter": "filters",
    "depiction_grid": "draw",
    "draw_file": "draw",
    "build_report": "report",
    "write_report": "report",
    "Relaxation": "geometry",
    "evaluate_geometry": "geometry",
    "mmff_relax": "geometry",
    "posebusters_pass_rates": "geometry",
    "xtb_relax": "geometry",
    "xtb_single_point": "geometry",
    "batch_from_pyg": "pyg",
    "from_pyg": "pyg",
    "to_pyg": "pyg",
    "PyGMoleculeDataset": "pyg_dataset",
    "from_ase": "ase_io",
    "to_ase": "ase_io",
}

_SUBMODULES = (
    "elements",
    "bonds",
    "rdkit_io",
    "metrics",
    "evaluate",
    "bond_data",
    "bond_metrics",
    "graph",
    "dataset",
    "qm9",
    "sdf",
    "training_data",
    "model",
    "flow_model",
    "task",
    "flow_task",
    "generator",
    "predictor",
    "properties",
    "filters",
    "draw",
    "report",
    "geometry",
    "pyg",
    "pyg_dataset",
    "ase_io",
)

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _SUBMODULES)
