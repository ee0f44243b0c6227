"""``moldiff sample`` for molecules, backbones and images: bad numbers, NaN / inf, bad contigs, unknown
names, outputs that must be checked before the work and written whole, and text that must not break
file headers."""

from __future__ import annotations

import contextlib
import errno
import shutil
from pathlib import Path
from unittest import mock

import numpy as np

from . import fixtures as fx
from .harness import CORRECT, SILENT, Guard, Outcome, Proxy, Verdict, case, cli, files_in, named, succeeded


@contextlib.contextmanager
def no_sampling(modality: str):
    """Fail the case if the modality's sampler runs (an argument or output check must come first)."""
    targets = {
        "molecules": "moldiff.molecules.generator.MoleculeGenerator.sample_chunks",
        "backbones": "moldiff.proteins.generator.BackboneGenerator.sample",
        "images": "moldiff.images.generator.ImageGenerator.sample",
    }

    def refuse(*args, **kwargs):
        raise Verdict(Outcome(SILENT, "sampling started before the bad argument or output was refused"))

    with mock.patch(targets[modality], refuse):
        yield


def _read_back(path: Path) -> list:
    from moldiff.molecules.rdkit_io import read_sdf_records

    return read_sdf_records(path)


# ------------------------------------------------------------------------------------------------
# Bad numbers on the command line
# ------------------------------------------------------------------------------------------------


def _bad_number(option: str, value: str, base: tuple, modality: str, tmp: Path, out: str) -> Outcome:
    with no_sampling(modality):
        run = cli("sample", *base, option, value, "--out", tmp / out)
    return named(run, option) if not (tmp / out).exists() else Outcome(SILENT, f"{out} was written")


@case("bad CLI numbers")
def case_molecules_negative_batch_size(tmp):
    return _bad_number("--batch-size", "-1", fx.FAST_EDM, "molecules", tmp, "s.sdf")


@case("bad CLI numbers")
def case_molecules_zero_batch_size(tmp):
    return _bad_number("--batch-size", "0", fx.FAST_EDM, "molecules", tmp, "s.sdf")


@case("bad CLI numbers")
def case_molecules_zero_steps(tmp):
    return _bad_number("--steps", "0", fx.FAST_EDM, "molecules", tmp, "s.sdf")


@case("bad CLI numbers")
def case_molecules_negative_steps(tmp):
    return _bad_number("--steps", "-5", fx.FAST_EDM, "molecules", tmp, "s.sdf")


@case("bad CLI numbers")
def case_molecules_zero_num(tmp):
    return _bad_number("--num", "0", fx.FAST_EDM, "molecules", tmp, "s.sdf")


@case("bad CLI numbers")
def case_molecules_one_atom(tmp):
    return _bad_number("--num-atoms", "1", fx.FAST_EDM, "molecules", tmp, "s.sdf")


@case("bad CLI numbers", CORRECT)
def case_molecules_negative_seed_is_a_seed_like_any(tmp):
    out = tmp / "s.sdf"
    run = cli("sample", *fx.FAST_EDM, "--seed", "-3", "--out", out)
    return succeeded(run, lambda: None if len(_read_back(out)) == 2 else "expected 2 molecules")


@case("bad CLI numbers")
def case_molecules_steps_not_a_number(tmp):
    run = cli("sample", *fx.FAST_EDM, "--steps", "ten", "--out", tmp / "s.sdf")
    return named(run, "--steps")


@case("bad CLI numbers")
def case_backbones_zero_length(tmp):
    return _bad_number("--length", "0", fx.FAST_BACKBONE, "backbones", tmp, "designs")


@case("bad CLI numbers")
def case_backbones_negative_temperature(tmp):
    return _bad_number("--temperature", "-1", fx.FAST_BACKBONE, "backbones", tmp, "designs")


@case("bad CLI numbers")
def case_backbones_zero_batch_size(tmp):
    return _bad_number("--batch-size", "0", fx.FAST_BACKBONE, "backbones", tmp, "designs")


@case("bad CLI numbers")
def case_images_zero_nrow(tmp):
    return _bad_number("--nrow", "0", fx.FAST_IMAGE, "images", tmp, "g.png")


@case("bad CLI numbers")
def case_images_negative_batch_size(tmp):
    return _bad_number("--batch-size", "-2", fx.FAST_IMAGE, "images", tmp, "g.png")


