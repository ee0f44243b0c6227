"""`import moldiff` and its torch-only parts stay cheap: no chemistry, e3nn, Biopython or PyG."""

import subprocess
import sys

HEAVY = ("rdkit", "e3nn", "Bio", "torch_geometric")


def _imported(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    return eval(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)


def test_import_moldiff_is_cheap():
    assert _imported("import moldiff") == []


def test_the_core_the_networks_and_the_engine_import_no_optional_heavy_package():
    code = "import moldiff.core, moldiff.nn, moldiff.testing, moldiff.train, moldiff.cli, moldiff.molecules.model"
    assert _imported(code) == []


def test_the_core_imports_nothing_else_from_moldiff_but_its_errors():
    probe = "import sys, moldiff.core\nprint(sorted(m for m in sys.modules if m.startswith('moldiff.') and not m.startswith('moldiff.core')))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert set(eval(out)) <= {"moldiff.errors"}
