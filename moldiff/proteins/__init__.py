"""moldiff.proteins: diffusion of protein C-alpha backbones (generation and motif scaffolding).

* :mod:`~moldiff.proteins.pdb_io` — PDB/mmCIF reading with clear errors (Biopython), PDB + JSON writing;
* :mod:`~moldiff.proteins.dataset` — the CATH archive (read in place) or a folder, fixed held-out split;
* :mod:`~moldiff.proteins.geometry` — CA bonds, angles, virtual dihedrals, Rg, clashes, secondary structure;
* :mod:`~moldiff.proteins.contig` — RFdiffusion-style contigs (``10-20/A15-30/10-20``);
* :mod:`~moldiff.proteins.model` — :class:`BackboneDiffusion` (zero-CoM CA space, EGNN on kNN +
  sequence edges with relative-position and handedness features; ``cath_ca_egnn``);
* :mod:`~moldiff.proteins.angles` — :class:`AngleBackboneDiffusion` (virtual bond angles and
  dihedrals, exact 3.80 A spacing, a transformer, guiding potentials; the shipped ``cath_ca``);
* :mod:`~moldiff.proteins.task` — the ``backbones`` and ``backbone_angles`` training tasks;
* :mod:`~moldiff.proteins.generator` — :class:`BackboneGenerator`, what :func:`moldiff.load_pretrained` returns;
* :mod:`~moldiff.proteins.evaluate` — the evaluation suite of ``moldiff evaluate-backbones``;
* :mod:`~moldiff.proteins.mpnn_proxy` — the CA-only ProteinMPNN designability proxy (its own environment).

Example::

    import moldiff
    from moldiff.proteins import save_designs
    gen = moldiff.load_pretrained("cath_ca")               # or "runs/cath_ca_angles/checkpoints/best.ckpt"
    designs = gen.sample(10, length=100, seed=0, temperature=0.8)
    scaffolds = gen.sample(4, contig="10-20/A15-30/10-20", motif="motif.pdb")
    save_designs(designs, "designs/")

Importing this package is cheap: Biopython is imported when a structure is first read.
"""

from __future__ import annotations

from moldiff._lazy import lazy_exports

_EXPORTS = {
    "Backbone": "pdb_io",
    "read_backbone": "pdb_io",
    "write_backbone_pdb": "pdb_io",
    "write_design": "pdb_io",
    "StructureError": "pdb_io",
    "MissingCAError": "pdb_io",
    "ChainBreakError": "pdb_io",
    "NonStandardResidueError": "pdb_io",
    "BackboneDataset": "dataset",
    "BackboneBatch": "dataset",
    "collate_backbones": "dataset",
    "Contig": "contig",
    "ContigError": "contig",
    "parse_contig": "contig",
    "BackboneGenerator": "generator",
    "AngleBackboneConfig": "angles",
    "AngleBackboneDiffusion": "angles",
    "BackboneDiffusion": "model",
    "BackboneModelConfig": "model",
    "Design": "model",
    "save_designs": "model",
    "evaluate_backbones": "evaluate",
    "evaluate_folder": "evaluate",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
