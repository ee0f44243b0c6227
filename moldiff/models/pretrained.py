"""Pretrained models shipped inside the package, and the user-facing molecule generator.

>>> import moldiff
>>> model = moldiff.load_pretrained("qm9")          # doctest: +SKIP
>>> mols = model.sample(100, seed=0)                 # doctest: +SKIP   list of rdkit.Chem.Mol

A shipped model is one small file in ``moldiff/pretrained/`` written by
:func:`moldiff.train.checkpoint.export_ema`: EMA weights (fp16), the full config and the dataset
statistics needed to sample. Any training checkpoint (``*.ckpt``) loads the same way.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"

#: name -> (file in moldiff/pretrained, one-line description)
PRETRAINED: dict[str, tuple[str, str]] = {
    "qm9": ("qm9.pt", "EDM-style EGNN (4 x 64) trained on QM9 with explicit hydrogens on a 2-core CPU"),
}


def pretrained_path(name_or_path: str | os.PathLike) -> Path:
    """The file behind a pretrained name, or the path itself."""
    if str(name_or_path) in PRETRAINED:
        path = PRETRAINED_DIR / PRETRAINED[str(name_or_path)][0]
        if not path.is_file():
            raise FileNotFoundError(f"pretrained model {name_or_path!r} is not installed (expected {path})")
        return path
    path = Path(name_or_path)
    if not path.is_file():
        known = ", ".join(sorted(PRETRAINED))
        raise FileNotFoundError(f"{name_or_path!r} is neither a pretrained model ({known}) nor a checkpoint file")
    return path


def _chunk_seed(seed: int, chunk: int) -> int:
    digest = hashlib.sha256(f"moldiff-sample:{seed}:{chunk}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class MoleculeGenerator:
    """Samples molecules from a trained :class:`~moldiff.models.molecule.MoleculeDiffusion`.

    Molecules are produced in chunks of ``batch_size``; chunk ``k`` draws its noise from a
    generator seeded by ``(seed, k)``, so the output depends only on ``seed`` and ``batch_size``,
    not on how the chunks are spread over processes.
    """

    def __init__(self, model, source: str = "") -> None:
        self.model = model.eval()
        self.source = source

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device) -> "MoleculeGenerator":
        self.model.to(device)
        return self

    @property
    def atom_types(self) -> list[str]:
        return list(self.model.atom_types)

    def plan(self, num: int, seed: int = 0, num_atoms: int | Sequence[int] | None = None) -> torch.Tensor:
        """Sizes of the ``num`` molecules to sample, ``[num]`` (drawn from ``p(N)`` unless given)."""
        if num < 1:
            raise ValueError(f"num must be at least 1, got {num}")
        if num_atoms is None:
            g = torch.Generator().manual_seed(_chunk_seed(seed, -1))
            return self.model.sample_num_atoms(num, generator=g).cpu()
        sizes = torch.as_tensor(num_atoms, dtype=torch.long).reshape(-1)
        if sizes.numel() == 1:
            sizes = sizes.expand(num).clone()
        if sizes.numel() != num:
            raise ValueError(f"num_atoms has {sizes.numel()} entries for {num} molecules")
        if bool((sizes < 2).any()):
            raise ValueError("every molecule needs at least 2 atoms")
        return sizes

    def sample_chunk(self, sizes: torch.Tensor, seed: int, chunk: int, *, sampler: str = "ddpm", steps: int | None = None,
                     callback: Callable | None = None, **options) -> list[tuple[Any, Any]]:
        """One chunk as ``(atomic_numbers [n], positions [n, 3] Angstrom)`` numpy pairs."""
        from .molecule_task import split_molecules

        g = torch.Generator(device=self.device).manual_seed(_chunk_seed(seed, chunk))
        pos, types, batch = self.model.sample_states(sizes, sampler=sampler, steps=steps, generator=g,
                                                     callback=callback, **options)
        return split_molecules(self.model, pos, types, batch)

    def sample_arrays(self, num: int, seed: int = 0, *, sampler: str = "ddpm", steps: int | None = None,
                      num_atoms: int | Sequence[int] | None = None, batch_size: int = 250, progress: bool = False,
                      **options) -> list[tuple[Any, Any]]:
        """``num`` molecules as ``(atomic_numbers, positions)`` numpy pairs (see :meth:`sample`)."""
        sizes = self.plan(num, seed, num_atoms)
        out = []
        chunks = list(range(0, num, batch_size))
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=num, unit="mol", desc=f"sampling ({sampler})")
        for k, start in enumerate(chunks):
            out.extend(self.sample_chunk(sizes[start:start + batch_size], seed, k, sampler=sampler, steps=steps, **options))
            if bar is not None:
                bar.update(min(batch_size, num - start))
        if bar is not None:
            bar.close()
        return out

    def sample(self, num: int, seed: int = 0, *, sampler: str = "ddpm", steps: int | None = None,
               num_atoms: int | Sequence[int] | None = None, bonds: str = "edm", batch_size: int = 250,
               progress: bool = False, **options) -> list:
        """Sample ``num`` molecules as RDKit molecules with a 3D conformer.

        Args:
            num: number of molecules.
            seed: random seed; the same seed gives the same molecules.
            sampler: a :data:`moldiff.core.SAMPLERS` name: ``"ddpm"`` (EDM's ancestral sampler, 1000
                steps by default), ``"dpmpp_2m"``, ``"heun"``, ``"ddim"``, ``"euler"``, ...
            steps: number of sampler steps (default: the schedule's ``T`` for ``ddpm``, 50 otherwise).
            num_atoms: a fixed size for every molecule, or one size per molecule (default: drawn
                from the training distribution).
            bonds: ``"edm"`` (EDM's distance tables) or ``"rdkit"`` (RDKit's bond perception).
            batch_size: molecules per chunk.
            progress: show a progress bar.
            options: passed to the sampler (e.g. ``s_churn`` for Heun, ``eta`` for DDIM), or
                ``context`` / ``guidance_scale`` for conditional models.

        Returns:
            ``num`` RDKit molecules (bonds perceived as asked; not sanitised, so unstable samples are
            kept and can be inspected).
        """
        from moldiff.molecules.rdkit_io import build_molecule

        arrays = self.sample_arrays(num, seed, sampler=sampler, steps=steps, num_atoms=num_atoms, batch_size=batch_size,
                                    progress=progress, **options)
        return [build_molecule(z, p, bonds=bonds) for z, p in arrays]


def load_model(name_or_path: str | os.PathLike, device: str | torch.device = "cpu", ema: bool = True):
    """The trained network behind a pretrained name or a checkpoint path (EMA weights by default)."""
    from moldiff.train.checkpoint import load_trained_model

    return load_trained_model(pretrained_path(name_or_path), ema=ema, device=device)


def load_pretrained(name_or_path: str | os.PathLike = "qm9", device: str | torch.device = "cpu") -> MoleculeGenerator:
    """A :class:`MoleculeGenerator` for a shipped model (``"qm9"``) or a checkpoint file."""
    return MoleculeGenerator(load_model(name_or_path, device=device), source=str(name_or_path))
