"""The ``moldiff`` command.

Each subcommand is two small functions, registered once in :data:`COMMANDS`:

* ``add_arguments(parser)`` declares its arguments;
* ``run(args) -> int`` does the work, importing heavy modules *inside* the function so that
  ``moldiff --help`` stays instant.

To add a subcommand, write those two functions and add one :class:`Command` line to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

__all__ = ["Command", "COMMANDS", "build_parser", "main"]


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, one-line help, argument declaration and implementation."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# ------------------------------------------------------------------------------------------------
# moldiff train
# ------------------------------------------------------------------------------------------------

def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML file (sections task, model, data, train)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="override any config field, e.g. train.lr=3e-4 train.steps=2000 model.hidden=256")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="run folder for logs and checkpoints (default: train.out_dir, else runs/<config name>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in the run folder (starts fresh if there is none)")
    parser.add_argument("--resume-from", metavar="CKPT", default=None,
                        help="continue from this checkpoint file")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _train(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from moldiff.train.config import load_config
    from moldiff.train.loop import train

    overrides = list(args.overrides)
    if args.no_progress:
        overrides.append("train.progress=false")
    config = load_config(args.config, overrides)
    out_dir = args.out or config.train.out_dir or str(Path("runs") / Path(args.config).stem)
    resume = args.resume_from if args.resume_from else bool(args.resume)
    result = train(config, out_dir=out_dir, resume=resume)
    if result.last_log and os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
        state = "stopped by signal (continue with --resume)" if result.stopped else "done"
        print(f"{state}: step {result.step}, loss {result.last_log.get('loss')}, "
              f"checkpoint {result.last_checkpoint}, skipped steps {result.skipped_steps}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------------
# moldiff sample
# ------------------------------------------------------------------------------------------------

def _sample_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="qm9", help="pretrained model name (qm9) or a checkpoint path (default: qm9)")
    parser.add_argument("--num", "-n", "--num-samples", dest="num", type=int, default=100,
                        help="number of molecules, images or backbones (default: 100); under torchrun write "
                             "-n or --num-samples, since torchrun reads --num as its own --numa-binding")
    parser.add_argument("--out", default=None,
                        help="output file: .sdf, .sdf.gz or .xyz for molecules (default: samples.sdf), "
                             ".png (a grid) for image models (default: samples.png), a folder for protein backbone "
                             "models (default: samples/)")
    parser.add_argument("--sampler", default=None,
                        help="ddpm (EDM's ancestral sampler), ddim, euler, heun, dpmpp_2m, euler_maruyama, pc, pf_ode "
                             "(default: ddpm for molecules, the model's configured sampler for images and backbones)")
    parser.add_argument("--steps", type=int, default=None,
                        help="sampler steps (default for molecules: the model's T = 1000 for ddpm, 50 for the others; "
                             "for images: the model's configured sample_steps)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--num-atoms", type=int, default=None, help="fixed number of atoms (default: drawn from the data)")
    parser.add_argument("--batch-size", type=int, default=250, help="molecules or images sampled together (default: 250)")
    parser.add_argument("--bonds", choices=("edm", "rdkit"), default="edm", help="bond perception for the SDF (default: edm)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    conditional = parser.add_argument_group("conditional molecule models")
    conditional.add_argument("--condition", action="append", default=None, metavar="NAME=VALUE",
                             help="target property in QM9's units, e.g. alpha=80.0 (repeat for several properties; "
                                  "default: drawn from p(c | N) of the training data)")
    conditional.add_argument("--force-condition", action="store_true",
                             help="accept --condition values outside the model's training range")
    images = parser.add_argument_group("image models")
    images.add_argument("--labels", default=None,
                        help="class-conditional models: a class index or name for every image, a comma-separated list "
                             "(one per image), or 'cycle' (0, 1, ..., K-1, 0, ...) (default: unconditional)")
    images.add_argument("--guidance-scale", type=float, default=None,
                        help="classifier-free guidance weight w, with --labels or for conditional molecule models "
                             "(default: the model's for images, 1 = none)")
    images.add_argument("--nrow", type=int, default=None, help="images per grid row (default: square grid)")
    proteins = parser.add_argument_group("protein backbone models (--out is a folder of PDB files + JSON sidecars)")
    proteins.add_argument("--length", type=int, default=None, help="residues per chain (default: drawn from the data)")
    proteins.add_argument("--contig", default=None,
                          help="motif scaffolding, RFdiffusion's dialect, e.g. 10-20/A15-30/10-20 (needs --motif-pdb)")
    proteins.add_argument("--motif-pdb", default=None, help="PDB or mmCIF file holding the contig's motif residues")
    proteins.add_argument("--temperature", type=float, default=1.0,
                          help="scale of the sampler's noise; below 1 for low-temperature sampling (default: 1)")


def _sample(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from moldiff.models.pretrained import MoleculeGenerator, load_model
    from moldiff.train.distributed import cleanup_distributed, gather_objects, init_distributed

    if args.num < 1:
        raise SystemExit("moldiff sample: --num must be at least 1")
    info = init_distributed(args.device)
    model = load_model(args.model, device=info.device)
    if _is_backbone_model(model):
        try:
            return _sample_backbones(args, model) if info.is_main else 0
        finally:
            cleanup_distributed(info)
    if _is_image_model(model) or (args.out or "").lower().endswith(".png"):
        try:
            return _sample_images(args, model, info)
        finally:
            cleanup_distributed(info)
    args.out = args.out or "samples.sdf"
    args.sampler = args.sampler or "ddpm"
    generator = MoleculeGenerator(model, source=str(args.model))
    sizes = generator.plan(args.num, args.seed, args.num_atoms)
    try:
        targets = generator.plan_condition(sizes, args.seed, parse_conditions(args.condition),
                                           force=args.force_condition)
    except ValueError as err:  # malformed NAME=VALUE, unknown property, value outside the training range
        cleanup_distributed(info)
        print(f"moldiff sample: {err}", file=sys.stderr)
        return 2
    options = {} if args.guidance_scale is None else {"guidance_scale": args.guidance_scale}
    mine = generator.chunks_for(args.num, args.batch_size, info.rank, info.world_size)  # each rank its own chunks
    bar = None
    if info.is_main and not args.no_progress:
        from tqdm.auto import tqdm

        steps, _ = generator.model.sampling_defaults(args.sampler, args.steps)
        bar = tqdm(total=len(mine) * steps, unit="step", desc=f"sampling {args.num} molecules ({args.sampler})")
    tick = time.perf_counter()
    results = generator.sample_chunks(sizes, args.seed, mine, batch_size=args.batch_size, targets=targets,
                                      sampler=args.sampler, steps=args.steps,
                                      callback=(lambda info_: bar.update(1)) if bar is not None else None, **options)
    elapsed = time.perf_counter() - tick
    gathered = gather_objects(results) if info.distributed else [results]
    if info.is_main:
        if bar is not None:
            bar.close()
        merged = {k: v for part in gathered for k, v in part.items()}
        molecules = [m for k in sorted(merged) for m in merged[k]]
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".xyz":
            from moldiff.molecules.rdkit_io import write_xyz

            write_xyz(molecules, out)
        else:
            from moldiff.molecules.rdkit_io import write_sdf

            def title(i: int) -> str:
                target = "" if targets is None else "".join(f" {n}={float(v[i]):.6g}" for n, v in targets.items())
                return f"moldiff {args.model} seed={args.seed} #{i}{target}"

            write_sdf(molecules, out, bonds=args.bonds, titles=[title(i) for i in range(len(molecules))])
        per_molecule = elapsed / max(1, sum(len(results[k]) for k in mine))
        print(f"wrote {len(molecules)} molecules to {out} ({per_molecule:.3f} s per molecule on rank 0, "
              f"{info.world_size} process(es), device {info.device})", file=sys.stderr)
    cleanup_distributed(info)
    return 0


def parse_conditions(items: Sequence[str] | None) -> dict[str, float] | None:
    """``["alpha=80", "gap=0.25"]`` -> ``{"alpha": 80.0, "gap": 0.25}`` (``None`` for no items).

    Raises:
        ValueError: naming the malformed item (no ``=``, no name, a value that is not a number, or a
            property given twice).
    """
    if not items:
        return None
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--condition expects NAME=VALUE (e.g. alpha=80.0), got {item!r}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"--condition {item}: {value.strip()!r} is not a number") from None
        if name in out:
            raise ValueError(f"--condition gives {name!r} twice")
        out[name] = number
    return out


def _is_image_model(model) -> bool:
    from moldiff.images.model import ImageDiffusion

    return isinstance(model, ImageDiffusion)


def _is_backbone_model(model) -> bool:
    from moldiff.proteins.model import BackboneDiffusion

    return isinstance(model, BackboneDiffusion)


def _sample_backbones(args: argparse.Namespace, model) -> int:
    """``moldiff sample`` for protein backbone models: PDB files and JSON sidecars in the ``--out`` folder."""
    import time

    from moldiff.proteins.contig import ContigError
    from moldiff.proteins.model import save_designs
    from moldiff.proteins.pdb_io import StructureError

    if (args.contig is None) != (args.motif_pdb is None):
        print("moldiff sample: --contig and --motif-pdb go together", file=sys.stderr)
        return 2
    out = args.out or "samples"
    options = dict(seed=args.seed, sampler=args.sampler, steps=args.steps, temperature=args.temperature,
                   batch_size=args.batch_size)
    tick = time.perf_counter()
    try:
        if args.contig:
            designs = model.scaffold(args.motif_pdb, args.contig, args.num, length=args.length, **options)
        else:
            designs = model.sample(args.length, num=args.num, **options)
    except (ContigError, StructureError, ValueError) as err:
        print(f"moldiff sample: {err}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - tick
    meta = {"model": str(args.model), "sampler": args.sampler or model.config.sampler,
            "steps": args.steps or model.config.sample_steps, "temperature": args.temperature}
    paths = save_designs(designs, out, metadata=meta)
    rmsd = [d.motif_rmsd for d in designs if d.motif_rmsd is not None]
    extra = f", motif RMSD max {max(rmsd):.2e} A" if rmsd else ""
    print(f"wrote {len(paths)} backbones to {out}/ ({elapsed / len(paths):.3f} s per backbone{extra})", file=sys.stderr)
    return 0


def _sample_images(args: argparse.Namespace, model, info) -> int:
    """``moldiff sample`` for image models: one PNG grid, written by rank 0."""
    import time

    from moldiff.images.grid import save_grid

    def fail(message: str) -> int:
        print(f"moldiff sample: {message}", file=sys.stderr)
        return 2

    if not _is_image_model(model):
        return fail(f"{args.model} is not an image model; write molecules to .sdf or .xyz")
    out = args.out or "samples.png"
    if not out.lower().endswith(".png"):
        return fail(f"image models write a PNG grid; got --out {out}")
    labels = args.labels
    if labels == "cycle":
        labels = [k % max(model.num_classes, 1) for k in range(args.num)]
    elif labels is not None:
        labels = [int(v) if v.strip().lstrip("-").isdigit() else v.strip() for v in labels.split(",")]
    if not info.is_main:
        return 0
    progress = {}

    def step(_):  # the bar appears with the first step, after the arguments were checked
        if "bar" not in progress:
            from tqdm.auto import tqdm

            total = (len(model.sigmas(args.steps)) - 1) * -(-args.num // args.batch_size)
            progress["bar"] = tqdm(total=total, unit="step", desc=f"sampling {args.num} images")
        progress["bar"].update(1)

    tick = time.perf_counter()
    try:
        images = model.sample(args.num, seed=args.seed, sampler=args.sampler, steps=args.steps, labels=labels,
                              guidance_scale=args.guidance_scale, batch_size=args.batch_size,
                              callback=None if args.no_progress else step)
    except ValueError as err:  # unknown sampler or class name, labels for an unconditional model, ...
        return fail(str(err))
    finally:
        if "bar" in progress:
            progress["bar"].close()
    elapsed = time.perf_counter() - tick
    save_grid(images.cpu(), out, nrow=args.nrow or (model.num_classes if args.labels == "cycle" else None))
    nfe = model.nfe(args.sampler, args.steps, args.guidance_scale, guided=labels is not None)
    print(f"wrote {args.num} images to {out} ({elapsed / args.num:.3f} s per image, {nfe} network evaluations "
          f"per image, device {info.device})", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------------
# moldiff evaluate
# ------------------------------------------------------------------------------------------------

def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", default=None, help="SDF file (.sdf, .sdf.gz) or folder of generated molecules")
    parser.add_argument("--dataset", default=None, help="evaluate real molecules instead: qm9")
    parser.add_argument("--split", default="test", help="dataset split: train, valid, test or all (default: test)")
    parser.add_argument("--training-smiles", default=None, metavar="qm9|FILE",
                        help="reference SMILES for novelty: 'qm9' (QM9 training split, cached) or a file, one per line")
    parser.add_argument("--bonds", choices=("edm", "rdkit"), default="edm", help="bond perception (default: edm, EDM's protocol)")
    parser.add_argument("--skip-bad-records", action="store_true", help="skip and count bad SDF records instead of stopping")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from moldiff.molecules.evaluate import evaluate_dataset, evaluate_sdf, format_report

    if (args.path is None) == (args.dataset is None):
        raise SystemExit("moldiff evaluate: give either an SDF path or --dataset qm9")
    try:
        if args.path is not None:
            result = evaluate_sdf(args.path, training_smiles=args.training_smiles, bonds=args.bonds,
                                  on_error="skip" if args.skip_bad_records else "raise")
        else:
            result = evaluate_dataset(args.dataset, args.split, training_smiles=args.training_smiles, bonds=args.bonds)
    except (ValueError, FileNotFoundError, ModuleNotFoundError) as err:  # bad record, missing file, unknown dataset
        hint = " (use --skip-bad-records to skip it)" if "record" in str(err) else ""
        print(f"moldiff evaluate: {err}{hint}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


# ------------------------------------------------------------------------------------------------
# moldiff evaluate-backbones
# ------------------------------------------------------------------------------------------------

def _evaluate_backbones_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="folder of generated backbones (PDB or mmCIF files)")
    parser.add_argument("--reference", default=None,
                        help="real domains: CATH tar archive or folder; its fixed held-out split is used "
                             "(default: ../shared/data/proteins/cath_domains_1000.tar.gz)")
    parser.add_argument("--max-reference", type=int, default=200, help="held-out domains used at most (default: 200)")
    parser.add_argument("--skip-bad-files", action="store_true",
                        help="skip and count unreadable files instead of stopping")
    parser.add_argument("--no-tm-score", action="store_true", help="skip the pairwise TM-score diversity")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")


def _evaluate_backbones(args: argparse.Namespace) -> int:
    import json

    from moldiff.proteins.evaluate import evaluate_folder, format_report

    try:
        result = evaluate_folder(args.path, args.reference, max_reference=args.max_reference,
                                 on_error="skip" if args.skip_bad_files else "raise", tm_score=not args.no_tm_score)
    except (ValueError, FileNotFoundError) as err:  # bad structure file, empty folder, missing reference
        hint = " (use --skip-bad-files to skip it)" if "residue" in str(err) or "chain" in str(err) else ""
        print(f"moldiff evaluate-backbones: {err}{hint}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


COMMANDS: list[Command] = [
    Command("train", "train a model from a YAML config (use torchrun for several GPUs or machines)",
            _train_arguments, _train),
    Command("sample", "sample molecules (SDF/XYZ file; torchrun for several GPUs), images (PNG grid) or protein "
            "backbones (folder of PDB files) from a model",
            _sample_arguments, _sample),
    Command("evaluate", "EDM's metrics (stability, validity, uniqueness, novelty) of an SDF file or a dataset split",
            _evaluate_arguments, _evaluate),
    Command("evaluate-backbones", "geometry, compactness, secondary structure and diversity of generated protein "
            "backbones against held-out CATH domains", _evaluate_backbones_arguments, _evaluate_backbones),
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="moldiff", description="Diffusion models of molecules, proteins and images.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``moldiff`` console script.

    Configuration mistakes (unknown keys, wrong types, missing files) and a fresh run aimed at a
    folder holding another run's checkpoints print one line naming the problem and exit with
    status 2 instead of a traceback.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse stops filling a ``nargs="*"`` positional at the first option, so in
    # ``moldiff train CFG --out DIR train.lr=1e-3`` the override would be "unrecognized": accept
    # KEY=VALUE words wherever they stand on the command line.
    stray = [word for word in extra if word.startswith("-") or "=" not in word]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    from moldiff.train.config import ConfigError

    try:
        return int(args._run(args) or 0)
    except ConfigError as err:
        print(f"moldiff {args.command}: config error: {err}", file=sys.stderr)
        return 2
    except (FileExistsError, FileNotFoundError) as err:
        print(f"moldiff {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
