"""The backbone generator: what :func:`moldiff.load_pretrained` returns for a backbone model.

Example::

    gen = moldiff.load_pretrained("cath_ca")
    designs = gen.sample(10, length=100, seed=0)
    scaffolds = gen.sample(4, contig="10-20/A15-30/10-20", motif="motif.pdb")
    save_designs(designs, "designs/")
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, Sequence

import torch

from moldiff.errors import InputError, SamplingError
from moldiff.files import check_output_folder, replace_folder_files
from moldiff.hub import Generator
from moldiff.train.logs import step_progress

from .angles import sampling_options
from .contig import ContigError
from .model import Design, save_designs
from .pdb_io import PDB_MAX, PDB_MIN, StructureError, fits_pdb

__all__ = ["BackboneGenerator"]


class BackboneGenerator(Generator):
    """Samples protein C-alpha backbones from a trained :class:`~moldiff.proteins.model.BackboneDiffusion`.

    Args:
        model: the trained model.
        source: where it came from (a pretrained name or a path), recorded in the outputs.
    """

    #: ``moldiff sample --potential`` applies (an angle model has potentials; the coordinate model refuses them)
    takes_potentials = True

    def num_steps(self, sampler: str | None = None, steps: int | None = None) -> int:
        """Sampler steps per chain for these settings (the model's defaults where not given)."""
        return len(self.model.sigmas(steps)) - 1

    def sample(
        self,
        num: int,
        *,
        seed: int = 0,
        sampler: str | None = None,
        steps: int | None = None,
        batch_size: int = 64,
        progress: bool = False,
        device: str | torch.device | None = None,
        length: int | Sequence[int] | None = None,
        contig: str | None = None,
        motif: str | os.PathLike | None = None,
        temperature: float = 1.0,
        callback: Callable | None = None,
        **options,
    ) -> list[Design]:
        """Sample ``num`` backbones, or ``num`` scaffolds of a motif.

        Args:
            num: number of chains.
            seed: random seed; the same seed gives the same chains.
            sampler: a :data:`moldiff.core.SAMPLERS` name (default: the model's configured one).
            steps: sampler steps (default: the model's configured number).
            batch_size: chains sampled together.
            progress: show a progress bar (one tick per sampler step of each batch).
            device: run on this device (default: where the model is).
            length: residues per chain, one for all or one per chain (default: drawn from the training
                lengths); with ``contig``, an optional total length.
            contig: motif scaffolding: an RFdiffusion-style contig such as ``"10-20/A15-30/10-20"``
                (needs ``motif``).
            motif: PDB or mmCIF file holding the contig's motif residues.
            temperature: scale of the sampler's noise; below 1 for low-temperature sampling.
            callback: called after each sampler step.
            options: passed to the sampler (``s_churn``, ``eta``, ...).

        Returns:
            One :class:`~moldiff.proteins.model.Design` per chain (``.ca`` ``[L, 3]`` in A).
        """
        if num < 1 or batch_size < 1:
            raise InputError(f"num and batch_size must be at least 1, got {num} and {batch_size}")
        if (contig is None) != (motif is None):
            raise ContigError("contig and motif go together: a contig names the motif residues of the motif file")
        if device is not None:
            self.to(device)
        options.update(seed=seed, sampler=sampler, steps=steps, temperature=temperature, batch_size=batch_size)
        total = self.num_steps(sampler, steps) * -(-num // batch_size)
        with step_progress(total, f"sampling {num} backbones", progress, callback) as step_callback:
            if contig is not None:
                return self.model.scaffold(motif, contig, num, length=length, callback=step_callback, **options)
            return self.model.sample(length, num=num, callback=step_callback, **options)

    def sample_command(self, args, info) -> int:
        """``moldiff sample`` for backbone models: PDB files and JSON sidecars in the ``--out`` folder
        (rank 0 samples; other ranks of a torchrun job have nothing to do)."""
        if not info.is_main:
            return 0
        if (args.contig is None) != (args.motif_pdb is None):
            print("moldiff sample: --contig and --motif-pdb go together", file=sys.stderr)
            return 2
        out = args.out or "samples"
        # A folder holding earlier designs would mix them with these (and evaluate-backbones would score
        # the mix): refused before anything is sampled, unless --overwrite replaces them.
        earlier = check_output_folder(out, overwrite=getattr(args, "overwrite", False), earlier=_is_design_file)
        tick = time.perf_counter()
        try:
            options = sampling_options(
                getattr(args, "potential", None),
                getattr(args, "steer", None),
                getattr(args, "particles", None),
                getattr(args, "potential_sigma_max", None),
            )
            designs = self.sample(
                args.num,
                seed=args.seed,
                sampler=args.sampler,
                steps=args.steps,
                batch_size=args.batch_size,
                progress=not args.no_progress,
                length=args.length,
                contig=args.contig,
                motif=args.motif_pdb,
                temperature=args.temperature,
                **options,
            )
        except (ContigError, StructureError, ValueError) as err:
            print(f"moldiff sample: {err}", file=sys.stderr)
            return 2
        elapsed = time.perf_counter() - tick
        meta = {
            "model": str(args.model),
            "sampler": args.sampler or self.model.config.sampler,
            "steps": args.steps or self.model.config.sample_steps,
            "temperature": args.temperature,
        }
        meta.update(options)
        if options.get("particles", self.model.steering_defaults()["particles"]) > 1:
            meta["sampler"] = "heun_steered"  # what particle steering samples with
        bad = [d.index for d in designs if not fits_pdb(d.ca)]
        if bad:
            shown = ", ".join(f"#{i}" for i in bad[:8]) + (f" and {len(bad) - 8} more" if len(bad) > 8 else "")
            what = (
                f"{len(bad)} of {len(designs)} backbone(s) diverged or did not converge ({shown}: coordinates "
                f"non-finite or beyond the PDB columns, {PDB_MIN:.3f}..{PDB_MAX:.3f} A; more --steps?)"
            )
            if not getattr(args, "skip_diverged", False) or len(bad) == len(designs):
                flag = "" if len(bad) == len(designs) else "; pass --skip-diverged to write the others"
                raise SamplingError(f"{what}{flag}; nothing written to {out}")
            print(f"moldiff sample: {what}: left out", file=sys.stderr)
            designs = [d for d in designs if d.index not in set(bad)]

        def write(folder):
            pdbs = save_designs(designs, folder, metadata=meta)
            return [*pdbs, *(p.with_suffix(".json") for p in pdbs)]

        paths = [p for p in replace_folder_files(out, write, earlier) if p.suffix == ".pdb"]
        rmsd = [d.motif_rmsd for d in designs if d.motif_rmsd is not None]
        extra = f", motif RMSD max {max(rmsd):.2e} A" if rmsd else ""
        replaced = f" (replaced {len(earlier)} earlier file(s))" if earlier else ""
        print(
            f"wrote {len(paths)} backbones to {out.rstrip('/')}/{replaced} "
            f"({elapsed / len(paths):.3f} s per backbone{extra})",
            file=sys.stderr,
        )
        return 0


def _is_design_file(path) -> bool:
    """A file ``moldiff sample`` writes into a backbone folder (``design_0000.pdb`` and its ``.json``)."""
    return path.name.startswith("design_") and path.suffix in (".pdb", ".json")
