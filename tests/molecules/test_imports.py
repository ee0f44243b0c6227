import subprocess
import sys


def _imported(modules: str, heavy: tuple[str, ...]) -> list[str]:
    code = f"import sys, {modules}\nprint(sorted(m for m in {heavy!r} if m in sys.modules))"
    return eval(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def test_the_chemistry_modules_import_neither_rdkit_nor_torch():
    assert (
        _imported(
            "moldiff, moldiff.molecules, moldiff.molecules.elements, moldiff.molecules.bonds, "
            "moldiff.molecules.rdkit_io, moldiff.molecules.metrics",
            ("rdkit", "torch"),
        )
        == []
    )


def test_the_molecule_package_imports_rdkit_only_when_it_is_used():
    assert (
        _imported("moldiff.molecules.evaluate, moldiff.molecules.generator, moldiff.molecules.task", ("rdkit", "e3nn"))
        == []
    )
