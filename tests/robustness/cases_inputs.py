"""Bad molecule and structure files: malformed, binary, gzip, NaN / inf, empty, single atom, unknown
elements, huge values; as ``moldiff evaluate``, ``evaluate-backbones`` and motif files read them."""

from __future__ import annotations

import json
from pathlib import Path

from . import fixtures as fx
from .harness import CORRECT, Guard, case, cli, named, succeeded

# ------------------------------------------------------------------------------------------------
# SDF and XYZ (moldiff evaluate)
# ------------------------------------------------------------------------------------------------


def _sdf(tmp: Path, records: list[str], name: str = "bad.sdf") -> Path:
    path = tmp / name
    path.write_text("".join(records))
    return path


def _evaluate_json(run) -> dict:
    return json.loads(run.out)


@case("malformed SDF")
def case_sdf_bad_counts_line(tmp):
    records = fx.sdf_records()
    lines = records[1].splitlines()
    lines[3] = "abc" + lines[3][3:]
    path = _sdf(tmp, [records[0], "\n".join(lines) + "\n", records[2]])
    guard = Guard.over(path)
    return guard.judge(named(cli("evaluate", path, "--no-progress"), path, "record 2", "counts line"))


@case("malformed SDF")
def case_sdf_truncated_record(tmp):
    records = fx.sdf_records()
    cut = "\n".join(records[2].splitlines()[:6]) + "\n"  # the counts line announces 7 atoms
    path = _sdf(tmp, [records[0], records[1], cut])
    return named(cli("evaluate", path, "--no-progress"), path, "record 3")


@case("malformed SDF", CORRECT)
def case_sdf_bad_record_skipped(tmp):
    records = fx.sdf_records()
    path = _sdf(tmp, [records[0], "garbage\n\n\nnot a counts line\n$$$$\n", records[2]])
    run = cli("evaluate", path, "--skip-bad-records", "--json", "--no-progress")

    def check():
        result = _evaluate_json(run)
        if result["num_molecules"] != 2 or result["skipped"] != {"unparsable": 1}:
            return f"expected 2 molecules and 1 skipped record, got {result['num_molecules']} and {result['skipped']}"

    return succeeded(run, check)


@case("binary SDF")
def case_sdf_binary(tmp):
    path = tmp / "random.sdf"
    path.write_bytes(bytes(range(256)) * 8)
    return named(cli("evaluate", path, "--no-progress"), path, "binary")


@case("binary SDF", CORRECT)
def case_sdf_binary_file_skipped_in_folder(tmp):
    folder = tmp / "samples"
    folder.mkdir()
    (folder / "a_good.sdf").write_text(fx.good_sdf_text())
    (folder / "b_binary.sdf").write_bytes(b"\x00\x01\x02\xff" * 100)
    run = cli("evaluate", folder, "--skip-bad-records", "--json", "--no-progress")

    def check():
        result = _evaluate_json(run)
        if result["num_molecules"] != 3 or result["skipped"] != {"unreadable": 1}:
            return f"expected 3 molecules and 1 unreadable record, got {result['num_molecules']}, {result['skipped']}"

    return succeeded(run, check)


@case("binary SDF")
def case_sdf_gzip_without_gz_suffix(tmp):
    path = tmp / "compressed.sdf"
    path.write_bytes(fx.gzip_bytes(fx.good_sdf_text()))
    return named(cli("evaluate", path, "--no-progress"), path, ".sdf.gz")


@case("gzip")
def case_sdf_gz_that_is_not_gzip(tmp):
    path = tmp / "plain.sdf.gz"
    path.write_text(fx.good_sdf_text())
    return named(cli("evaluate", path, "--no-progress"), path, "gzip")