@case("bad CLI numbers", CORRECT)
def case_molecules_smallest_valid_numbers(tmp):
    out = tmp / "two.sdf"
    run = cli("sample", *fx.FAST_EDM, "--num-atoms", "2", "--batch-size", "1", "--out", out)
    return succeeded(run, lambda: None if len(_read_back(out)) == 2 else "expected 2 molecules of 2 atoms")


@case("bad CLI numbers")
def case_molecules_negative_eta(tmp):
    return _bad_number("--eta", "-1", fx.FAST_FLOW, "molecules", tmp, "s.sdf")


@case("bad CLI numbers")
def case_molecules_zero_rho(tmp):
    return _bad_number("--rho", "0", fx.FAST_FLOW, "molecules", tmp, "s.sdf")


@case("NaN/inf")
def case_molecules_infinite_eta(tmp):
    return _bad_number("--eta", "inf", fx.FAST_FLOW, "molecules", tmp, "s.sdf")


@case("bad CLI numbers")
def case_molecules_eta_for_an_edm_style_model(tmp):
    return _bad_number("--eta", "2", fx.FAST_EDM, "molecules", tmp, "s.sdf")


# ------------------------------------------------------------------------------------------------
# NaN and infinity
# ------------------------------------------------------------------------------------------------


@case("NaN/inf")
def case_condition_nan(tmp):
    return _bad_number("--condition", "alpha=nan", fx.FAST_ALPHA, "molecules", tmp, "s.sdf")


@case("NaN/inf")
def case_condition_nan_forced(tmp):
    with no_sampling("molecules"):
        run = cli("sample", *fx.FAST_ALPHA, "--condition", "alpha=nan", "--force-condition", "--out", tmp / "s.sdf")
    return named(run, "alpha=nan", "finite")


@case("NaN/inf")
def case_condition_inf_forced(tmp):
    with no_sampling("molecules"):
        run = cli("sample", *fx.FAST_ALPHA, "--condition", "alpha=-inf", "--force-condition", "--out", tmp / "s.sdf")
    return named(run, "alpha=-inf", "finite")


@case("NaN/inf")
def case_guidance_scale_inf(tmp):
    return _bad_number("--guidance-scale", "inf", fx.FAST_ALPHA, "molecules", tmp, "s.sdf")


@case("NaN/inf")
def case_guidance_scale_nan(tmp):
    return _bad_number("--guidance-scale", "nan", fx.FAST_ALPHA, "molecules", tmp, "s.sdf")


@case("NaN/inf")
def case_guidance_scale_nan_images(tmp):
    return _bad_number("--guidance-scale", "nan", fx.FAST_IMAGE, "images", tmp, "g.png")


@case("NaN/inf")
def case_temperature_nan_backbones(tmp):
    return _bad_number("--temperature", "nan", fx.FAST_BACKBONE, "backbones", tmp, "designs")


@case("huge values")
def case_guidance_scale_huge_diverges_without_writing(tmp):
    out = tmp / "s.sdf"
    run = cli("sample", *fx.FAST_ALPHA, "--guidance-scale", "1e30", "--out", out)
    result = named(run, "diverged", str(out))
    return result if not out.exists() else Outcome(SILENT, "a diverged sample was written")


@case("huge values")
def case_forced_extreme_target_diverges_without_writing(tmp):
    out = tmp / "s.sdf"
    run = cli("sample", *fx.FAST_ALPHA, "--condition", "alpha=1e30", "--force-condition", "--out", out)
    result = named(run, "diverged")
    return result if not out.exists() else Outcome(SILENT, "a diverged sample was written")


