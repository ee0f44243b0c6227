"""The ``moldiff`` command.

Each subcommand is two small functions, registered once in :data:`COMMANDS`:

* ``add_arguments(parser)`` declares its arguments;
* ``run(args) -> int`` does the work, importing heavy modules *inside* the function so that
  ``moldiff --help`` stays instant.

To add a subcommand, write those two functions and add one :class:`Command` line to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

from moldiff import __version__
from moldiff.errors import ConfigError, InputError, MoldiffError
from moldiff.pretrained import PRETRAINED

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
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override any config field, e.g. train.lr=3e-4 train.steps=2000 model.hidden=256",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="run folder for logs and checkpoints (default: train.out_dir, else runs/<config name>)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest checkpoint in the run folder (starts fresh if there is none) "
        "with the saved run's config (the folder's config.yaml) and only the overrides given now; "
        "one line names each key where the config file and the saved run differ",
    )
    parser.add_argument(
        "--resume-from",
        metavar="CKPT",
        default=None,
        help="continue from this checkpoint file (the config is chosen as for --resume)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _train(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from moldiff.train.config import load_config
    from moldiff.train.loop import plan_resume, train

    overrides = list(args.overrides)
    if args.no_progress:
        overrides.append("train.progress=false")
    config = load_config(args.config, overrides)
    out_dir = args.out or config.train.out_dir or str(Path("runs") / Path(args.config).stem)
    resume = args.resume_from if args.resume_from else bool(args.resume)
    speaks = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 speaks for all
    plan = None
    if resume:
        # A resumed run continues the saved run's config; only the overrides given now change it.
        plan = plan_resume(args.config, overrides, out_dir, checkpoint=args.resume_from)
        config = plan.config
        if speaks:
            if plan.saved_from is None:
                print(f"moldiff train: no checkpoint in {out_dir} yet: starting a fresh run", file=sys.stderr)
            for line in plan.messages():
                print(f"moldiff train: {line}", file=sys.stderr)
    result = train(config, out_dir=out_dir, resume=resume, resume_plan=plan)
    if result.last_log and speaks:
        state = "stopped by signal (continue with --resume)" if result.stopped else "done"
        print(
            f"{state}: step {result.step}, loss {result.last_log.get('loss')}, "
            f"checkpoint {result.last_checkpoint}, skipped steps {result.skipped_steps}",
            file=sys.stderr,
        )
    return 0


# ------------------------------------------------------------------------------------------------
# moldiff sample
# ------------------------------------------------------------------------------------------------


def _sample_arguments(parser: argparse.ArgumentParser) -> None:
    generative = ", ".join(
        name for name in PRETRAINED if not name.endswith(("_predictor", "_guide", "_judge", "_classifier"))
    )
    parser.add_argument(
        "--model",
        default="qm9",
        help=f"a shipped model ({generative}) or a checkpoint / exported weights file (default: qm9)",
    )
    parser.add_argument(
        "--num",
        "-n",
        "--num-samples",
        dest="num",
        type=int,
        default=100,
        help="number of molecules, images or backbones (default: 100); under torchrun write "
        "-n or --num-samples, since torchrun reads --num as its own --numa-binding",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output file: .sdf, .sdf.gz, .xyz or .xyz.gz for molecules (default: samples.sdf), "
        ".png (a grid) for image models (default: samples.png), a folder for protein backbone "
        "models (default: samples/)",
    )
    parser.add_argument(
        "--sampler",
        default=None,
        help="ddpm (EDM's ancestral sampler), ddim, euler, heun, dpmpp_2m, euler_maruyama, pc, pf_ode "
        "(default: ddpm for molecules, the model's configured sampler for images and backbones)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="sampler steps (default for molecules: the model's T = 1000 for ddpm, 50 for the others; "
        "for images: the model's configured sample_steps)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--num-atoms", type=int, default=None, help="fixed number of atoms (default: drawn from the data)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=250, help="molecules or images sampled together (default: 250)"
    )
    parser.add_argument(
        "--bonds", choices=("edm", "rdkit"), default="edm", help="bond perception for the SDF (default: edm)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "auto"),
        default="fp32",
        help="the network's precision: fp32, bf16 (autocast; coordinates, the sampler's state and "
        "the schedule stay fp32) or auto (bf16 where the CPU or GPU multiplies bf16 matrices "
        "natively) (default: fp32)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out file (or, for backbones, the earlier designs in the --out folder); "
        "without it an existing output stops the command before anything is sampled",
    )
    parser.add_argument(
        "--skip-diverged",
        action="store_true",
        help="leave out samples that diverged (non-finite or exploded coordinates or pixels) and write the "
        "others; without it such a sample stops the command and nothing is written",
    )
    joint = parser.add_argument_group("bond-aware molecule models (qm9): the joint sampler")
    joint.add_argument(
        "--eta",
        type=float,
        default=None,
        help="Campbell et al.'s stochasticity of the categorical steps, 0 for none (default: the model's)",
    )
    joint.add_argument(
        "--rho",
        type=float,
        default=None,
        help="time grid t_k = (1 - k/n)^rho: 1 uniform, above 1 denser near the data (default: the model's)",
    )
    chosen = parser.add_argument_group("molecule models: filters and properties (moldiff.molecules.filters)")
    chosen.add_argument(
        "--filter",
        default=None,
        metavar="EXPR",
        help="keep only molecules that pass this expression of their properties, e.g. "
        '"valid and qed > 0.5 and not pains" (names of moldiff evaluate --per-molecule; comparisons, and, '
        "or, not, parentheses), sampling on in further rounds until --num pass or --max-samples are drawn",
    )
    chosen.add_argument(
        "--max-samples",
        type=int,
        default=None,
        metavar="N",
        help="with --filter: molecules drawn at most (default: 20 x --num)",
    )
    chosen.add_argument(
        "--properties",
        action="store_true",
        help="write every molecule's properties (QED, SA, logP, rings, PAINS and Brenk alerts, ...) as SDF "
        "data items moldiff_<name>",
    )
    fragments = parser.add_argument_group("molecules grown around a fixed fragment (moldiff.molecules.fragments)")
    fragments.add_argument(
        "--fragment",
        action="append",
        default=None,
        metavar="SDF",
        help="hold these atoms fixed (elements, coordinates and, for the bond-aware models, charges and bonds) "
        "and generate the rest around them, as the first atoms of every molecule; every record of the file is "
        "one connected piece, and several pieces (records, or --fragment repeated) are linked into one molecule",
    )
    fragments.add_argument(
        "--add-atoms",
        default=None,
        metavar="A-B",
        help="with --fragment: add A to B atoms (or exactly A) to the fragment's (default: --num-atoms, else "
        "sizes from the data given more atoms than the fragment's)",
    )
    conditional = parser.add_argument_group("conditional molecule models")
    conditional.add_argument(
        "--condition",
        action="append",
        default=None,
        metavar="NAME=VALUE",
        help="target property in QM9's units, e.g. alpha=80.0 (repeat for several properties; "
        "default: drawn from p(c | N) of the training data)",
    )
    conditional.add_argument(
        "--force-condition", action="store_true", help="accept --condition values outside the model's training range"
    )
    images = parser.add_argument_group("image models")
    images.add_argument(
        "--labels",
        default=None,
        help="class-conditional models: a class index or name for every image, a comma-separated list "
        "(one per image), or 'cycle' (0, 1, ..., K-1, 0, ...) (default: unconditional)",
    )
    images.add_argument(
        "--guidance-scale",
        type=float,
        default=None,
        help="classifier-free guidance weight w, with --labels or for conditional molecule models "
        "(default: the model's for images, 1 = none)",
    )
    images.add_argument("--nrow", type=int, default=None, help="images per grid row (default: square grid)")
    proteins = parser.add_argument_group("protein backbone models (--out is a folder of PDB files + JSON sidecars)")
    proteins.add_argument("--length", type=int, default=None, help="residues per chain (default: drawn from the data)")
    proteins.add_argument(
        "--contig",
        default=None,
        help="motif scaffolding, RFdiffusion's dialect, e.g. 10-20/A15-30/10-20 (needs --motif-pdb)",
    )
    proteins.add_argument("--motif-pdb", default=None, help="PDB or mmCIF file holding the contig's motif residues")
    proteins.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="scale of the sampler's noise; below 1 for low-temperature sampling (default: 1)",
    )
    proteins.add_argument(
        "--potential",
        action="append",
        default=None,
        metavar="NAME=WEIGHT",
        help="guiding potential of an angle model (cath_ca): rg=W, clash=W (repeat), or none (default: the model's)",
    )
    proteins.add_argument(
        "--potential-sigma-max",
        type=float,
        default=None,
        metavar="SIGMA",
        help="the guiding potentials act only at noise levels up to this (default: the model's)",
    )
    proteins.add_argument(
        "--particles",
        type=int,
        default=None,
        metavar="K",
        help="particle steering of an angle model: draw every backbone K times, resample the draws by the "
        "--steer potentials along the way and keep the best (K times the cost; 1: off; default: the model's)",
    )
    proteins.add_argument(
        "--steer",
        action="append",
        default=None,
        metavar="NAME=WEIGHT",
        help="steering potential (rg=W, clash=W; repeat) or none (default: the model's)",
    )


def _check_sample_arguments(args: argparse.Namespace) -> None:
    """Numbers that would silently do the wrong thing stop here, before a model is loaded."""
    for option, value, least in (
        ("--num", args.num, 1),
        ("--batch-size", args.batch_size, 1),
        ("--steps", args.steps, 1),
        ("--num-atoms", args.num_atoms, 2),
        ("--length", args.length, 2),
        ("--nrow", args.nrow, 1),
        ("--max-samples", getattr(args, "max_samples", None), 1),
        ("--particles", getattr(args, "particles", None), 1),
    ):
        if value is not None and value < least:
            raise InputError(f"{option} must be at least {least}, got {value}")
    numbers = (
        ("--guidance-scale", args.guidance_scale),
        ("--temperature", args.temperature),
        ("--eta", args.eta),
        ("--rho", args.rho),
    )
    for option, value in numbers:
        if value is not None and not math.isfinite(value):
            raise InputError(f"{option} must be a finite number, got {value}")
    if args.temperature < 0:
        raise InputError(f"--temperature must be at least 0, got {args.temperature}")
    late = getattr(args, "potential_sigma_max", None)
    if late is not None and not late > 0:
        raise InputError(f"--potential-sigma-max must be a positive number, got {late}")
    if args.eta is not None and args.eta < 0:
        raise InputError(f"--eta must be at least 0, got {args.eta}")
    if args.rho is not None and args.rho <= 0:
        raise InputError(f"--rho must be above 0, got {args.rho}")


def _sample(args: argparse.Namespace) -> int:
    from moldiff.hub import load_pretrained
    from moldiff.train.distributed import cleanup_distributed, init_distributed
    from moldiff.train.precision import precision_autocast

    _check_sample_arguments(args)
    info = init_distributed(args.device)
    try:
        generator = load_pretrained(args.model, device=info.device)  # imports the model's modality only
        if not hasattr(generator, "sample_command"):
            print(
                f"moldiff sample: {args.model} is a {type(generator).__name__}, which generates nothing",
                file=sys.stderr,
            )
            return 2
        if (args.filter or args.max_samples or args.properties) and not hasattr(generator, "sample_filtered"):
            raise InputError(f"--filter, --max-samples and --properties apply to molecule models, not {args.model}")
        steering_options = args.potential or args.particles is not None or args.steer
        if (steering_options or args.potential_sigma_max is not None) and not getattr(
            generator, "takes_potentials", False
        ):
            raise InputError(
                f"--potential, --potential-sigma-max, --particles and --steer apply to protein backbone models, "
                f"not {args.model}"
            )
        if (args.fragment or args.add_atoms is not None) and not hasattr(generator, "prepare_fragment"):
            raise InputError(f"--fragment and --add-atoms grow molecules; {args.model} is a {type(generator).__name__}")
        with precision_autocast(args.precision, info.device):
            return generator.sample_command(args, info)
    finally:
        cleanup_distributed(info)


# ------------------------------------------------------------------------------------------------
# moldiff evaluate
# ------------------------------------------------------------------------------------------------


def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        nargs="?",
        default=None,
        help="generated molecules: a file as moldiff sample writes it (.sdf, .sdf.gz or .xyz) or a "
        "folder of such files",
    )
    parser.add_argument("--dataset", default=None, help="evaluate real molecules instead: qm9")
    parser.add_argument("--split", default="test", help="dataset split: train, valid, test or all (default: test)")
    parser.add_argument(
        "--training-smiles",
        default=None,
        metavar="qm9|FILE",
        help="reference SMILES for novelty: 'qm9' (QM9 training split, cached) or a file, one per line",
    )
    parser.add_argument(
        "--bonds",
        choices=("edm", "rdkit", "file"),
        default="edm",
        help="edm: EDM's protocol, bonds perceived from distances (the file's bonds ignored); rdkit: "
        "RDKit's perception; file: the bonds and formal charges written in the SDF (the protocol "
        "of MiDi / EQGAT-diff / SemlaFlow, for models that generate bonds) (default: edm)",
    )
    parser.add_argument(
        "--skip-bad-records", action="store_true", help="skip and count bad SDF records instead of stopping"
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar (shown on stderr when it is a terminal)"
    )
    parser.add_argument(
        "--per-molecule",
        default=None,
        metavar="CSV",
        help="also write one row per molecule to this CSV file (valid, stable, connected, SMILES, QED, SA "
        "score, logP, molecular weight, rings, PAINS and Brenk alerts, ...; under the --bonds protocol)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing --per-molecule file (default: refuse)"
    )
    physics = parser.add_argument_group("physics checks of the geometries (moldiff.molecules.geometry)")
    physics.add_argument(
        "--geometry",
        action="store_true",
        help="relax every connected valid molecule with MMFF94 and (tblite installed) GFN2-xTB: energy drop "
        "(kcal/mol) and heavy-atom RMSD (A), beside the same for real QM9 test molecules",
    )
    physics.add_argument(
        "--geometry-reference",
        type=int,
        default=100,
        metavar="N",
        help="QM9 test molecules checked beside the samples (a fixed subset; 0: none) (default: 100)",
    )
    physics.add_argument(
        "--xtb-max",
        type=int,
        default=20,
        metavar="N",
        help="GFN2-xTB on the first N checked molecules at most, of the samples and of the reference "
        "(one thread; 0: no xTB) (default: 20)",
    )
    physics.add_argument(
        "--posebusters",
        action="store_true",
        help="pass rates of PoseBusters' intramolecular checks (bond lengths, angles, planarity, internal "
        "clashes, energy) of the connected valid molecules (pip install 'moldiff[posebusters]')",
    )
    physics.add_argument(
        "--posebusters-max",
        type=int,
        default=100,
        metavar="N",
        help="PoseBusters on the first N checked molecules at most, of the samples and of the reference "
        "(about a second each for QM9 molecules, several for distorted ones) (default: 100)",
    )


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from moldiff.molecules.evaluate import evaluate_dataset, evaluate_file, format_report

    if (args.path is None) == (args.dataset is None):
        raise InputError("give either a samples file or folder, or --dataset qm9")
    if args.geometry or args.posebusters:  # stop before any work on what would stop it later
        from moldiff._optional import require

        if args.path is None:
            raise InputError("--geometry and --posebusters check a samples file or folder, not --dataset")
        for option, value in (
            ("--geometry-reference", args.geometry_reference),
            ("--xtb-max", args.xtb_max),
            ("--posebusters-max", args.posebusters_max),
        ):
            if value < 0:
                raise InputError(f"{option} must be at least 0, got {value}")
        if args.posebusters:
            require("posebusters", extra="posebusters", purpose="moldiff evaluate --posebusters")
    if args.per_molecule is not None:  # a destination that cannot be written stops before the work
        from moldiff.files import check_output_file

        if args.path is None:
            raise InputError("--per-molecule describes a samples file or folder, not --dataset")
        check_output_file(args.per_molecule, overwrite=args.overwrite, option="--per-molecule")
    progress = not args.no_progress and sys.stderr.isatty()
    try:
        if args.path is not None:
            result = evaluate_file(
                args.path,
                training_smiles=args.training_smiles,
                bonds=args.bonds,
                on_error="skip" if args.skip_bad_records else "raise",
                progress=progress,
            )
        else:
            result = evaluate_dataset(
                args.dataset, args.split, training_smiles=args.training_smiles, bonds=args.bonds, progress=progress
            )
    except (ValueError, FileNotFoundError, ModuleNotFoundError) as err:  # bad record, missing file, unknown dataset
        hint = " (use --skip-bad-records to skip it)" if "record" in str(err) else ""
        print(f"moldiff evaluate: {err}{hint}", file=sys.stderr)
        return 2
    report = format_report(result)
    if args.geometry or args.posebusters:
        from moldiff.molecules.geometry import evaluate_geometry, format_geometry_report

        result["geometry"] = evaluate_geometry(
            args.path,
            reference=args.geometry_reference,
            mmff=args.geometry,
            xtb=args.geometry,
            max_xtb=args.xtb_max,
            posebusters=args.posebusters,
            max_posebusters=args.posebusters_max,
            progress=progress,
        )
        report += "\n\n" + format_geometry_report(result["geometry"])
    if args.per_molecule is not None:
        from moldiff.molecules.properties import file_properties, sa_unavailable_reason, write_properties_csv

        rows = file_properties(
            args.path, args.bonds, on_error="skip" if args.skip_bad_records else "raise", progress=progress
        )
        write_properties_csv(rows, args.per_molecule)
        if sa_unavailable_reason():
            print(f"moldiff evaluate: note: SA score missing ({sa_unavailable_reason()})", file=sys.stderr)
        print(f"moldiff evaluate: wrote {len(rows)} rows to {args.per_molecule}", file=sys.stderr)
    print(json.dumps(result, indent=2) if args.json else report)
    return 0


# ------------------------------------------------------------------------------------------------
# moldiff draw, moldiff report
# ------------------------------------------------------------------------------------------------


def _molecule_file_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments ``draw`` and ``report`` share with ``evaluate``."""
    parser.add_argument("path", help="molecules: a file as moldiff sample writes it (.sdf, .sdf.gz, .xyz) or a folder")
    parser.add_argument(
        "--bonds",
        choices=("edm", "rdkit", "file"),
        default="edm",
        help="the protocol, as moldiff evaluate --bonds: edm or rdkit perceive the bonds from distances, file "
        "takes the SDF's own bonds and charges (default: edm)",
    )
    parser.add_argument(
        "--legend",
        default=None,
        metavar="NAMES",
        help="legends of the drawings: comma-separated property names, e.g. qed,sa (default: the SMILES)",
    )
    parser.add_argument(
        "--skip-bad-records", action="store_true", help="skip and count bad SDF records instead of stopping"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file (default: refuse)")


def _draw_arguments(parser: argparse.ArgumentParser) -> None:
    _molecule_file_arguments(parser)
    parser.add_argument("--out", default="molecules.png", help="a .png or .svg file (default: molecules.png)")
    parser.add_argument("--per-row", type=int, default=5, help="drawings per row (default: 5)")
    parser.add_argument("--max", type=int, default=50, dest="max", help="draw the first N molecules (default: 50)")
    parser.add_argument("--size", type=int, default=250, help="pixels of each drawing (default: 250)")


def _draw(args: argparse.Namespace) -> int:
    from moldiff.files import check_output_file
    from moldiff.molecules.draw import DRAW_FORMATS, draw_file, grid_shape

    for option, value, least in (("--per-row", args.per_row, 1), ("--max", args.max, 1), ("--size", args.size, 16)):
        if value < least:
            raise InputError(f"{option} must be at least {least}, got {value}")
    if not args.out.lower().endswith(tuple(DRAW_FORMATS)):
        raise InputError(f"--out {args.out}: a drawing is {' or '.join(DRAW_FORMATS)}")
    check_output_file(args.out, overwrite=args.overwrite)
    count = draw_file(
        args.path,
        args.out,
        bonds=args.bonds,
        legend=args.legend,
        per_row=args.per_row,
        max_molecules=args.max,
        size=args.size,
        on_error="skip" if args.skip_bad_records else "raise",
    )
    columns, rows = grid_shape(count, args.per_row)
    print(f"drew {count} molecules to {args.out} ({columns} x {rows} drawings of {args.size} px)", file=sys.stderr)
    return 0


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    _molecule_file_arguments(parser)
    parser.add_argument("--out", default="report.html", help="the HTML file (default: report.html)")
    parser.add_argument(
        "--reference",
        default="qm9",
        metavar="qm9|SDF",
        help="real molecules to compare with: qm9 (a fixed random subset of QM9's training split, cached) or "
        "an SDF file (default: qm9)",
    )
    parser.add_argument("--reference-size", type=int, default=2000, help="reference molecules at most (default: 2000)")
    parser.add_argument(
        "--training-smiles",
        default=None,
        metavar="qm9|FILE",
        help="reference SMILES for novelty, as moldiff evaluate --training-smiles",
    )
    parser.add_argument("--max-draw", type=int, default=30, help="molecules drawn (default: 30)")


def _report(args: argparse.Namespace) -> int:
    from moldiff._optional import require
    from moldiff.files import check_output_file

    require("matplotlib", extra="report", purpose="moldiff report")  # before any work
    for option, value in (("--reference-size", args.reference_size), ("--max-draw", args.max_draw)):
        if value < 1:
            raise InputError(f"{option} must be at least 1, got {value}")
    check_output_file(args.out, overwrite=args.overwrite)
    from moldiff.molecules.report import write_report

    write_report(
        args.path,
        args.out,
        bonds=args.bonds,
        reference=args.reference,
        reference_size=args.reference_size,
        training_smiles=args.training_smiles,
        legend=args.legend,
        max_draw=args.max_draw,
        on_error="skip" if args.skip_bad_records else "raise",
    )
    print(f"wrote the report of {args.path} to {args.out}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------------
# moldiff evaluate-backbones
# ------------------------------------------------------------------------------------------------


def _evaluate_backbones_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="folder of generated backbones (PDB or mmCIF files)")
    parser.add_argument(
        "--reference",
        default=None,
        help="real domains: CATH tar archive or folder; its fixed held-out split is used "
        "(default: ../shared/data/proteins/cath_domains_1000.tar.gz)",
    )
    parser.add_argument("--max-reference", type=int, default=200, help="held-out domains used at most (default: 200)")
    parser.add_argument(
        "--skip-bad-files", action="store_true", help="skip and count unreadable files instead of stopping"
    )
    parser.add_argument("--no-tm-score", action="store_true", help="skip the pairwise TM-score diversity")
    parser.add_argument(
        "--novelty",
        type=int,
        default=0,
        metavar="N",
        help="novelty: each sample's highest TM-score to the first N training domains of the reference "
        "(-1: all; needs tmtools; default: 0, not measured)",
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")


def _evaluate_backbones(args: argparse.Namespace) -> int:
    import json

    from moldiff.proteins.evaluate import evaluate_folder, format_report

    try:
        result = evaluate_folder(
            args.path,
            args.reference,
            max_reference=args.max_reference,
            on_error="skip" if args.skip_bad_files else "raise",
            tm_score=not args.no_tm_score,
            novelty=args.novelty,
        )
    except (ValueError, FileNotFoundError, ImportError) as err:  # bad structure file, empty folder, missing reference
        hint = " (use --skip-bad-files to skip it)" if "residue" in str(err) or "chain" in str(err) else ""
        print(f"moldiff evaluate-backbones: {err}{hint}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


COMMANDS: list[Command] = [
    Command(
        "train",
        "train a model from a YAML config (use torchrun for several GPUs or machines)",
        _train_arguments,
        _train,
    ),
    Command(
        "sample",
        "sample molecules (SDF/XYZ file; torchrun for several GPUs), images (PNG grid) or protein "
        "backbones (folder of PDB files) from a model",
        _sample_arguments,
        _sample,
    ),
    Command(
        "evaluate",
        "EDM's metrics (stability, validity, uniqueness, novelty) of sampled molecules (SDF or XYZ) or a dataset split",
        _evaluate_arguments,
        _evaluate,
    ),
    Command(
        "draw",
        "2D depictions of molecules (SDF or XYZ) as a PNG or SVG grid, with SMILES or property legends",
        _draw_arguments,
        _draw,
    ),
    Command(
        "report",
        "one self-contained HTML report of sampled molecules: metrics, depictions, distributions against QM9",
        _report_arguments,
        _report,
    ),
    Command(
        "evaluate-backbones",
        "geometry, compactness, secondary structure and diversity of generated protein "
        "backbones against held-out CATH domains",
        _evaluate_backbones_arguments,
        _evaluate_backbones,
    ),
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="moldiff", description="Diffusion models of molecules, proteins and images.")
    parser.add_argument("--version", action="version", version=f"moldiff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``moldiff`` console script.

    moldiff's own errors (:class:`moldiff.errors.MoldiffError`: configuration mistakes, bad input
    files and records, unknown names, values out of range, samples that diverged) and the errors of
    the operating system (a missing file, a full disk, a folder that cannot be written, a fresh run
    aimed at a folder holding another run's checkpoints) print one line naming the problem and exit
    with status 2 instead of a traceback. Warnings print as one line each.
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
    try:
        with warnings.catch_warnings():  # restores the warning settings afterwards
            warnings.showwarning = _show_warning
            warnings.simplefilter("always", UserWarning)  # every skipped file or record is told, each time
            return int(args._run(args) or 0)
    except ConfigError as err:
        print(f"moldiff {args.command}: config error: {_line(err)}", file=sys.stderr)
        return 2
    except (MoldiffError, OSError) as err:
        print(f"moldiff {args.command}: {_line(err)}", file=sys.stderr)
        return 2


def _line(err: BaseException) -> str:
    """An error's message on one line."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
    if isinstance(err, OSError) and err.filename is not None and str(err.filename) not in text:
        text += f": {err.filename}"
    return text


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of the command: one line, no source line."""
    kind = "note" if category.__name__ == "ConfigNote" else "warning"
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    print(f"moldiff: {kind}: {text}", file=file or sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
