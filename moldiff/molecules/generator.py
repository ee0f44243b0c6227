"""The molecule generator: what :func:`moldiff.load_pretrained` returns for a molecule model.

Example::

    import moldiff
    gen = moldiff.load_pretrained("qm9")
    mols = gen.sample(100, seed=0)   # list of rdkit.Chem.Mol
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from moldiff.core import get_sampler, item_generators, item_seed
from moldiff.errors import InputError, SamplingError
from moldiff.files import check_output_file
from moldiff.hub import Generator, load_model, load_pretrained
from moldiff.train.distributed import gather_objects
from moldiff.train.logs import step_progress

from .bond_metrics import bonded_molecule
from .model import sample_context, split_molecules
from .predictor import GUIDANCE_MAX_STEP, GUIDANCE_SIGMA_MAX, predictor_guidance
from .qm9 import QM9_PROPERTIES
from .rdkit_io import build_molecule, molecule_file_format, write_sdf, write_xyz


class SampledMolecules(list):
    """The RDKit molecules of one sampling call; ``.failed``: indices of those that failed RDKit's
    sanitisation (their property ``moldiff_sanitized`` is ``"0"``), empty when none did or none was
    sanitised."""

    @property
    def failed(self) -> list[int]:
        return [
            i for i, m in enumerate(self) if m.HasProp("moldiff_sanitized") and m.GetProp("moldiff_sanitized") == "0"
        ]


class MoleculeGenerator(Generator):
    """Samples molecules from a trained :class:`~moldiff.molecules.model.MoleculeDiffusion`.

    Molecules are produced in chunks of ``batch_size``; molecule ``i`` of a job draws its size from
    the job's plan and its noise from a generator of its own seeded by ``(seed, i)``
    (:func:`moldiff.core.item_generators`), so the output depends only on ``seed``: not on the batch
    size, nor on how the chunks are spread over processes.
    """

    @property
    def atom_types(self) -> list[str]:
        return list(self.model.atom_types)

    def plan(self, num: int, seed: int = 0, num_atoms: int | Sequence[int] | None = None) -> torch.Tensor:
        """Sizes of the ``num`` molecules to sample, ``[num]`` (drawn from ``p(N)`` unless given)."""
        if num < 1:
            raise InputError(f"num must be at least 1, got {num}")
        if num_atoms is None:
            g = torch.Generator().manual_seed(item_seed(seed, 0, "sizes"))
            return self.model.sample_num_atoms(num, generator=g).cpu()
        sizes = torch.as_tensor(num_atoms, dtype=torch.long).reshape(-1)
        if sizes.numel() == 1:
            sizes = sizes.expand(num).clone()
        if sizes.numel() != num:
            raise InputError(f"num_atoms has {sizes.numel()} entries for {num} molecules")
        if bool((sizes < 2).any()):
            raise InputError("every molecule needs at least 2 atoms")
        return sizes

    def plan_condition(
        self, sizes: torch.Tensor, seed: int = 0, condition: dict | None = None, *, force: bool = False, predictor=None
    ) -> dict[str, torch.Tensor] | None:
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
            predictor: optional :class:`~moldiff.molecules.predictor.PropertyPredictor`.

        Returns:
            ``None`` when nothing is conditioned on.

        Raises:
            InputError: an unknown or missing property, a wrong number of values, or a value outside
                the training range (unless ``force``).
        """
        names = list(self.model.config.context)
        ranges = dict(self.model.stats.get("context_range", {}))
        if predictor is not None:
            ranges = {**predictor.stats.get("property_range", {}), **ranges}
        if condition is None:
            if not names:
                if predictor is not None:
                    raise InputError(f"gradient guidance needs targets: pass condition= for {predictor.properties}")
                return None
            if "context_given_n" not in self.model.stats:
                raise InputError(f"this model's statistics hold no p(c | N) to draw {names} from; pass condition=")
            g = torch.Generator().manual_seed(item_seed(seed, 0, "condition"))
            return sample_context(self.model.stats, names, sizes, generator=g)
        allowed = set(names) | (set(predictor.properties) if predictor is not None else set())
        if not allowed:
            raise InputError(
                "this model is unconditional: it takes no condition (pass predictor= for gradient guidance)"
            )
        unknown = [n for n in condition if n not in allowed]
        missing = [n for n in names if n not in condition]
        if unknown or missing:
            raise InputError(
                f"this model is conditioned on {names or 'nothing'}"
                + (f" and the predictor predicts {predictor.properties}" if predictor is not None else "")
                + (f"; unknown {unknown}" if unknown else "")
                + (f"; missing {missing}" if missing else "")
            )
        out = {}
        for name, value in condition.items():
            v = torch.as_tensor(value, dtype=torch.float32).reshape(-1)
            if v.numel() not in (1, len(sizes)):
                raise InputError(f"condition {name!r} has {v.numel()} values for {len(sizes)} molecules")
            if not bool(torch.isfinite(v).all()):  # NaN passes every range check; refused even with force
                raise InputError(f"condition {name!r}: every target must be a finite number, got {value!r}")
            lo, hi = ranges[name]
            outside = v[(v < lo) | (v > hi)]
            if outside.numel() and not force:
                unit = QM9_PROPERTIES.get(name, ("",))[0]
                raise InputError(
                    f"{name}={float(outside[0]):g} is outside this model's training range of {name}, "
                    f"[{lo:g}, {hi:g}] {unit}; pass force=True (--force-condition) to sample anyway"
                )
            out[name] = v.expand(len(sizes)).clone()
        return out

    def sample_chunk(
        self,
        sizes: torch.Tensor,
        seed: int,
        start: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        callback: Callable | None = None,
        condition: dict[str, torch.Tensor] | None = None,
        predictor=None,
        predictor_scale: float = 1.0,
        predictor_tau: float = 1.0,
        predictor_sigma_max: float | None = GUIDANCE_SIGMA_MAX,
        predictor_max_step: float | None = GUIDANCE_MAX_STEP,
        **options,
    ) -> list[tuple[Any, Any]]:
        """One chunk as ``(atomic_numbers [n], positions [n, 3] Angstrom)`` numpy pairs.

        Args:
            sizes: ``[b]`` sizes of the chunk's molecules.
            seed: the job's seed.
            start: the position in the job of the chunk's first molecule: molecule ``start + i`` draws
                its noise from its own generator (:func:`moldiff.core.item_generators`), so it is the
                same molecule whatever chunk it is sampled in.
            condition: the chunk's slice of :meth:`plan_condition` (already checked).
            predictor, predictor_scale, predictor_tau, predictor_sigma_max, predictor_max_step: gradient
                guidance towards ``condition`` by a property predictor (``scale``, ``tau``, ``sigma_max`` and ``max_step`` of
                :func:`~moldiff.molecules.predictor.predictor_guidance`).
            options: sampler options and ``guidance_scale`` (classifier-free guidance).
        """
        if condition is not None:
            context = {n: v for n, v in condition.items() if n in self.model.config.context}
            if context:
                options["context"] = context
            if predictor is not None:
                targets = {n: v for n, v in condition.items() if n in predictor.properties}
                options["guidance"] = predictor_guidance(
                    predictor.to(self.device).eval(),
                    self.model,
                    targets,
                    predictor_scale,
                    predictor_tau,
                    predictor_sigma_max,
                    max_step=predictor_max_step,
                )
        g = item_generators(seed, range(start, start + len(sizes)), self.device)
        pos, types, batch = self.model.sample_states(
            sizes, sampler=sampler, steps=steps, generator=g, callback=callback, **options
        )
        return split_molecules(self.model, pos, types, batch)

    @staticmethod
    def chunks_for(num: int, batch_size: int, rank: int = 0, world_size: int = 1) -> range:
        """The chunk indices process ``rank`` of ``world_size`` samples in a job of ``num`` molecules:
        chunk ``k`` (molecules ``k * batch_size`` onwards) belongs to rank ``k mod world_size``."""
        if batch_size < 1:  # a negative size would give no chunk at all: zero molecules, no error
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        return range(rank, math.ceil(num / batch_size), world_size)

    def sample_chunks(
        self,
        sizes: torch.Tensor,
        seed: int,
        chunks: Iterable[int],
        *,
        batch_size: int = 250,
        targets: dict[str, torch.Tensor] | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        callback: Callable | None = None,
        on_chunk: Callable[[int], Any] | None = None,
        predictor=None,
        **options,
    ) -> dict[int, list[tuple[Any, Any]]]:
        """Some chunks of a planned job: ``{k: molecules of chunk k}``.

        Chunk ``k`` holds molecules ``k * batch_size`` to ``(k + 1) * batch_size - 1`` of ``sizes``
        (and ``targets``); every molecule draws its noise from ``(seed, its index)``, so neither the
        batch size nor any split of the chunks over processes changes the molecules.

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
            out[k] = self.sample_chunk(
                sizes[part],
                seed,
                k * batch_size,
                sampler=sampler,
                steps=steps,
                callback=callback,
                condition=condition,
                predictor=predictor,
                **options,
            )
            if on_chunk is not None:
                on_chunk(len(out[k]))
        return out

    def sample_arrays(
        self,
        num: int,
        *,
        seed: int = 0,
        sampler: str | None = None,
        steps: int | None = None,
        num_atoms: int | Sequence[int] | None = None,
        batch_size: int = 250,
        progress: bool = False,
        device: str | torch.device | None = None,
        condition: dict | None = None,
        force: bool = False,
        predictor=None,
        **options,
    ) -> list[tuple[Any, Any]]:
        """``num`` molecules as ``(atomic_numbers, positions)`` numpy pairs (see :meth:`sample`)."""
        if condition is None and "context" in options:  # the older spelling of condition=
            condition = options.pop("context")
        if device is not None:
            self.to(device)
        sizes = self.plan(num, seed, num_atoms)
        targets = self.plan_condition(sizes, seed, condition, force=force, predictor=predictor)
        with step_progress(num, f"sampling ({self.model.sampling_defaults(sampler)[0]})", progress, unit="mol") as tick:
            chunks = self.sample_chunks(
                sizes,
                seed,
                self.chunks_for(num, batch_size),
                batch_size=batch_size,
                targets=targets,
                sampler=sampler,
                steps=steps,
                predictor=predictor,
                on_chunk=(lambda n: tick(n=n)) if tick else None,
                **options,
            )
        return [mol for k in sorted(chunks) for mol in chunks[k]]

    def sample(
        self,
        num: int,
        *,
        seed: int = 0,
        sampler: str | None = None,
        steps: int | None = None,
        batch_size: int = 250,
        progress: bool = False,
        device: str | torch.device | None = None,
        num_atoms: int | Sequence[int] | None = None,
        bonds: str = "edm",
        condition: dict | None = None,
        guidance_scale: float = 1.0,
        force: bool = False,
        predictor=None,
        predictor_scale: float = 1.0,
        predictor_tau: float = 1.0,
        predictor_sigma_max: float | None = GUIDANCE_SIGMA_MAX,
        predictor_max_step: float | None = GUIDANCE_MAX_STEP,
        sanitize: bool | None = None,
        skip_diverged: bool = False,
        **options,
    ) -> "SampledMolecules":
        """Sample ``num`` molecules as RDKit molecules with a 3D conformer.

        Example::

            gen = moldiff.load_pretrained("qm9_alpha")   # or a run's "runs/qm9_alpha/checkpoints/best.ckpt"
            mols = gen.sample(100, condition={"alpha": 80.0})

        Args:
            num: number of molecules.
            seed: random seed; the same seed gives the same molecules.
            sampler: a :data:`moldiff.core.SAMPLERS` name (default: the model's; for EDM-style models
                ``"ddpm"``, EDM's ancestral sampler, 1000 steps by default), ``"dpmpp_2m"``, ``"heun"``, ...
            steps: number of sampler steps (default: the schedule's ``T`` for ``ddpm``, 50 otherwise).
            num_atoms: a fixed size for every molecule, or one size per molecule (default: drawn
                from the training distribution).
            bonds: ``"edm"`` (EDM's distance tables) or ``"rdkit"`` (RDKit's bond perception).
            batch_size: molecules per chunk.
            progress: show a progress bar.
            device: run on this device (default: where the model is).
            condition: conditional models: ``{property: value}`` (one value for all, or one per
                molecule) in the units of :data:`moldiff.molecules.qm9.QM9_PROPERTIES`; ``None`` draws
                the targets from ``p(c | N)`` of the training data (EDM's protocol).
            guidance_scale: classifier-free guidance weight ``w`` (1: the conditional model, 0: the
                unconditional one, > 1: stronger conditioning).
            force: accept condition values outside the training range (refused by default).
            predictor: a :class:`~moldiff.molecules.predictor.PropertyPredictor` for gradient
                guidance towards ``condition`` (works with unconditional models too).
            predictor_scale: gradient-guidance strength.
            predictor_tau: width of the guidance likelihood on the predictor's normalised scale.
            predictor_sigma_max: gradient guidance only at noise levels up to this one.
            predictor_max_step: bound each molecule's guidance step to an RMS of this times ``sigma``
                (default 1; ``None``: unbounded, plain DPS, where strong scales may tear molecules apart).
            sanitize: sanitise every molecule with RDKit (:meth:`checked`) (default: the generator's
                :attr:`sanitize_by_default`: false for EDM-style models, whose perceived bonds leave
                unstable samples to inspect; true for models that generate bonds).
            skip_diverged: leave out molecules that diverged instead of raising (default: false).
            options: passed to the sampler (e.g. ``s_churn`` for Heun, ``eta`` for DDIM).

        Returns:
            ``num`` RDKit molecules, a :class:`SampledMolecules` list: with ``sanitize``, each molecule
            that failed sanitisation is returned as built, flagged by its ``moldiff_sanitized`` property
            (``"0"``, with the reason in ``moldiff_error``), and listed in ``.failed``.

        Raises:
            SamplingError: a molecule diverged (non-finite coordinates, or beyond
                :data:`DIVERGED_ANGSTROM`), unless ``skip_diverged``: then such molecules are left
                out with a warning, and fewer than ``num`` come back.
        """
        if guidance_scale is None or not math.isfinite(guidance_scale):
            raise InputError(f"guidance_scale must be a finite number, got {guidance_scale!r}")
        if predictor is not None:
            options.update(
                predictor_scale=predictor_scale,
                predictor_tau=predictor_tau,
                predictor_sigma_max=predictor_sigma_max,
                predictor_max_step=predictor_max_step,
            )
        arrays = self.sample_arrays(
            num,
            seed=seed,
            sampler=sampler,
            steps=steps,
            num_atoms=num_atoms,
            batch_size=batch_size,
            progress=progress,
            device=device,
            condition=condition,
            force=force,
            predictor=predictor,
            guidance_scale=guidance_scale,
            **options,
        )
        bad = diverged_samples(arrays)
        if bad:
            if not skip_diverged:
                raise SamplingError(diverged_message(bad, len(arrays), "skip_diverged=True"))
            warnings.warn(diverged_message(bad, len(arrays), None), stacklevel=2)
            arrays = [a for i, a in enumerate(arrays) if i not in set(bad)]
        mols = [self.molecule(record, bonds) for record in arrays]
        if self.sanitize_by_default if sanitize is None else sanitize:
            mols = [self.checked(m) for m in mols]
        return SampledMolecules(mols)

    #: Whether :meth:`sample` and ``moldiff sample`` sanitise the molecules (see :meth:`checked`).
    sanitize_by_default = False

    @staticmethod
    def checked(mol):
        """``mol`` sanitised by RDKit (property ``moldiff_sanitized = "1"``), or, when sanitisation
        fails, ``mol`` as built with ``moldiff_sanitized = "0"`` and the reason in ``moldiff_error``
        (both properties are written to SDF files)."""
        from rdkit import Chem, rdBase

        clean = Chem.Mol(mol)
        try:
            with rdBase.BlockLogs():
                Chem.SanitizeMol(clean)
        except Exception as err:  # noqa: BLE001 - RDKit raises several types; the reason is kept
            mol.SetProp("moldiff_sanitized", "0")
            mol.SetProp("moldiff_error", str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
            return mol
        clean.SetProp("moldiff_sanitized", "1")
        return clean

    def molecule(self, record, bonds: str = "edm"):
        """The RDKit molecule of one sampled ``(atomic_numbers, positions)`` record, its bonds perceived
        by ``bonds`` (``"edm"``: EDM's distance tables, ``"rdkit"``: RDKit's perception).

        When RDKit can assign no bonds consistent with the atoms (an unstable sample), the molecule is
        returned without bonds, flagged by the property ``moldiff_bonds = "none"`` with the reason in
        ``moldiff_error`` (both written to SDF files), instead of failing the whole job."""
        z, p = record
        try:
            return build_molecule(z, p, bonds=bonds)
        except ValueError as err:
            if bonds != "rdkit":
                raise
            mol = build_molecule(z, p, bonds=None)
            mol.SetProp("moldiff_bonds", "none")
            mol.SetProp("moldiff_error", str(err).strip().splitlines()[0])
            return mol

    def sample_command(self, args, info) -> int:
        """``moldiff sample`` for molecule models: one SDF (or XYZ) file; under torchrun every rank samples
        its own chunks (:meth:`chunks_for`) and rank 0 writes them all."""
        out = Path(args.out or "samples.sdf")
        # a destination that cannot be written, or an existing file not to be replaced, stops here,
        # before anything is sampled; so does an unknown suffix
        replaces = check_output_file(out, overwrite=getattr(args, "overwrite", False))
        out_format = molecule_file_format(out)
        sampler, steps, _ = self.model.sampling_defaults(args.sampler, args.steps)
        get_sampler(sampler)  # an unknown name stops here, before anything is sampled
        sizes = self.plan(args.num, args.seed, args.num_atoms)
        targets = self.plan_condition(sizes, args.seed, parse_conditions(args.condition), force=args.force_condition)
        options = {} if args.guidance_scale is None else {"guidance_scale": args.guidance_scale}
        mine = self.chunks_for(args.num, args.batch_size, info.rank, info.world_size)  # each rank its own chunks
        tick = time.perf_counter()
        with step_progress(
            len(mine) * steps, f"sampling {args.num} molecules ({sampler})", info.is_main and not args.no_progress
        ) as callback:
            results = self.sample_chunks(
                sizes,
                args.seed,
                mine,
                batch_size=args.batch_size,
                targets=targets,
                sampler=sampler,
                steps=args.steps,
                callback=callback,
                **options,
            )
        elapsed = time.perf_counter() - tick
        gathered = gather_objects(results) if info.distributed else [results]
        if not info.is_main:
            return 0
        merged = {k: v for part in gathered for k, v in part.items()}
        records = [m for k in sorted(merged) for m in merged[k]]
        bad = diverged_samples(records)
        if bad and (len(bad) == len(records) or not getattr(args, "skip_diverged", False)):
            flag = "--skip-diverged" if len(bad) < len(records) else None
            raise SamplingError(diverged_message(bad, len(records), flag) + f"; nothing written to {out}")
        if bad:
            print(f"moldiff sample: {diverged_message(bad, len(records), None)}: left out", file=sys.stderr)
        kept = [i for i in range(len(records)) if i not in set(bad)]
        molecules = [self.molecule(records[i], args.bonds) for i in kept]
        unbonded = sum(m.HasProp("moldiff_bonds") for m in molecules)
        if unbonded:
            print(
                f"{unbonded} of {len(molecules)} molecules: RDKit could assign no bonds; written without bonds, with "
                "the SDF property moldiff_bonds = none and the reason in moldiff_error",
                file=sys.stderr,
            )
        if self.sanitize_by_default:
            molecules = SampledMolecules(self.checked(m) for m in molecules)
            if molecules.failed:
                print(
                    f"{len(molecules.failed)} of {len(molecules)} molecules failed RDKit's sanitisation: written as "
                    f"generated, with the SDF property moldiff_sanitized = 0 and the reason in moldiff_error",
                    file=sys.stderr,
                )
        if out_format == "xyz":
            write_xyz(molecules, out)
        else:

            def title(i: int) -> str:
                target = "" if targets is None else "".join(f" {n}={float(v[i]):.6g}" for n, v in targets.items())
                return f"moldiff {args.model} seed={args.seed} #{i}{target}"

            write_sdf(molecules, out, titles=[title(i) for i in kept])
        per_molecule = elapsed / max(1, sum(len(results[k]) for k in mine))
        print(
            f"wrote {len(molecules)} molecules to {out}{' (replaced the earlier file)' if replaces else ''} "
            f"({per_molecule:.3f} s per molecule on rank 0, {info.world_size} process(es), device {info.device})",
            file=sys.stderr,
        )
        return 0


#: A sampled coordinate beyond this many Angstrom belongs to no molecule: the sampler diverged (the
#: fixed columns of a V2000 SDF file hold less than 10,000 A, those of a PDB file too).
DIVERGED_ANGSTROM = 1e4


def _positions(record) -> Any:
    return record["positions"] if isinstance(record, dict) else record[1]


def diverged_samples(records: Sequence) -> list[int]:
    """Indices of the sampled records (``(atomic_numbers, positions)`` pairs or flow records) whose
    coordinates are not finite or lie beyond :data:`DIVERGED_ANGSTROM`."""
    bad = []
    for i, record in enumerate(records):
        pos = np.asarray(_positions(record), dtype=np.float64)
        if not np.isfinite(pos).all() or (pos.size and np.abs(pos).max() > DIVERGED_ANGSTROM):
            bad.append(i)
    return bad


def diverged_message(bad: Sequence[int], total: int, flag: str | None) -> str:
    """One line naming the molecules that diverged (and the flag that leaves them out)."""
    shown = ", ".join(f"#{i}" for i in bad[:8]) + (f" and {len(bad) - 8} more" if len(bad) > 8 else "")
    text = (
        f"{len(bad)} of {total} molecule(s) diverged ({shown}: non-finite coordinates or beyond "
        f"{DIVERGED_ANGSTROM:,.0f} A; a very large guidance scale or an extreme forced target does this)"
    )
    return text + (f"; lower it, or pass {flag} to write the others" if flag else "; lower it")


def parse_conditions(items: Sequence[str] | None) -> dict[str, float] | None:
    """``["alpha=80", "gap=0.25"]`` -> ``{"alpha": 80.0, "gap": 0.25}`` (``None`` for no items).

    Raises:
        InputError: naming the malformed item (no ``=``, no name, a value that is not a number, or a
            property given twice).
    """
    if not items:
        return None
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"--condition expects NAME=VALUE (e.g. alpha=80.0), got {item!r}")
        try:
            number = float(value)
        except ValueError:
            raise InputError(f"--condition {item}: {value.strip()!r} is not a number") from None
        if not math.isfinite(number):
            raise InputError(f"--condition {item}: the target must be a finite number")
        if name in out:
            raise InputError(f"--condition gives {name!r} twice")
        out[name] = number
    return out


def _sample_shard(job: tuple) -> tuple[dict, float]:
    """Worker of :func:`sample_in_processes`: its chunks with one thread, ``({k: molecules}, CPU seconds)``."""
    model, sizes, seed, targets, batch_size, rank, processes, options = job
    torch.set_num_threads(1)
    generator = load_pretrained(model)
    if isinstance(options.get("predictor"), (str, os.PathLike)):
        options = {**options, "predictor": load_model(options["predictor"])}
    cpu0 = time.process_time()
    chunks = generator.sample_chunks(
        sizes,
        seed,
        generator.chunks_for(len(sizes), batch_size, rank, processes),
        batch_size=batch_size,
        targets=targets,
        **options,
    )
    return chunks, time.process_time() - cpu0


def sample_in_processes(
    model: str | os.PathLike,
    sizes: torch.Tensor,
    seed: int,
    *,
    processes: int,
    targets: dict[str, torch.Tensor] | None = None,
    batch_size: int = 250,
    **options,
) -> tuple[list[tuple[Any, Any]], float]:
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


class FlowMoleculeGenerator(MoleculeGenerator):
    """Samples molecules from a :class:`~moldiff.molecules.flow_model.MoleculeFlow`, the model that
    generates bonds and formal charges with the atoms: the RDKit molecules carry the generated
    bonds and charges exactly (:func:`~moldiff.molecules.bond_metrics.bonded_molecule`); ``bonds=``
    (the perception of the EDM-style models) does not apply and is ignored.

    The contract is :class:`MoleculeGenerator`'s (same seeding rule, chunks, processes, CLI); its
    records are dicts ``{"atomic_numbers", "formal_charges", "positions", "bonds"}`` instead of
    ``(atomic_numbers, positions)`` pairs. Conditioning and guidance are not available for this family yet.
    Its molecules are sanitised by default (:meth:`MoleculeGenerator.checked`).
    """

    sanitize_by_default = True

    def plan_condition(self, sizes, seed=0, condition=None, *, force=False, predictor=None):
        if condition is not None or predictor is not None:
            raise InputError("this model family takes no condition or predictor yet")
        return None

    def sample_chunk(
        self,
        sizes: torch.Tensor,
        seed: int,
        start: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        callback: Callable | None = None,
        condition=None,
        predictor=None,
        **options,
    ) -> list[dict]:
        """One chunk of molecule records (see :meth:`MoleculeGenerator.sample_chunk` for the seeding)."""
        g = item_generators(seed, range(start, start + len(sizes)), self.device)
        options.pop("guidance_scale", None)
        sample = self.model.sample_states(
            sizes, sampler=sampler, steps=steps, generator=g, callback=callback, **options
        )
        return self.model.split_molecules(sample)

    def molecule(self, record, bonds: str = "edm"):
        """The RDKit molecule of one sampled record, with its generated bonds and charges."""
        return bonded_molecule(record["atomic_numbers"], record["formal_charges"], record["positions"], record["bonds"])