@case("huge values", CORRECT)
def case_skip_diverged_writes_only_finite_molecules(tmp):
    """One of two molecules turns non-finite (forced here): --skip-diverged writes the other, and says so."""
    from moldiff.molecules import generator as gen

    real = gen.MoleculeGenerator.sample_chunk

    def one_bad(self, sizes, seed, start, **kwargs):
        chunk = real(self, sizes, seed, start, **kwargs)
        if start == 0:  # molecule #0 turns non-finite
            z, pos = chunk[0]
            chunk[0] = (z, np.full_like(pos, np.nan))
        return chunk

    out = tmp / "s.sdf"
    with mock.patch.object(gen.MoleculeGenerator, "sample_chunk", one_bad):
        refused = cli("sample", *fx.FAST_EDM, "--batch-size", "1", "--out", out)
        kept = cli("sample", *fx.FAST_EDM, "--batch-size", "1", "--out", out, "--skip-diverged")
    if named(refused, "1 of 2", "#0").kind != "named error":
        return named(refused, "1 of 2", "#0")

    def check():
        records = _read_back(out)
        if len(records) != 1 or not np.isfinite(records[0].positions).all() or "#1" not in records[0].title:
            return f"expected molecule #1 alone, got {[r.title for r in records]}"
        if "diverged" not in kept.err:
            return "the molecule left out is not reported"

    return succeeded(kept, check)


@case("huge values", CORRECT)
def case_python_api_refuses_diverged_molecules(tmp):
    import moldiff
    from moldiff.errors import SamplingError

    gen = moldiff.load_pretrained("qm9_alpha_edm")
    try:
        gen.sample(2, sampler="dpmpp_2m", steps=2, guidance_scale=1e30)
    except SamplingError as err:
        return Outcome(CORRECT, str(err))
    return Outcome(SILENT, "sample() returned molecules with non-finite coordinates")


# ------------------------------------------------------------------------------------------------
# Unknown names, models and checkpoints given to sample
# ------------------------------------------------------------------------------------------------


@case("unknown names")
def case_unknown_sampler_molecules(tmp):
    with no_sampling("molecules"):
        return named(cli("sample", *fx.FAST_EDM, "--sampler", "eulr", "--out", tmp / "s.sdf"), "eulr")


@case("unknown names")
def case_unknown_sampler_backbones(tmp):
    return named(cli("sample", *fx.FAST_BACKBONE, "--sampler", "eulr", "--out", tmp / "d"), "eulr")


@case("unknown names")
def case_unknown_sampler_images(tmp):
    return named(cli("sample", *fx.FAST_IMAGE, "--sampler", "eulr", "--out", tmp / "g.png"), "eulr")


@case("unknown names")
def case_unknown_model_name(tmp):
    return named(cli("sample", "--model", "qm10", "--out", tmp / "s.sdf"), "qm10")


@case("unknown names")
def case_unknown_image_label(tmp):
    return named(cli("sample", *fx.FAST_IMAGE, "--labels", "Spaceship", "--out", tmp / "g.png"), "Spaceship")


@case("unknown names")
def case_unknown_condition_property(tmp):
    with no_sampling("molecules"):
        return named(cli("sample", *fx.FAST_ALPHA, "--condition", "mu=1.0", "--out", tmp / "s.sdf"), "unknown ['mu']")


@case("unknown names")
def case_condition_on_unconditional_model(tmp):
    with no_sampling("molecules"):
        return named(cli("sample", *fx.FAST_EDM, "--condition", "alpha=80", "--out", tmp / "s.sdf"), "unconditional")


@case("unknown names")
def case_sample_a_predictor(tmp):
    return named(cli("sample", "--model", "qm9_alpha_predictor", "--out", tmp / "s.sdf"), "generates nothing")


# ------------------------------------------------------------------------------------------------
# Contigs and motifs
# ------------------------------------------------------------------------------------------------


def _scaffold(tmp: Path, contig: str, motif: object = None):
    """``moldiff sample`` of a motif scaffold (no --length: the contig sets it)."""
    base = [a for a in fx.FAST_BACKBONE if a not in ("--length", "12")]
    return cli("sample", *base, "--contig", contig, "--motif-pdb", motif or fx.motif_pdb(), "--out", tmp / "designs")


@case("bad contigs")
def case_contig_empty(tmp):
    return named(_scaffold(tmp, ""), "empty contig")


@case("bad contigs")
def case_contig_syntax(tmp):
    return named(_scaffold(tmp, "5/A3-x/5"), "segment 2")


@case("bad contigs")
def case_contig_reversed_range(tmp):
    return named(_scaffold(tmp, "5/A9-3/5"), "reversed")


@case("bad contigs")
def case_contig_same_motif_residues_twice(tmp):
    return named(_scaffold(tmp, "4/A3-8/4/A3-8/4"), "A3-8", "already")


@case("bad contigs")
def case_contig_overlapping_motif_residues(tmp):
    return named(_scaffold(tmp, "4/A3-8/2/A6-10/4"), "A6-8", "already")


