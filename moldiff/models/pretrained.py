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
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from .property_predictor import GUIDANCE_MAX_STEP, GUIDANCE_SIGMA_MAX

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"

#: name -> (file in moldiff/pretrained, one-line description)
PRETRAINED: dict[str, tuple[str, str]] = {
    "qm9": ("qm9.pt", "EDM-style EGNN (4 x 64) trained on QM9 with explicit hydrogens on a 2-core CPU"),
    "qm9_alpha": ("qm9_alpha.pt", "QM9 generator conditioned on polarisability alpha (4 x 64 EGNN, classifier-free "
                  "guidance), trained on the generator half of EDM's split on a 2-core CPU"),
    "qm9_alpha_predictor": ("qm9_alpha_predictor.pt", "EGNN predictor of alpha (4 x 64) trained on the predictor half "
                            "of EDM's split on a CPU: the judge of EDM's Table 3 protocol (not a generative model)"),
    "qm9_alpha_guide": ("qm9_alpha_guide.pt", "EGNN predictor of alpha (4 x 64) trained on the generator half on a CPU, "
                        "independent of the judge: for gradient guidance of qm9_alpha (predictor=...)"),
    "cath_ca": ("cath_ca.pt", "C-alpha backbone EGNN (kNN + sequence edges, chiral features) trained on CATH domains on a CPU"),
    "fashion_mnist": ("fashion_mnist.pt", "class-conditional U-Net (1.2 M parameters, EDM preconditioning) trained on "
                      "Fashion-MNIST on a CPU"),
    "fashion_mnist_classifier": ("fashion_mnist_classifier.pt", "CNN classifier of Fashion-MNIST whose features the "
                                 "image metrics use (moldiff.images.classifier; not a generative model)"),
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

    def plan_condition(self, sizes: torch.Tensor, seed: int = 0, condition: dict | None = None, *, force: bool = False,
                       predictor=None) -> dict[str, torch.Tensor] | None:
        """Target properties of the molecules to sample, ``{name: [num]}`` in physical units.

        A conditional model needs a value for each of its properties; with ``condition=None`` they
        are drawn from ``p(c | N)`` of its training data (EDM's protocol, Hoogeboom et al. 2022,
        Sec. 5.3). With a ``predictor`` (gradient guidance), an unconditional model takes targets
        for the predictor's properties. Each given value must lie in the training range.

        Args:
            sizes: ``[num]`` molecule sizes (from :meth:`plan`).
            seed: random seed of the draw from ``p(c | N)``.
            condition: ``{name: value or [num] values}``, or ``None``.
            force: accept values outside the training range.
            predictor: optional :class:`~moldiff.models.property_predictor.PropertyPredictor`.

        Returns:
            ``None`` when nothing is conditioned on.

        Raises:
            ValueError: an unknown or missing property, a wrong number of values, or a value outside
                the training range (unless ``force``).
        """
        from .molecule_task import sample_context

        names = list(self.model.config.context)
        ranges = dict(self.model.stats.get("context_range", {}))
        if predictor is not None:
            ranges = {**predictor.stats.get("property_range", {}), **ranges}
        if condition is None:
            if not names:
                if predictor is not None:
                    raise ValueError(f"gradient guidance needs targets: pass condition= for {predictor.properties}")
                return None
            if "context_given_n" not in self.model.stats:
                raise ValueError(f"this model's statistics hold no p(c | N) to draw {names} from; pass condition=")
            g = torch.Generator().manual_seed(_chunk_seed(seed, -2))
            return sample_context(self.model.stats, names, sizes, generator=g)
        allowed = set(names) | (set(predictor.properties) if predictor is not None else set())
        if not allowed:
            raise ValueError("this model is unconditional: it takes no condition (pass predictor= for gradient guidance)")
        unknown = [n for n in condition if n not in allowed]
        missing = [n for n in names if n not in condition]
        if unknown or missing:
            raise ValueError(f"this model is conditioned on {names or 'nothing'}"
                             + (f" and the predictor predicts {predictor.properties}" if predictor is not None else "")
                             + (f"; unknown {unknown}" if unknown else "") + (f"; missing {missing}" if missing else ""))
        out = {}
        for name, value in condition.items():
            v = torch.as_tensor(value, dtype=torch.float32).reshape(-1)
            if v.numel() not in (1, len(sizes)):
                raise ValueError(f"condition {name!r} has {v.numel()} values for {len(sizes)} molecules")
            lo, hi = ranges[name]
            outside = v[(v < lo) | (v > hi)]
            if outside.numel() and not force:
                from moldiff.data.qm9 import QM9_PROPERTIES

                unit = QM9_PROPERTIES.get(name, ("",))[0]
                raise ValueError(f"{name}={float(outside[0]):g} is outside this model's training range of {name}, "
                                 f"[{lo:g}, {hi:g}] {unit}; pass force=True (--force-condition) to sample anyway")
            out[name] = v.expand(len(sizes)).clone()
        return out

    def sample_chunk(self, sizes: torch.Tensor, seed: int, chunk: int, *, sampler: str = "ddpm", steps: int | None = None,
                     callback: Callable | None = None, condition: dict[str, torch.Tensor] | None = None,
                     predictor=None, predictor_scale: float = 1.0, predictor_tau: float = 1.0,
                     predictor_sigma_max: float | None = GUIDANCE_SIGMA_MAX, predictor_max_step: float | None = GUIDANCE_MAX_STEP,
                     **options) -> list[tuple[Any, Any]]:
        """One chunk as ``(atomic_numbers [n], positions [n, 3] Angstrom)`` numpy pairs.

        Args:
            sizes: ``[b]`` sizes of the chunk's molecules.
            seed, chunk: seed the chunk's noise.
            condition: the chunk's slice of :meth:`plan_condition` (already checked).
            predictor, predictor_scale, predictor_tau, predictor_sigma_max, predictor_max_step: gradient
                guidance towards ``condition`` by a property predictor (``scale``, ``tau``, ``sigma_max`` and ``max_step`` of
                :func:`~moldiff.models.property_predictor.predictor_guidance`).
            options: sampler options and ``guidance_scale`` (classifier-free guidance).
        """
        from .molecule_task import split_molecules

        if condition is not None:
            context = {n: v for n, v in condition.items() if n in self.model.config.context}
            if context:
                options["context"] = context
            if predictor is not None:
                from .property_predictor import predictor_guidance

                targets = {n: v for n, v in condition.items() if n in predictor.properties}
                options["guidance"] = predictor_guidance(predictor.to(self.device).eval(), self.model, targets,
                                                         predictor_scale, predictor_tau, predictor_sigma_max,
                                                         max_step=predictor_max_step)
        g = torch.Generator(device=self.device).manual_seed(_chunk_seed(seed, chunk))
        pos, types, batch = self.model.sample_states(sizes, sampler=sampler, steps=steps, generator=g,
                                                     callback=callback, **options)
        return split_molecules(self.model, pos, types, batch)

    @staticmethod
    def chunks_for(num: int, batch_size: int, rank: int = 0, world_size: int = 1) -> range:
        """The chunk indices process ``rank`` of ``world_size`` samples in a job of ``num`` molecules:
        chunk ``k`` (molecules ``k * batch_size`` onwards) belongs to rank ``k mod world_size``."""
        return range(rank, math.ceil(num / batch_size), world_size)

    def sample_chunks(self, sizes: torch.Tensor, seed: int, chunks: Iterable[int], *, batch_size: int = 250,
                      targets: dict[str, torch.Tensor] | None = None, sampler: str = "ddpm", steps: int | None = None,
                      callback: Callable | None = None, on_chunk: Callable[[int], Any] | None = None,
                      predictor=None, **options) -> dict[int, list[tuple[Any, Any]]]:
        """Some chunks of a planned job: ``{k: molecules of chunk k}``.

        Chunk ``k`` holds molecules ``k * batch_size`` to ``(k + 1) * batch_size - 1`` of ``sizes``
        (and ``targets``) and draws its noise from ``(seed, k)``, so any split of the chunks over
        processes gives the molecules of one process doing them all.

        Args:
            sizes: ``[num]`` molecule sizes (:meth:`plan`).
            seed: the job's seed.
            chunks: indices of the chunks to sample.
            batch_size: molecules per chunk.
            targets: ``{name: [num]}`` conditions (:meth:`plan_condition`), or ``None``.
            sampler, steps, callback, predictor, options: as :meth:`sample_chunk`.
            on_chunk: called with each finished chunk's number of molecules (progress bars).
        """
        out = {}
        for k in chunks:
            part = slice(k * batch_size, (k + 1) * batch_size)
            condition = None if targets is None else {n: v[part] for n, v in targets.items()}
            out[k] = self.sample_chunk(sizes[part], seed, k, sampler=sampler, steps=steps, callback=callback,
                                       condition=condition, predictor=predictor, **options)
            if on_chunk is not None:
                on_chunk(len(out[k]))
        return out

    def sample_arrays(self, num: int, seed: int = 0, *, sampler: str = "ddpm", steps: int | None = None,
                      num_atoms: int | Sequence[int] | None = None, batch_size: int = 250, progress: bool = False,
                      condition: dict | None = None, force: bool = False, predictor=None,
                      **options) -> list[tuple[Any, Any]]:
        """``num`` molecules as ``(atomic_numbers, positions)`` numpy pairs (see :meth:`sample`)."""
        if condition is None and "context" in options:  # the older spelling of condition=
            condition = options.pop("context")
        sizes = self.plan(num, seed, num_atoms)
        targets = self.plan_condition(sizes, seed, condition, force=force, predictor=predictor)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=num, unit="mol", desc=f"sampling ({sampler})")
        chunks = self.sample_chunks(sizes, seed, self.chunks_for(num, batch_size), batch_size=batch_size,
                                    targets=targets, sampler=sampler, steps=steps, predictor=predictor,
                                    on_chunk=bar.update if bar is not None else None, **options)
        if bar is not None:
            bar.close()
        return [mol for k in sorted(chunks) for mol in chunks[k]]

    def sample(self, num: int, seed: int = 0, *, sampler: str = "ddpm", steps: int | None = None,
               num_atoms: int | Sequence[int] | None = None, bonds: str = "edm", batch_size: int = 250,
               progress: bool = False, condition: dict | None = None, guidance_scale: float = 1.0,
               force: bool = False, predictor=None, predictor_scale: float = 1.0, predictor_tau: float = 1.0,
               predictor_sigma_max: float | None = GUIDANCE_SIGMA_MAX, predictor_max_step: float | None = GUIDANCE_MAX_STEP,
               **options) -> list:
        """Sample ``num`` molecules as RDKit molecules with a 3D conformer.

        >>> model = moldiff.load_pretrained("runs/qm9_alpha/last.ckpt")     # doctest: +SKIP
        >>> mols = model.sample(100, condition={"alpha": 80.0})               # doctest: +SKIP

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
            condition: conditional models: ``{property: value}`` (one value for all, or one per
                molecule) in the units of :data:`moldiff.data.qm9.QM9_PROPERTIES`; ``None`` draws
                the targets from ``p(c | N)`` of the training data (EDM's protocol).
            guidance_scale: classifier-free guidance weight ``w`` (1: the conditional model, 0: the
                unconditional one, > 1: stronger conditioning).
            force: accept condition values outside the training range (refused by default).
            predictor: a :class:`~moldiff.models.property_predictor.PropertyPredictor` for gradient
                guidance towards ``condition`` (works with unconditional models too).
            predictor_scale: gradient-guidance strength.
            predictor_tau: width of the guidance likelihood on the predictor's normalised scale.
            predictor_sigma_max: gradient guidance only at noise levels up to this one.
            predictor_max_step: bound each molecule's guidance step to an RMS of this times ``sigma``
                (default 1; ``None``: unbounded, plain DPS, where strong scales may tear molecules apart).
            options: passed to the sampler (e.g. ``s_churn`` for Heun, ``eta`` for DDIM).

        Returns:
            ``num`` RDKit molecules (bonds perceived as asked; not sanitised, so unstable samples are
            kept and can be inspected).
        """
        from moldiff.molecules.rdkit_io import build_molecule

        if predictor is not None:
            options.update(predictor_scale=predictor_scale, predictor_tau=predictor_tau,
                           predictor_sigma_max=predictor_sigma_max, predictor_max_step=predictor_max_step)
        arrays = self.sample_arrays(num, seed, sampler=sampler, steps=steps, num_atoms=num_atoms, batch_size=batch_size,
                                    progress=progress, condition=condition, force=force, predictor=predictor,
                                    guidance_scale=guidance_scale, **options)
        return [build_molecule(z, p, bonds=bonds) for z, p in arrays]


