"""moldiff.data: datasets and batching.

* :mod:`~moldiff.data.molecule_graph`: ``MoleculeGraph``, ``PackedMolecules``, ``collate_molecules``
  (packed graph batches, no padding);
* :mod:`~moldiff.data.qm9`: ``load_qm9``, ``QM9Dataset`` (EDM split), property units;
* :mod:`~moldiff.data.sdf`: ``SDFDataset`` for a user's own SDF files;
* :mod:`~moldiff.data.molecule_dataset`: the shared array-backed ``MoleculeDataset`` and
  ``training_smiles`` (reference SMILES for novelty, cached);
* :mod:`~moldiff.data.cache`: the cache folder (``MOLDIFF_CACHE_DIR`` or ``~/.cache/moldiff``) and the
  shared data folder (``MOLDIFF_DATA_DIR`` or ``../shared/data``).

Names are imported lazily, so ``import moldiff.data`` stays cheap.
"""

from __future__ import annotations

from moldiff._lazy import lazy_exports

_EXPORTS = {
    "MoleculeGraph": "molecule_graph",
    "PackedMolecules": "molecule_graph",
    "collate_molecules": "molecule_graph",
    "MoleculeDataset": "molecule_dataset",
    "training_smiles": "molecule_dataset",
    "QM9Dataset": "qm9",
    "QM9_PROPERTIES": "qm9",
    "HARTREE_TO_EV": "qm9",
    "HARTREE_TO_MEV": "qm9",
    "edm_split_indices": "qm9",
    "load_qm9": "qm9",
    "SDFDataset": "sdf",
    "cache_dir": "cache",
    "shared_data_dir": "cache",
}

_SUBMODULES = ("molecule_graph", "molecule_dataset", "qm9", "sdf", "cache")

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _SUBMODULES)