@case("gzip")
def case_sdf_gz_truncated(tmp):
    path = tmp / "cut.sdf.gz"
    data = fx.gzip_bytes(fx.good_sdf_text() * 20)
    path.write_bytes(data[: len(data) // 2])
    return named(cli("evaluate", path, "--no-progress"), path, "gzip")


@case("gzip", CORRECT)
def case_sdf_gz_truncated_skipped_keeps_what_was_read(tmp):
    path = tmp / "cut.sdf.gz"
    text = fx.good_sdf_text() * 20  # 60 records
    data = fx.gzip_bytes(text)
    path.write_bytes(data[: len(data) // 2])
    run = cli("evaluate", path, "--skip-bad-records", "--json", "--no-progress")

    def check():
        result = _evaluate_json(run)
        if not 0 < result["num_molecules"] < 60 or result["skipped"] != {"unreadable": 1}:
            return f"expected the records before the break and 1 unreadable, got {result['num_molecules']}, {result['skipped']}"

    return succeeded(run, check)


@case("gzip")
def case_xyz_gz_corrupt(tmp):
    path = tmp / "bad.xyz.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 40)
    return named(cli("evaluate", path, "--no-progress"), path)


@case("NaN/inf")
def case_sdf_nan_coordinates(tmp):
    records = fx.sdf_records()
    bad = fx.replace_atom(records[1], 2, fx.atom_line("nan", "0.0000", "0.0000", "O"))
    path = _sdf(tmp, [records[0], bad])
    return named(cli("evaluate", path, "--no-progress"), path, "record 2", "non-finite")


@case("NaN/inf")
def case_sdf_inf_coordinates(tmp):
    records = fx.sdf_records()
    bad = fx.replace_atom(records[0], 0, fx.atom_line("inf", "0.0000", "-inf"))
    path = _sdf(tmp, [bad])
    return named(cli("evaluate", path, "--no-progress"), path, "record 1", "non-finite")


@case("NaN/inf")
def case_xyz_nan_coordinate(tmp):
    path = tmp / "nan.xyz"
    path.write_text("2\nwater-ish\nO 0.0 0.0 nan\nH 0.0 0.0 0.96\n")
    return named(cli("evaluate", path, "--no-progress"), path, "line 3", "non-finite")


@case("NaN/inf")
def case_sdf_file_bonds_protocol_nan(tmp):
    records = fx.sdf_records()
    bad = fx.replace_atom(records[0], 1, fx.atom_line("nan", "nan", "nan"))
    path = _sdf(tmp, [bad])
    return named(cli("evaluate", path, "--bonds", "file", "--no-progress"), path, "record 1")


@case("empty")
def case_sdf_empty_file(tmp):
    path = tmp / "empty.sdf"
    path.write_text("")
    return named(cli("evaluate", path, "--no-progress"), path, "no usable molecules")


@case("empty")
def case_xyz_empty_file(tmp):
    path = tmp / "empty.xyz"
    path.write_text("")
    return named(cli("evaluate", path, "--no-progress"), path, "empty")


@case("empty")
def case_sdf_empty_file_bonds_protocol(tmp):
    path = tmp / "empty.sdf"
    path.write_text("")
    return named(cli("evaluate", path, "--bonds", "file", "--no-progress"), path, "no molecules")


@case("empty")
def case_evaluate_empty_folder(tmp):
    folder = tmp / "nothing"
    folder.mkdir()
    return named(cli("evaluate", folder, "--no-progress"), folder, "no molecule files")


@case("empty")
def case_evaluate_missing_path(tmp):
    return named(cli("evaluate", tmp / "absent.sdf", "--no-progress"), tmp / "absent.sdf")


@case("empty")
def case_evaluate_neither_path_nor_dataset(tmp):
    return named(cli("evaluate", "--no-progress"), "--dataset")


@case("single atom")
def case_sdf_single_atom(tmp):
    path = tmp / "one.sdf"
    path.write_text(
        "lonely\n     RDKit          3D\n\n  1  0  0  0  0  0  0  0  0  0999 V2000\n"
        f"{fx.atom_line('0.0000', '0.0000', '0.0000')}\nM  END\n$$$$\n"
    )
    return named(cli("evaluate", path, "--no-progress"), path, "record 1", "at least 2")


@case("single atom")
def case_xyz_zero_atoms(tmp):
    path = tmp / "zero.xyz"
    path.write_text("0\nnothing\n")
    return named(cli("evaluate", path, "--no-progress"), path, "line 1")


@case("unknown elements")
def case_sdf_unknown_element(tmp):
    records = fx.sdf_records()
    bad = fx.replace_atom(records[0], 0, fx.atom_line("0.0000", "1.5099", "0.0087", "Xx"))
    path = _sdf(tmp, [bad])
    return named(cli("evaluate", path, "--no-progress"), path, "record 1", "Xx")


@case("unknown elements")
def case_xyz_unknown_element(tmp):
    path = tmp / "u.xyz"
    path.write_text("2\n\nQq 0 0 0\nH 0 0 1\n")
    return named(cli("evaluate", path, "--no-progress"), path, "line 3", "Qq")


@case("unknown elements")
def case_xyz_atomic_number_out_of_range(tmp):
    path = tmp / "z.xyz"
    path.write_text("2\n\n200 0 0 0\n1 0 0 1\n")
    return named(cli("evaluate", path, "--no-progress"), path, "line 3", "200")


@case("malformed XYZ")
def case_xyz_count_mismatch(tmp):
    path = tmp / "short.xyz"
    path.write_text("5\ncomment\nC 0 0 0\nH 0 0 1\n")
    return named(cli("evaluate", path, "--no-progress"), path, "announces 5 atoms")


@case("malformed XYZ")
def case_xyz_huge_count(tmp):
    path = tmp / "huge_count.xyz"
    path.write_text("99999999999999\ncomment\nC 0 0 0\n")
    return named(cli("evaluate", path, "--no-progress"), path, "line 1")


@case("malformed XYZ")
def case_unknown_suffix(tmp):
    path = tmp / "samples.mol2"
    path.write_text("@<TRIPOS>MOLECULE\n")
    return named(cli("evaluate", path, "--no-progress"), path, "unknown molecule file type")


@case("huge values", CORRECT)
def case_xyz_huge_coordinates_are_scored_not_crashed(tmp):
    path = tmp / "far.xyz"
    path.write_text("2\nfar apart\nC 0 0 0\nC 1e6 -1e6 1e6\n")
    run = cli("evaluate", path, "--json", "--no-progress")

    def check():
        result = _evaluate_json(run)
        if result["num_molecules"] != 1 or result["molecule_stability"] != 0.0:
            return f"two carbons 1.7e6 A apart must count as one unstable molecule, got {result}"

    return succeeded(run, check)


@case("huge values")
def case_sdf_coordinates_overflowing_columns(tmp):
    records = fx.sdf_records()
    bad = fx.replace_atom(records[0], 0, fx.atom_line("1e400", "0.0", "0.0"))
    path = _sdf(tmp, [bad])
    return named(cli("evaluate", path, "--no-progress"), path, "record 1")


@case("malformed SDF", CORRECT)
def case_sdf_latin1_title_is_read(tmp):
    records = fx.sdf_records()
    path = tmp / "latin1.sdf"
    path.write_bytes(("Caf\xe9 molecule" + records[0][records[0].index("\n") :]).encode("latin-1"))
    run = cli("evaluate", path, "--json", "--no-progress")

    def check():
        if _evaluate_json(run)["num_molecules"] != 1:
            return "a Latin-1 title must not stop the record from being read"

    return succeeded(run, check)


@case("missing files")
def case_evaluate_training_smiles_missing(tmp):
    return named(
        cli("evaluate", fx.good_sdf(), "--training-smiles", tmp / "none.txt", "--no-progress"), tmp / "none.txt"
    )


# ------------------------------------------------------------------------------------------------
# PDB and mmCIF (evaluate-backbones, motif files)
# ------------------------------------------------------------------------------------------------


def _evaluate_backbones(folder: Path, *extra):
    return cli("evaluate-backbones", folder, "--reference", fx.reference_folder(), "--no-tm-score", *extra)


@case("malformed PDB", CORRECT)
def case_backbones_good_folder(tmp):
    folder = fx.backbone_folder(tmp)
    run = _evaluate_backbones(folder, "--json")

    def check():
        if json.loads(run.out)["summary"]["num_backbones"] != 3:
            return "expected 3 backbones"

    return succeeded(run, check)


@case("malformed PDB")
def case_backbones_chain_without_ca(tmp):
    folder = fx.backbone_folder(tmp)
    bad = folder / "design_0001.pdb"
    bad.write_text(bad.read_text().replace("  CA  GLY A   3", "  CB  GLY A   3"))
    return named(_evaluate_backbones(folder), "design_0001", "no CA atom")


@case("malformed PDB", CORRECT)
def case_backbones_bad_file_skipped(tmp):
    folder = fx.backbone_folder(tmp)
    (folder / "design_0001.pdb").write_text("ATOM  garbage\nEND\n")
    run = _evaluate_backbones(folder, "--skip-bad-files", "--json")

    def check():
        result = json.loads(run.out)
        if result["summary"]["num_backbones"] != 2 or sum(result["skipped"].values()) != 1:
            return f"expected 2 backbones and 1 skipped file, got {result['summary']['num_backbones']}, {result.get('skipped')}"

    return succeeded(run, check)


@case("binary PDB")
def case_backbones_binary_file(tmp):
    folder = fx.backbone_folder(tmp)
    (folder / "design_0002.pdb").write_bytes(b"\x00\xff" * 300)
    return named(_evaluate_backbones(folder), "design_0002", "binary")


@case("binary PDB", CORRECT)
def case_backbones_binary_file_skipped(tmp):
    folder = fx.backbone_folder(tmp)
    (folder / "design_0002.pdb").write_bytes(b"\x00\xff" * 300)
    run = _evaluate_backbones(folder, "--skip-bad-files", "--json")

    def check():
        if json.loads(run.out)["summary"]["num_backbones"] != 2:
            return "the binary file must be skipped and counted"

    return succeeded(run, check)


@case("gzip")
def case_backbones_bad_gzip(tmp):
    folder = fx.backbone_folder(tmp)
    (folder / "design_0003.pdb.gz").write_bytes(b"\x1f\x8bnot really gzip")
    return named(_evaluate_backbones(folder), "design_0003", "gzip")


@case("malformed mmCIF")
def case_backbones_malformed_mmcif(tmp):
    folder = fx.backbone_folder(tmp)
    (folder / "broken.cif").write_text("data_broken\nloop_\n_atom_site.id\n_atom_site.Cartn_x\n1\n")
    return named(_evaluate_backbones(folder), "broken.cif")


@case("NaN/inf")
def case_backbones_nan_coordinates(tmp):
    folder = fx.backbone_folder(tmp)
    bad = folder / "design_0000.pdb"
    lines = bad.read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if line.startswith("ATOM"))
    lines[k] = lines[k][:30] + f"{'nan':>8}" + lines[k][38:]
    bad.write_text("\n".join(lines) + "\n")
    return named(_evaluate_backbones(folder), "design_0000", "non-finite")


@case("empty")
def case_backbones_empty_folder(tmp):
    folder = tmp / "empty"
    folder.mkdir()
    return named(_evaluate_backbones(folder), folder)


@case("empty")
def case_backbones_empty_pdb_file(tmp):
    folder = fx.backbone_folder(tmp, 2)
    (folder / "design_0009.pdb").write_text("")
    return named(_evaluate_backbones(folder), "design_0009")


@case("single atom", CORRECT)
def case_backbones_single_residue_is_skipped_and_counted(tmp):
    from moldiff.proteins.pdb_io import write_backbone_pdb

    folder = fx.backbone_folder(tmp, 2)
    write_backbone_pdb(folder / "design_0005.pdb", fx.helix(1))
    run = _evaluate_backbones(folder, "--json")

    def check():
        result = json.loads(run.out)
        if result["summary"]["num_backbones"] != 2 or result.get("skipped") != {"too_short": 1}:
            return f"a one-residue chain must be skipped as too short, got {result.get('skipped')}"

    return succeeded(run, check)


@case("missing files")
def case_backbones_missing_reference(tmp):
    folder = fx.backbone_folder(tmp)
    run = cli("evaluate-backbones", folder, "--reference", tmp / "no_reference", "--no-tm-score")
    return named(run, tmp / "no_reference")
