import subprocess
import sys


def test_importing_the_package_does_not_import_rdkit_or_torch():
    code = (
        "import sys, moldiff, moldiff.molecules, moldiff.molecules.bonds, moldiff.molecules.rdkit_io, "
        "moldiff.molecules.metrics, moldiff.molecules.evaluate\n"
        "print(sorted(m for m in ('rdkit', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