@case("bad contigs")
def case_contig_residue_not_in_motif(tmp):
    return named(_scaffold(tmp, "4/A15-30/4"), "A21")


@case("bad contigs")
def case_contig_chain_not_in_motif(tmp):
    return named(_scaffold(tmp, "4/B3-8/4"), "chain 'B'")


@case("bad contigs")
def case_contig_without_motif_file(tmp):
    return named(cli("sample", *fx.FAST_BACKBONE, "--contig", "4/A3-8/4", "--out", tmp / "d"), "--motif-pdb")


@case("bad contigs")
def case_motif_file_missing(tmp):
    return named(_scaffold(tmp, "4/A3-8/4", tmp / "no_motif.pdb"), "no_motif.pdb")


@case("binary PDB")
def case_motif_file_binary(tmp):
    motif = tmp / "motif.pdb"
    motif.write_bytes(b"\x00" * 64)
    return named(_scaffold(tmp, "4/A3-8/4", motif), "motif.pdb", "binary")


@case("NaN/inf")
def case_motif_file_nan(tmp):
    motif = tmp / "motif.pdb"
    lines = fx.motif_pdb().read_text().splitlines()
    k = [i for i, line in enumerate(lines) if line.startswith("ATOM")][4]
    lines[k] = lines[k][:30] + f"{'nan':>8}" + lines[k][38:]
    motif.write_text("\n".join(lines) + "\n")
    return named(_scaffold(tmp, "4/A3-8/4", motif), "motif.pdb", "non-finite")


@case("bad contigs", CORRECT)
def case_contig_scaffolds_the_motif(tmp):
    import json

    run = _scaffold(tmp, "4/A3-8/4")

    def check():
        meta = json.loads((tmp / "designs" / "design_0000.json").read_text())
        # cath_ca holds the motif's angles and builds 3.80 A bonds: exact up to the motif's own spacing
        if meta["motif_rmsd"] > 0.1 or meta["length"] != 14:
            return f"motif not held: {meta}"

    return succeeded(run, check)


# ------------------------------------------------------------------------------------------------
# Outputs: checked before the work, written whole, never replaced unasked
# ------------------------------------------------------------------------------------------------


@case("outputs")
def case_existing_sdf_not_replaced(tmp):
    out = tmp / "old.sdf"
    out.write_text(fx.good_sdf_text())
    guard = Guard.over(out)
    with no_sampling("molecules"):
        run = cli("sample", *fx.FAST_EDM, "--out", out)
    return guard.judge(named(run, out, "--overwrite"))


@case("outputs", CORRECT)
def case_existing_sdf_replaced_with_overwrite(tmp):
    out = tmp / "old.sdf"
    out.write_text(fx.good_sdf_text())
    run = cli("sample", *fx.FAST_EDM, "--out", out, "--overwrite")
    return succeeded(
        run, lambda: None if len(_read_back(out)) == 2 and "replaced" in run.err else "not replaced, or not said"
    )


@case("outputs")
def case_out_is_a_folder(tmp):
    with no_sampling("molecules"):
        return named(cli("sample", *fx.FAST_EDM, "--out", tmp), "is a folder")


@case("outputs")
def case_out_below_a_file(tmp):
    blocker = tmp / "file.txt"
    blocker.write_text("x")
    guard = Guard.over(blocker)
    with no_sampling("molecules"):
        run = cli("sample", *fx.FAST_EDM, "--out", blocker / "s.sdf")
    return guard.judge(named(run, "file.txt", "not a folder"))


@case("outputs")
def case_out_unwritable_folder(tmp):
    """A folder where no file can be created (simulated: root ignores permission bits)."""

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    import moldiff.files

    with no_sampling("molecules"), mock.patch.object(moldiff.files.tempfile, "mkstemp", refuse):
        run = cli("sample", *fx.FAST_EDM, "--out", tmp / "ro" / "s.sdf")
    return named(run, "cannot write", "Permission denied")


@case("outputs")
def case_image_out_is_a_folder(tmp):
    (tmp / "dir.png").mkdir()
    with no_sampling("images"):
        return named(cli("sample", *fx.FAST_IMAGE, "--out", tmp / "dir.png"), "dir.png", "folder")


