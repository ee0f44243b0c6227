"""The ``molecule_flow`` training task: QM9 with bonds and formal charges -> :class:`MoleculeFlow`.

Declared as an entry point (``moldiff.tasks``), so ``moldiff train configs/qm9_flow.yaml`` needs
nothing else. The evaluation hook samples ``data.eval_samples`` molecules from the EMA model with
fixed seeds and scores them with the bonded-molecule metrics
(:func:`~moldiff.molecules.bond_metrics.evaluate_bonded_molecules`: atom and molecule stability
from the generated bonds and charges, validity, connected validity, RDKit's SDF read-back) and, as
``edm_*``, with EDM's distance protocol on the same samples. A conditional model
(``model.conditioning``) trains on its properties (``data.half: generator`` for EDM's Table 3
protocol) and is evaluated on targets drawn from ``p(c | N)``, as it is sampled by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from moldiff.core import item_generators
from moldiff.train.tasks import TaskBundle, register_task

from .bond_data import BondedQM9Dataset, collate_bonded
from .bond_metrics import bonded_molecule, evaluate_bonded_molecules
from .elements import atomic_number
from .flow_model import MoleculeFlow, MoleculeFlowConfig
from .generator import FlowMoleculeGenerator
from .metrics import evaluate_molecules
from .model import sample_context
from .rdkit_io import write_sdf
from .training_data import context_stats

__all__ = ["FlowDataConfig", "flow_stats", "build", "register"]


@dataclass
class FlowDataConfig:
    """The ``data:`` section of a ``molecule_flow`` config.

    Attributes:
        source: QM9 source of :func:`moldiff.molecules.qm9.load_qm9` (default: the installed ``qm9pack``).
        split: EDM split for training (default: ``"train"``).
        valid_split: split for the validation loss (``None``: none) (default: ``"valid"``).
        kekulize: Kekulé bonds (single / double / triple) instead of RDKit's aromatic bonds (default: false).
        limit: train on the first ``limit`` molecules only (default: all).
        half: ``None`` (the whole split), ``"predictor"`` or ``"generator"``: one half of the QM9
            training split for EDM's conditional-generation protocol (the generator trains on
            ``"generator"``, the property predictor that judges it on ``"predictor"``;
            :func:`~moldiff.molecules.training_data.training_half_rows`) (default: None).
        eval_samples: molecules sampled at each evaluation (0: none) (default: 0).
        eval_steps: sampler steps of those samples (default: 50).
    """

    source: str = "qm9pack"
    split: str = "train"
    valid_split: Optional[str] = "valid"
    kekulize: bool = False
    limit: Optional[int] = None
    half: Optional[str] = None
    eval_samples: int = 0
    eval_steps: int = 50


def flow_stats(train: BondedQM9Dataset, conditioning: list[str] | tuple = ()) -> dict:
    """The statistics a :class:`MoleculeFlow` needs to sample without its data (with
    ``conditioning``, those of the properties too: :func:`~moldiff.molecules.training_data.context_stats`)."""
    marginals = train.marginals()
    stats = {
        "atom_types": list(train.vocabulary),
        "atomic_numbers": [atomic_number(s) for s in train.vocabulary],
        "charge_values": [int(v) for v in train.charge_values],
        "bond_classes": list(train.bond_classes),
        "num_atoms_histogram": {int(k): int(v) for k, v in train.num_atoms_histogram().items()},
        "marginals": {
            "type": marginals["atom_types"].tolist(),
            "charge": marginals["charges"].tolist(),
            "bond": marginals["bond_types"].tolist(),
        },
        "dataset": "qm9_bonded",
        "num_molecules": len(train),
    }
    if conditioning:
        stats.update(context_stats(train, list(conditioning)))
        stats["half"] = getattr(train, "half", None)
    return stats


def _eval_fn(data: FlowDataConfig):
    def evaluate(model: MoleculeFlow, step: int, out_dir) -> dict:
        g = torch.Generator().manual_seed(1234)
        sizes = model.sample_num_atoms(data.eval_samples, generator=g)
        device = next(model.parameters()).device
        # a conditional model is scored on targets drawn from p(c | N), as it is sampled by default
        condition = sample_context(model.stats, model.conditioning, sizes, g) if model.conditioning else None
        sample = model.sample_states(
            sizes,
            steps=data.eval_steps,
            generator=item_generators(1234, range(len(sizes)), device),
            condition=condition,
        )
        records = model.split_molecules(sample)
        metrics = evaluate_bonded_molecules(records)
        edm = evaluate_molecules([(r["atomic_numbers"], r["positions"]) for r in records])  # EDM's distance protocol
        metrics.update({f"edm_{k}": v for k, v in edm.items()})
        if out_dir is not None:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            mols = [
                bonded_molecule(r["atomic_numbers"], r["formal_charges"], r["positions"], r["bonds"]) for r in records
            ]
            write_sdf(mols, Path(out_dir) / f"samples_step{step:08d}.sdf")
        return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}

    return evaluate


def build(
    model_cfg: MoleculeFlowConfig, data_cfg: FlowDataConfig, *, rank: int = 0, world_size: int = 1, seed: int = 0
) -> TaskBundle:
    """The task's ``build_fn``: bonded QM9 splits, their statistics, the model and the evaluation hook."""
    properties = list(model_cfg.conditioning)
    train = BondedQM9Dataset(
        data_cfg.split, data_cfg.source, kekulize=data_cfg.kekulize, properties=properties, half=data_cfg.half
    )
    valid = None
    if data_cfg.valid_split:
        valid = BondedQM9Dataset(
            data_cfg.valid_split, data_cfg.source, kekulize=data_cfg.kekulize, properties=properties
        )
    stats = flow_stats(train, properties)
    if data_cfg.limit is not None:
        train = torch.utils.data.Subset(train, range(min(data_cfg.limit, len(train))))
    return TaskBundle(
        model=MoleculeFlow(model_cfg, stats),
        train_dataset=train,
        collate_fn=collate_bonded,
        dataset_stats=stats,
        eval_fn=_eval_fn(data_cfg) if data_cfg.eval_samples > 0 else None,
        valid_dataset=valid,
    )


def register() -> None:
    """Register ``molecule_flow`` (called by :func:`moldiff.train.tasks.get_task` through the entry point)."""
    register_task(
        "molecule_flow",
        MoleculeFlowConfig,
        FlowDataConfig,
        build,
        model_fn=MoleculeFlow,
        generator_fn=FlowMoleculeGenerator,
    )