def _sample_shard(job: tuple) -> tuple[dict, float]:
    """Worker of :func:`sample_in_processes`: its chunks with one thread, ``({k: molecules}, CPU seconds)``."""
    model, sizes, seed, targets, batch_size, rank, processes, options = job
    torch.set_num_threads(1)
    generator = load_pretrained(model)
    if isinstance(options.get("predictor"), (str, os.PathLike)):
        options = {**options, "predictor": load_model(options["predictor"])}
    cpu0 = time.process_time()
    chunks = generator.sample_chunks(sizes, seed, generator.chunks_for(len(sizes), batch_size, rank, processes),
                                     batch_size=batch_size, targets=targets, **options)
    return chunks, time.process_time() - cpu0


def sample_in_processes(model: str | os.PathLike, sizes: torch.Tensor, seed: int, *, processes: int,
                        targets: dict[str, torch.Tensor] | None = None, batch_size: int = 250,
                        **options) -> tuple[list[tuple[Any, Any]], float]:
    """A planned sampling job spread over ``processes`` one-thread processes on this machine.

    Process ``r`` samples the chunks :meth:`MoleculeGenerator.chunks_for` gives it, so the molecules
    are those of one process doing the whole job (:meth:`MoleculeGenerator.sample_arrays` with the
    same plan, seed and ``batch_size``); only the wall time changes.

    Args:
        model: a pretrained name or checkpoint path (each process loads it).
        sizes: ``[num]`` planned sizes (:meth:`MoleculeGenerator.plan`).
        seed: the job's seed.
        processes: worker processes (spawned).
        targets: ``{name: [num]}`` conditions (:meth:`MoleculeGenerator.plan_condition`), or ``None``.
        batch_size: molecules per chunk.
        options: as :meth:`MoleculeGenerator.sample_chunks`; a ``predictor`` is given as a name or
            path, loaded in each process.

    Returns:
        ``(molecules in plan order, sampling CPU seconds summed over the processes)``.
    """
    import multiprocessing

    jobs = [(str(model), sizes, seed, targets, batch_size, rank, processes, options) for rank in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        shards = pool.map(_sample_shard, jobs)
    chunks = {k: mols for part, _ in shards for k, mols in part.items()}
    return [mol for k in sorted(chunks) for mol in chunks[k]], sum(seconds for _, seconds in shards)


def load_model(name_or_path: str | os.PathLike, device: str | torch.device = "cpu", ema: bool = True):
    """The trained network behind a pretrained name or a checkpoint path (EMA weights by default)."""
    from moldiff.train.checkpoint import load_trained_model

    return load_trained_model(pretrained_path(name_or_path), ema=ema, device=device)


def load_pretrained(name_or_path: str | os.PathLike = "qm9", device: str | torch.device = "cpu"):
    """A shipped model (``"qm9"``, ``"qm9_alpha"``, ``"cath_ca"``, ``"fashion_mnist"``) or a checkpoint
    file, ready to sample (``"fashion_mnist_classifier"`` gives the image metrics' classifier,
    ``"qm9_alpha_predictor"`` the property predictor that judges ``qm9_alpha``, ``"qm9_alpha_guide"``
    an independent one for its gradient guidance).

    Returns:
        For molecule models a :class:`MoleculeGenerator` (``.sample`` returns RDKit molecules);
        other models (protein backbones, images, property predictors) are returned as they are.
    """
    from .molecule import MoleculeDiffusion

    from moldiff.train.checkpoint import CheckpointError

    try:
        model = load_model(name_or_path, device=device)
    except CheckpointError as not_a_model:  # an image classifier file (its own format tag), or not ours
        from moldiff.images.classifier import load_classifier

        try:
            return load_classifier(name_or_path, device=device)
        except ValueError:
            raise not_a_model from None
    if isinstance(model, MoleculeDiffusion):
        return MoleculeGenerator(model, source=str(name_or_path))
    return model
