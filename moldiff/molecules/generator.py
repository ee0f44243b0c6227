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
from moldiff.pretrained import PRETRAINED_DRAWN_CONDITIONS
from moldiff.train.distributed import gather_objects
from moldiff.train.logs import step_progress

from .bond_metrics import bonded_molecule
from .filters import parse_filter
from .fragments import (
    RMSD_PROPERTY,
    annotate_fragment,
    edm_fixed_state,
    flow_fixed_state,
    fragment_sizes,
    load_fragment,
)
from .model import sample_context, split_molecules
from .predictor import GUIDANCE_MAX_STEP, GUIDANCE_SIGMA_MAX, joint_predictor_guidance, predictor_guidance
from .properties import PROPERTY_NAMES, molecule_properties, molecule_table, set_sdf_properties
from .qm9 import QM9_PROPERTIES
from .rdkit_io import build_molecule, molecule_file_format, write_sdf, write_xyz
from .training_data import sample_num_atoms_given_context


class SampledMolecules(list):
    """The RDKit molecules of one sampling call; ``.failed``: indices of those that failed RDKit's
    sanitisation (their property ``moldiff_sanitized`` is ``"0"``), empty when none did or none was
    sanitised. After a call with ``filter=``, ``.indices`` holds each molecule's position in the job
    (its seed ``(seed, index)``) and ``.drawn`` the number of molecules sampled to find them (both
    ``None`` otherwise)."""

    indices: list[int] | None = None
    drawn: int | None = None

    @property
    def failed(self) -> list[int]:
        return [
            i for i, m in enumerate(self) if m.HasProp("moldiff_sanitized") and m.GetProp("moldiff_sanitized") == "0"
        ]

    @property
    def fragment_rmsd(self) -> list[float | None]:
        """``[num]``: RMSD (A) of each molecule's fragment atoms to the fragment after the best rigid
        superposition (SDF property ``moldiff_fragment_rmsd``; :mod:`moldiff.molecules.fragments`),
        ``None`` for molecules grown around no fragment."""
        return [float(m.GetProp(RMSD_PROPERTY)) if m.HasProp(RMSD_PROPERTY) else None for m in self]