@case("outputs")
def case_existing_png_not_replaced(tmp):
    out = tmp / "grid.png"
    out.write_bytes(b"\x89PNG old")
    guard = Guard.over(out)
    with no_sampling("images"):
        run = cli("sample", *fx.FAST_IMAGE, "--out", out)
    return guard.judge(named(run, out, "--overwrite"))


@case("outputs")
def case_backbone_folder_with_earlier_designs(tmp):
    folder = fx.backbone_folder(tmp)
    guard = Guard.over(folder)
    with no_sampling("backbones"):
        run = cli("sample", *fx.FAST_BACKBONE, "--out", folder)
    return guard.judge(named(run, folder, "--overwrite"))


@case("outputs", CORRECT)
def case_backbone_overwrite_leaves_no_mix(tmp):
    folder = fx.backbone_folder(tmp, 3)
    (folder / "design_0002.json").write_text("{}")
    run = cli("sample", *fx.FAST_BACKBONE, "--out", folder, "--overwrite")
    want = ["design_0000.json", "design_0000.pdb", "design_0001.json", "design_0001.pdb"]
    return succeeded(run, lambda: None if files_in(folder) == want else f"the folder mixes runs: {files_in(folder)}")


def _full_disk_on_fsync():
    """Every atomic write fails as on a full disk (the data is written, then flushing it fails)."""
    import moldiff.files

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    return mock.patch.object(moldiff.files, "os", Proxy(moldiff.files.os, fsync=fsync))


@case("full disk")
def case_full_disk_keeps_existing_sdf(tmp):
    out = tmp / "old.sdf"
    out.write_text(fx.good_sdf_text())
    guard = Guard.over(out)
    with _full_disk_on_fsync():
        run = cli("sample", *fx.FAST_EDM, "--out", out, "--overwrite")
    leftovers = [n for n in files_in(tmp) if n != "old.sdf"]
    result = guard.judge(named(run, "No space left", str(out)))
    return result if not leftovers else Outcome(SILENT, f"temporary files left: {leftovers}")


@case("full disk")
def case_full_disk_mid_write_keeps_existing_sdf_gz(tmp):
    """The disk fills half-way through the molecules: the earlier .sdf.gz stays whole."""
    import gzip
    import io

    import moldiff.molecules.rdkit_io as io_module

    out = tmp / "old.sdf.gz"
    out.write_bytes(fx.gzip_bytes(fx.good_sdf_text()))
    guard = Guard.over(out)

    class Filling(io.FileIO):
        """A file on a disk that is full after 200 bytes."""

        def write(self, data):
            if self.tell() + len(data) > 200:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(data)

    def open_text(path, mode="r", compress=None):
        raw = Filling(path, "w")
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw, mode="wb") if compress else raw, encoding="utf-8")

    with mock.patch.object(io_module, "open_text", open_text):
        run = cli("sample", *fx.FAST_EDM, "--num", "20", "--out", out, "--overwrite")
    return guard.judge(named(run, "No space left", str(out)))


@case("full disk")
def case_full_disk_keeps_earlier_designs(tmp):
    folder = fx.backbone_folder(tmp)
    guard = Guard.over(folder)
    with _full_disk_on_fsync():
        run = cli("sample", *fx.FAST_BACKBONE, "--out", folder, "--overwrite")
    return guard.judge(named(run, "No space left"))


@case("full disk")
def case_full_disk_keeps_existing_png(tmp):
    out = tmp / "grid.png"
    out.write_bytes(b"\x89PNG earlier grid")
    guard = Guard.over(out)
    with _full_disk_on_fsync():
        run = cli("sample", *fx.FAST_IMAGE, "--out", out, "--overwrite")
    return guard.judge(named(run, "No space left", str(out)))


# ------------------------------------------------------------------------------------------------
# Text that goes into file headers
# ------------------------------------------------------------------------------------------------

_INJECTED = "evil\nATOM      1  CA  GLY A   1       0.000   0.000   0.000  1.00  0.00           C\n$$$$\n"


def _model_named(tmp: Path, shipped: str) -> Path:
    from moldiff.pretrained import pretrained_path

    folder = tmp / _INJECTED  # a folder name holding newlines, an ATOM record and an SDF separator
    folder.mkdir(parents=True)
    return Path(shutil.copy(pretrained_path(shipped), folder / "model.pt"))