class FilteredSample:
    """What :meth:`MoleculeGenerator.sample_filtered` found.

    Attributes:
        expression: the filter.
        wanted: the number of molecules asked for.
        max_samples: the budget.
        molecules: the molecules that passed (at most ``wanted``), a :class:`SampledMolecules` in job
            order, with ``.indices`` and ``.drawn``.
        indices: each one's position in the job (it drew its noise from ``(seed, index)``).
        targets: each one's conditions ``{name: value}`` (``None`` for unconditional models).
        drawn: molecules sampled; ``diverged``: how many of them diverged.
    """

    def __init__(self, expression: str, wanted: int, max_samples: int) -> None:
        self.expression, self.wanted, self.max_samples = expression, wanted, max_samples
        self.molecules = SampledMolecules()
        self.indices: list[int] = []
        self.targets: list[dict[str, float] | None] = []
        self.drawn = self.diverged = 0

    def add(self, mol, index: int, target: dict[str, float] | None) -> None:
        self.molecules.append(mol)
        self.indices.append(index)
        self.targets.append(target)

    def trim(self) -> None:
        """Keep the first ``wanted`` molecules found and record ``indices`` and ``drawn`` on them."""
        del self.molecules[self.wanted :], self.indices[self.wanted :], self.targets[self.wanted :]
        self.molecules.indices, self.molecules.drawn = list(self.indices), self.drawn

    def summary(self) -> str:
        """One line: kept, drawn, and whether the budget ran out."""
        kept = len(self.molecules)
        rate = f"{100 * kept / self.drawn:.1f} %" if self.drawn else "-"
        line = f"filter {self.expression!r}: kept {kept} of {self.drawn} molecules drawn ({rate})"
        if self.diverged:
            line += f", {self.diverged} of them diverged"
        if kept < self.wanted:
            line += (
                f"; only {kept} of the {self.wanted} asked for passed within the budget of {self.max_samples} "
                "(raise --max-samples / max_samples, or loosen the filter)"
            )
        return line


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

    #: Whether :meth:`plan` draws the sizes of a job with given targets from ``p(N | c)``
    #: (:func:`~moldiff.molecules.training_data.sample_num_atoms_given_context`) instead of ``p(N)``:
    #: false for the EDM-style models (EDM's protocol, and the shipped ``qm9_alpha_edm``'s figures), true
    #: for the bond-aware family.
    sizes_given_condition = False

    @property
    def condition_names(self) -> list[str]:
        """The properties the model is conditioned on."""
        return list(self.model.config.context)

    @property
    def condition_optional(self) -> bool:
        """Whether a property may be left out (the model learned to do without it)."""
        return False

    @property
    def drawn_condition_names(self) -> list[str]:
        """The properties drawn from ``p(c | N)`` when a job gives no condition: all the model's, or,
        for a model that may go without some, those its pretrained name stands for
        (:data:`moldiff.pretrained.PRETRAINED_DRAWN_CONDITIONS`: ``qm9_gap`` draws gap alone)."""
        named = PRETRAINED_DRAWN_CONDITIONS.get(self.source)
        if named and self.condition_optional and set(named) <= set(self.condition_names):
            return list(named)
        return self.condition_names

    def plan(
        self,
        num: int,
        seed: int = 0,
        num_atoms: int | Sequence[int] | None = None,
        *,
        part: int = 0,
        condition: dict | None = None,
    ) -> torch.Tensor:
        """Sizes of the ``num`` molecules to sample, ``[num]`` (drawn from ``p(N)`` unless given; with
        given targets ``condition`` and :attr:`sizes_given_condition`, from ``p(N | c)``).

        ``part`` numbers the further rounds of a filtered job (:meth:`sample_filtered`): round ``r``
        draws its sizes from the stream ``(seed, r)``; round 0 is the plan of an unfiltered job."""
        if num < 1:
            raise InputError(f"num must be at least 1, got {num}")
        if num_atoms is None:
            g = torch.Generator().manual_seed(item_seed(seed, part, "sizes"))
            given = self._size_targets(condition, num) if self.sizes_given_condition else None
            if given:
                return sample_num_atoms_given_context(self.model.stats, given, generator=g)
            return self.model.sample_num_atoms(num, generator=g).cpu()
        sizes = torch.as_tensor(num_atoms, dtype=torch.long).reshape(-1)
        if sizes.numel() == 1:
            sizes = sizes.expand(num).clone()
        if sizes.numel() != num:
            raise InputError(f"num_atoms has {sizes.numel()} entries for {num} molecules")
        if bool((sizes < 2).any()):
            raise InputError("every molecule needs at least 2 atoms")
        return sizes

    def _size_targets(self, condition: dict | None, num: int) -> dict[str, torch.Tensor] | None:
        """The given targets of the model's own properties as ``{name: [num]}``, for ``p(N | c)``;
        ``None`` when there are none, or when any is malformed (:meth:`plan_condition` names it)."""
        if not condition or "context_given_n" not in self.model.stats:
            return None
        out = {}
        for name, value in condition.items():
            if name not in self.condition_names:
                continue
            try:
                v = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
            except (TypeError, ValueError, RuntimeError):
                return None
            if v.numel() not in (1, num) or not bool(torch.isfinite(v).all()):
                return None
            out[name] = v.expand(num)
        return out or None

    def plan_condition(
        self,
        sizes: torch.Tensor,
        seed: int = 0,
        condition: dict | None = None,
        *,
        force: bool = False,
        predictor=None,
        part: int = 0,
    ) -> dict[str, torch.Tensor] | None:
        """Target properties of the molecules to sample, ``{name: [num]}`` in physical units.

        A conditional model needs a value for each of its properties (some of them, where it was
        trained with condition dropout: :attr:`condition_optional`); with ``condition=None`` they
        (:attr:`drawn_condition_names`) are drawn from ``p(c | N)`` of its training data (EDM's protocol, Hoogeboom et al. 2022,
        Sec. 5.3). With a ``predictor`` (gradient guidance), an unconditional model takes targets
        for the predictor's properties. Each given value must lie in the training range.

        Args:
            sizes: ``[num]`` molecule sizes (from :meth:`plan`).
            seed: random seed of the draw from ``p(c | N)``.
            condition: ``{name: value or [num] values}``, or ``None``.
            force: accept values outside the training range.
            predictor: optional :class:`~moldiff.molecules.predictor.PropertyPredictor`.
            part: the round of a filtered job (see :meth:`plan`): the draw from ``p(c | N)`` uses the
                stream ``(seed, part)``.

        Returns:
            ``None`` when nothing is conditioned on.

        Raises:
            InputError: an unknown or missing property, a wrong number of values, or a value outside
                the training range (unless ``force``).
        """
        names = self.condition_names
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
            g = torch.Generator().manual_seed(item_seed(seed, part, "condition"))
            return sample_context(self.model.stats, self.drawn_condition_names, sizes, generator=g)
        allowed = set(names) | (set(predictor.properties) if predictor is not None else set())
        if not allowed:
            raise InputError(
                "this model is unconditional: it takes no condition (pass predictor= for gradient guidance)"
            )
        unknown = [n for n in condition if n not in allowed]
        missing = [] if self.condition_optional else [n for n in names if n not in condition]
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

    #: the keyword of ``sample_states`` that takes the model's conditioning input
    context_option = "context"
    #: gradient guidance by a property predictor for this family's sampler state
    predictor_guidance = staticmethod(predictor_guidance)

    def condition_options(
        self, condition, predictor, scale: float, tau: float, sigma_max: float | None, max_step: float | None
    ) -> dict:
        """Sampler options for a chunk's ``condition``: the model's conditioning input (the properties it
        was trained on) and, with ``predictor``, gradient guidance towards the predictor's targets."""
        options: dict = {}
        if condition is None:
            return options
        context = {n: v for n, v in condition.items() if n in self.condition_names}
        if context:
            options[self.context_option] = context
        if predictor is not None:
            targets = {n: v for n, v in condition.items() if n in predictor.properties}
            options["guidance"] = self.predictor_guidance(
                predictor.to(self.device).eval(), self.model, targets, scale, tau, sigma_max, max_step=max_step
            )
        return options

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
        fragment=None,
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
            fragment: a :class:`~moldiff.molecules.fragments.Fragment` held fixed as the first atoms of
                every molecule (:meth:`fragment_state`).
            options: sampler options and ``guidance_scale`` (classifier-free guidance).
        """
        if fragment is not None:
            options.update(zip(("known", "mask"), self.fragment_state(fragment, sizes)))
        options.update(
            self.condition_options(
                condition, predictor, predictor_scale, predictor_tau, predictor_sigma_max, predictor_max_step
            )
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
        sizes = self.plan(num, seed, num_atoms, condition=condition)
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
        filter: str | None = None,
        max_samples: int | None = None,
        fragment=None,
        add_atoms: tuple[int, int] | None = None,
        **options,
    ) -> "SampledMolecules":
        """Sample ``num`` molecules as RDKit molecules with a 3D conformer.

        Example::

            gen = moldiff.load_pretrained("qm9_alpha")   # or a run's "runs/qm9_alpha/checkpoints/best.ckpt"
            mols = gen.sample(100, condition={"alpha": 80.0})
            good = moldiff.load_pretrained("qm9").sample(20, filter="valid and qed > 0.5")

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
            filter: keep only the molecules that pass this expression of their properties
                (:mod:`moldiff.molecules.filters`, e.g. ``"valid and qed > 0.5 and not pains"``),
                sampling on in further rounds until ``num`` pass or ``max_samples`` are drawn
                (:meth:`sample_filtered`; a molecule that diverged does not pass). With fewer than
                ``num`` found, those are returned with a warning.
            max_samples: the budget of a filtered call: molecules drawn at most (default: 20 x ``num``).
            fragment: grow every molecule around fixed atoms, or link several pieces into one molecule:
                an RDKit molecule with a 3D conformer, an SDF file (every record a piece) or a list of
                them (:mod:`moldiff.molecules.fragments`: what is held fixed, for each model family).
                The fragment's atoms come first in every molecule; each molecule carries the RMSD of
                its fragment atoms after superposition (``.fragment_rmsd``).
            add_atoms: with ``fragment``, ``(a, b)``: add ``a`` to ``b`` atoms (uniformly) to the
                fragment's; or give ``num_atoms`` (each at least the fragment's atoms); with neither,
                sizes come from the training histogram given more atoms than the fragment's.
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
        if fragment is not None or add_atoms is not None:
            fragment, num_atoms = self.prepare_fragment(fragment, num, seed, num_atoms, add_atoms)
            options["fragment"] = fragment
        if predictor is not None:
            options.update(
                predictor_scale=predictor_scale,
                predictor_tau=predictor_tau,
                predictor_sigma_max=predictor_sigma_max,
                predictor_max_step=predictor_max_step,
            )
        if filter is not None:
            if device is not None:
                self.to(device)
            with step_progress(max_samples or 20 * num, "sampling with a filter (drawn)", progress, unit="mol") as tick:
                found = self.sample_filtered(
                    num,
                    filter,
                    seed=seed,
                    max_samples=max_samples,
                    batch_size=batch_size,
                    num_atoms=num_atoms,
                    condition=condition,
                    force=force,
                    predictor=predictor,
                    bonds=bonds,
                    sanitize=sanitize,
                    sampler=sampler,
                    steps=steps,
                    on_chunk=(lambda n: tick(n=n)) if tick else None,
                    guidance_scale=guidance_scale,
                    **options,
                )
            if len(found.molecules) < num:
                warnings.warn(found.summary(), stacklevel=2)
            for mol in found.molecules if fragment is not None else ():
                annotate_fragment(mol, fragment)
            return found.molecules
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
        if fragment is not None:
            mols = [annotate_fragment(m, fragment) for m in mols]
        return SampledMolecules(mols)

    def prepare_fragment(self, fragment, num: int, seed: int, num_atoms=None, add_atoms=None):
        """``(Fragment, sizes [num])`` of a job grown around ``fragment`` (see :meth:`sample`), the
        fragment checked against the model (:meth:`fragment_state`) before anything is sampled.

        Raises:
            FragmentError: a bad fragment, or sizes that cannot hold it.
        """
        if fragment is None or (isinstance(fragment, (list, tuple)) and not fragment):
            raise InputError("add_atoms (--add-atoms) counts atoms added to a fragment: give a fragment too")
        fragment = load_fragment(fragment)
        sizes = fragment_sizes(self.model.num_atoms, fragment, num, seed, num_atoms=num_atoms, add_atoms=add_atoms)
        self.fragment_state(fragment, sizes[:1])
        return fragment, sizes

    def fragment_state(self, fragment, sizes: torch.Tensor):
        """The fixed part of a packed batch of molecules of ``sizes`` grown around ``fragment``:
        ``(known [N, 3 + F], mask [N])`` for :meth:`MoleculeDiffusion.sample_states`
        (:func:`~moldiff.molecules.fragments.edm_fixed_state`)."""
        return edm_fixed_state(self.model, fragment, sizes)

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

    def property_bonds(self, bonds: str = "edm") -> str:
        """The protocol of this family's molecules' properties (:mod:`moldiff.molecules.properties`):
        bonds perceived from the coordinates by ``bonds`` (``"edm"`` or ``"rdkit"``), as their SDF holds them."""
        return bonds

    def sample_filtered(
        self,
        num: int,
        expression: str,
        *,
        seed: int = 0,
        max_samples: int | None = None,
        batch_size: int = 250,
        num_atoms: int | Sequence[int] | None = None,
        condition: dict | None = None,
        force: bool = False,
        predictor=None,
        bonds: str = "edm",
        sanitize: bool | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        callback: Callable | None = None,
        on_chunk: Callable[[int], Any] | None = None,
        rank: int = 0,
        world_size: int = 1,
        **options,
    ) -> "FilteredSample":
        """Sample until ``num`` molecules pass a filter expression, or ``max_samples`` are drawn.

        The job goes in rounds of ``num`` molecules: round ``r`` holds molecules ``r * num`` to
        ``(r + 1) * num - 1`` of the job, its sizes (and conditions) drawn from the streams
        ``(seed, r)`` (:meth:`plan`; round 0 is exactly the unfiltered job of ``num`` molecules), and
        molecule ``i`` draws its noise from ``(seed, i)`` as always. A round is sampled in chunks of
        ``batch_size``, ``world_size`` chunks at a time (one per process under torchrun), and the
        molecules found are the first ``num`` that pass, in job order: the same whatever the batch size
        or the number of processes (only the count drawn may differ). A molecule that diverged does
        not pass.

        Args:
            num: molecules wanted.
            expression: a filter expression (:func:`moldiff.molecules.filters.parse_filter`).
            max_samples: molecules drawn at most (default: 20 x ``num``).
            bonds: the bond perception of EDM-style models (``"edm"``, ``"rdkit"``); models that
                generate bonds are judged by their own (:meth:`property_bonds`).
            sanitize: as :meth:`sample`.
            rank, world_size: this process and the number of processes (all of them call this).
            on_chunk: called with the number of molecules of each chunk this process sampled.
            seed, batch_size, num_atoms, condition, force, predictor, sampler, steps, callback, options:
                as :meth:`sample_chunk` and :meth:`sample`.

        Returns:
            A :class:`FilteredSample`.

        Raises:
            FilterError: a bad expression (before anything is sampled).
        """
        flt = parse_filter(expression)
        flt.check_available()
        max_samples = 20 * num if max_samples is None else int(max_samples)
        if num < 1 or max_samples < 1:
            raise InputError(f"num and max_samples must be at least 1, got {num} and {max_samples}")
        protocol = self.property_bonds(bonds)
        clean = self.sanitize_by_default if sanitize is None else sanitize
        found = FilteredSample(flt.expression, num, max_samples)
        part = 0
        while len(found.molecules) < num and part * num < max_samples:
            start, count = part * num, min(num, max_samples - part * num)
            sizes = self.plan(num, seed, num_atoms, part=part, condition=condition)
            targets = self.plan_condition(sizes, seed, condition, force=force, predictor=predictor, part=part)
            chunks = list(range(math.ceil(count / batch_size)))
            for wave in range(0, len(chunks), world_size):
                mine = {}
                for k in chunks[wave : wave + world_size]:
                    if k % world_size != rank:
                        continue
                    part_slice = slice(k * batch_size, min((k + 1) * batch_size, count))
                    mine[k] = self.sample_chunk(
                        sizes[part_slice],
                        seed,
                        start + k * batch_size,
                        sampler=sampler,
                        steps=steps,
                        callback=callback,
                        condition=None if targets is None else {n: v[part_slice] for n, v in targets.items()},
                        predictor=predictor,
                        **options,
                    )
                    if on_chunk is not None:
                        on_chunk(len(mine[k]))
                merged = {k: v for p in (gather_objects(mine) if world_size > 1 else [mine]) for k, v in p.items()}
                for k in sorted(merged):
                    for j, record in enumerate(merged[k]):
                        index = start + k * batch_size + j
                        found.drawn += 1
                        if diverged_samples([record]):
                            found.diverged += 1
                            continue
                        mol = self.molecule(record, bonds)
                        if clean:
                            mol = self.checked(mol)
                        row = molecule_properties(mol, protocol, flt.names, index=index)
                        if flt(row):
                            target = (
                                None
                                if targets is None
                                else {n: float(v[k * batch_size + j]) for n, v in targets.items()}
                            )
                            found.add(mol, index, target)
                if len(found.molecules) >= num:
                    break
            part += 1
        found.trim()
        return found

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
        its own chunks (:meth:`chunks_for`) and rank 0 writes them all. With ``--filter`` the job goes on
        in rounds until ``--num`` molecules pass (:meth:`sample_filtered`); with ``--properties`` every
        molecule carries its properties as SDF data items (``moldiff_qed``, ...)."""
        out = Path(args.out or "samples.sdf")
        # a destination that cannot be written, or an existing file not to be replaced, stops here,
        # before anything is sampled; so does an unknown suffix, and so does a bad filter
        replaces = check_output_file(out, overwrite=getattr(args, "overwrite", False))
        out_format = molecule_file_format(out)
        expression = getattr(args, "filter", None)
        flt = None if expression is None else parse_filter(expression)
        if flt is not None:
            flt.check_available()
        with_properties = getattr(args, "properties", False)
        if with_properties and out_format == "xyz":
            raise InputError(f"--properties writes SDF data items, which an XYZ file has not: write {out.stem}.sdf")
        max_samples = getattr(args, "max_samples", None)
        if max_samples is not None and flt is None:
            raise InputError("--max-samples is the budget of --filter; give a --filter")
        sampler, steps, _ = self.model.sampling_defaults(args.sampler, args.steps)
        get_sampler(sampler)  # an unknown name stops here, before anything is sampled
        options = {} if args.guidance_scale is None else {"guidance_scale": args.guidance_scale}
        joint = {
            k: v for k, v in (("eta", getattr(args, "eta", None)), ("rho", getattr(args, "rho", None))) if v is not None
        }
        if joint and not isinstance(self, FlowMoleculeGenerator):
            raise InputError(f"--eta and --rho set the joint sampler of bond-aware models; {args.model} is EDM-style")
        options.update(joint)
        fragment, num_atoms = None, args.num_atoms
        if getattr(args, "fragment", None) or getattr(args, "add_atoms", None) is not None:
            fragment, num_atoms = self.prepare_fragment(
                getattr(args, "fragment", None), args.num, args.seed, args.num_atoms, args.add_atoms
            )
            options["fragment"] = fragment
        tick = time.perf_counter()
        if flt is not None:
            budget = 20 * args.num if max_samples is None else max_samples
            with step_progress(
                budget, f"sampling with a filter ({sampler}), drawn", info.is_main and not args.no_progress, unit="mol"
            ) as progress:
                found = self.sample_filtered(
                    args.num,
                    flt,
                    seed=args.seed,
                    max_samples=budget,
                    batch_size=args.batch_size,
                    num_atoms=num_atoms,
                    condition=parse_conditions(args.condition),
                    force=args.force_condition,
                    bonds=args.bonds,
                    sampler=sampler,
                    steps=args.steps,
                    on_chunk=(lambda n: progress(n=n)) if progress else None,
                    rank=info.rank,
                    world_size=info.world_size,
                    **options,
                )
            elapsed, sampled_here = time.perf_counter() - tick, found.drawn
            if not info.is_main:
                return 0
            print(f"moldiff sample: {found.summary()}", file=sys.stderr)
            if not found.molecules:
                raise SamplingError(f"no molecule passed the filter {flt.expression!r}; nothing written to {out}")
            molecules, indices = found.molecules, found.indices
            targets_of = dict(zip(indices, found.targets))
        else:
            sizes = self.plan(args.num, args.seed, num_atoms, condition=parse_conditions(args.condition))
            targets = self.plan_condition(
                sizes, args.seed, parse_conditions(args.condition), force=args.force_condition
            )
            mine = self.chunks_for(args.num, args.batch_size, info.rank, info.world_size)  # each rank its own chunks
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
            elapsed, sampled_here = time.perf_counter() - tick, sum(len(results[k]) for k in mine)
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
            indices = [i for i in range(len(records)) if i not in set(bad)]
            molecules = [self.molecule(records[i], args.bonds) for i in indices]
            if self.sanitize_by_default:
                molecules = SampledMolecules(self.checked(m) for m in molecules)
            targets_of = {i: None if targets is None else {n: float(v[i]) for n, v in targets.items()} for i in indices}
        if fragment is not None:
            molecules = SampledMolecules(annotate_fragment(m, fragment) for m in molecules)
            worst = max(molecules.fragment_rmsd, default=0.0)
            print(
                f"fragment {fragment.label}: {fragment.num_atoms} atoms held fixed as atoms 1-{fragment.num_atoms}; "
                f"RMSD after superposition at most {worst:.1e} A (SDF property moldiff_fragment_rmsd)",
                file=sys.stderr,
            )
        unbonded = sum(m.HasProp("moldiff_bonds") for m in molecules)
        if unbonded:
            print(
                f"{unbonded} of {len(molecules)} molecules: RDKit could assign no bonds; written without bonds, with "
                "the SDF property moldiff_bonds = none and the reason in moldiff_error",
                file=sys.stderr,
            )
        failed = SampledMolecules(molecules).failed
        if failed:
            print(
                f"{len(failed)} of {len(molecules)} molecules failed RDKit's sanitisation: written as "
                f"generated, with the SDF property moldiff_sanitized = 0 and the reason in moldiff_error",
                file=sys.stderr,
            )
        if with_properties:
            for mol, row in zip(molecules, molecule_table(molecules, self.property_bonds(args.bonds), PROPERTY_NAMES)):
                set_sdf_properties(mol, row)
        if out_format == "xyz":
            write_xyz(molecules, out)
        else:

            def title(i: int) -> str:
                target = targets_of.get(i)
                conditions = "" if not target else "".join(f" {n}={v:.6g}" for n, v in target.items())
                return f"moldiff {args.model} seed={args.seed} #{i}{conditions}"

            write_sdf(molecules, out, titles=[title(i) for i in indices])
        per_molecule = elapsed / max(1, sampled_here)
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
    ``(atomic_numbers, positions)`` pairs. Its molecules are sanitised by default
    (:meth:`MoleculeGenerator.checked`).

    Conditional models (``model.conditioning``) take ``condition={"alpha": 80, "gap": 0.25}`` (any
    subset of their properties where they were trained with condition dropout; the range checks and
    the non-finite refusal of :meth:`MoleculeGenerator.plan_condition`), ``guidance_scale``
    (classifier-free guidance of coordinates, types, charges and bonds) and a ``predictor``
    (gradient guidance of the coordinates, :func:`~moldiff.molecules.predictor.joint_predictor_guidance`);
    with given targets and no ``num_atoms``, sizes come from ``p(N | c)``
    (:func:`~moldiff.molecules.training_data.sample_num_atoms_given_context`): a molecule of the
    size the target asks for.
    """

    sanitize_by_default = True
    sizes_given_condition = True

    context_option = "condition"
    predictor_guidance = staticmethod(joint_predictor_guidance)

    @property
    def condition_names(self) -> list[str]:
        return list(self.model.config.conditioning)

    @property
    def condition_optional(self) -> bool:
        return self.model.config.condition_optional

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
        predictor_scale: float = 1.0,
        predictor_tau: float = 1.0,
        predictor_sigma_max: float | None = GUIDANCE_SIGMA_MAX,
        predictor_max_step: float | None = GUIDANCE_MAX_STEP,
        fragment=None,
        **options,
    ) -> list[dict]:
        """One chunk of molecule records (see :meth:`MoleculeGenerator.sample_chunk` for the seeding,
        ``condition``, the predictor's options and ``fragment``)."""
        g = item_generators(seed, range(start, start + len(sizes)), self.device)
        if not self.condition_names:
            options.pop("guidance_scale", None)  # nothing to guide towards, as for EDM-style models
        options.update(
            self.condition_options(
                condition, predictor, predictor_scale, predictor_tau, predictor_sigma_max, predictor_max_step
            )
        )
        if fragment is not None:
            options.update(zip(("known", "masks"), self.fragment_state(fragment, sizes)))
        sample = self.model.sample_states(
            sizes, sampler=sampler, steps=steps, generator=g, callback=callback, **options
        )
        return self.model.split_molecules(sample)

    def property_bonds(self, bonds: str = "edm") -> str:
        """``"file"``: this family's molecules are judged by their own generated bonds and charges."""
        return "file"

    def fragment_state(self, fragment, sizes: torch.Tensor):
        """``(known, masks)`` dicts of the fixed atoms, charges, coordinates and bonds for
        :meth:`MoleculeFlow.sample_states` (:func:`~moldiff.molecules.fragments.flow_fixed_state`)."""
        return flow_fixed_state(self.model, fragment, sizes)

    def molecule(self, record, bonds: str = "edm"):
        """The RDKit molecule of one sampled record, with its generated bonds and charges."""
        return bonded_molecule(record["atomic_numbers"], record["formal_charges"], record["positions"], record["bonds"])