@case("header injection", CORRECT)
def case_model_path_with_newline_in_sdf_title(tmp):
    out = tmp / "s.sdf"
    run = cli("sample", *fx.FAST_EDM[2:], "--model", _model_named(tmp, "qm9_edm"), "--out", out)

    def check():
        records = _read_back(out)
        if len(records) != 2 or any("\n" in r.title for r in records):
            return f"the SDF broke: {len(records)} records"

    return succeeded(run, check)


@case("header injection", CORRECT)
def case_model_path_with_newline_in_pdb_remark(tmp):
    out = tmp / "designs"
    run = cli("sample", *fx.FAST_BACKBONE[2:], "--model", _model_named(tmp, "cath_ca"), "--out", out)

    def check():
        text = (out / "design_0000.pdb").read_text()
        atoms = [line for line in text.splitlines() if line.startswith("ATOM")]
        if len(atoms) != 12 or any(
            not line.startswith(("HEADER", "REMARK", "CRYST1", "ATOM", "TER", "END")) for line in text.splitlines()
        ):
            return f"fake records in the PDB file: {len(atoms)} ATOM lines"

    return succeeded(run, check)


# ------------------------------------------------------------------------------------------------
# Samples a format cannot hold, devices that are not there
# ------------------------------------------------------------------------------------------------


@case("huge values")
def case_unconverged_backbones_are_not_written(tmp):
    """Two steps of the coordinate model's own sampler leave coordinates of thousands of A: such a chain
    does not fit the PDB columns (a coordinate below -999.999 A would run into the next one), so nothing
    is written and the message says why. (The angle model, cath_ca, cannot diverge: its chains are
    built with 3.80 A bonds.)"""
    out = tmp / "designs"
    run = cli("sample", "--model", "cath_ca_egnn", "--steps", "2", "--num", "2", "--length", "20", "--out", out)
    result = named(run, "did not converge", "PDB columns")
    return result if not files_in(out, "*.pdb") else Outcome(SILENT, f"written: {files_in(out)}")


@case("huge values")
def case_pdb_writer_refuses_coordinates_beyond_its_columns(tmp):
    from moldiff.proteins.pdb_io import write_backbone_pdb

    from .harness import call

    path = tmp / "x.pdb"
    result = named(call(write_backbone_pdb, path, fx.helix(5) - 1500.0), "x.pdb", "PDB columns")
    return result if not path.exists() else Outcome(SILENT, "a PDB file with overflowing columns was written")


@case("huge values", CORRECT)
def case_rdkit_bonds_that_cannot_be_assigned_are_flagged(tmp):
    out = tmp / "s.sdf"
    run = cli("sample", *fx.FAST_EDM, "--num", "4", "--bonds", "rdkit", "--out", out)

    def check():
        from rdkit import Chem

        mols = [m for m in Chem.SDMolSupplier(str(out), sanitize=False, removeHs=False)]
        flagged = [m for m in mols if m.HasProp("moldiff_bonds")]
        if len(mols) != 4:
            return f"expected 4 molecules, got {len(mols)}"
        if flagged and "could assign no bonds" not in run.err:
            return "molecules without bonds are not reported"

    return succeeded(run, check)


@case("unknown names")
def case_cuda_without_a_gpu(tmp):
    import torch

    with mock.patch.object(torch.cuda, "is_available", lambda: False), no_sampling("molecules"):
        run = cli("sample", *fx.FAST_EDM, "--device", "cuda", "--out", tmp / "s.sdf")
    return named(run, "cuda", "is_available")


@case("unknown names")
def case_unknown_device(tmp):
    with no_sampling("molecules"):
        return named(cli("sample", *fx.FAST_EDM, "--device", "tpu", "--out", tmp / "s.sdf"), "tpu")


@case("bad CLI numbers")
def case_python_api_zero_steps(tmp):
    import moldiff

    from .harness import call

    return named(call(moldiff.load_pretrained("qm9_edm").sample, 2, sampler="dpmpp_2m", steps=0), "steps", "at least 1")


@case("bad CLI numbers")
def case_python_api_negative_batch_size(tmp):
    import moldiff

    from .harness import call

    gen = moldiff.load_pretrained("qm9_edm")
    return named(call(gen.sample, 2, sampler="dpmpp_2m", steps=2, batch_size=-1), "batch_size")
