"""The package's shape (docs/architecture.md): each modality one package, shared layers that import no
modality, no import cycles, and moldiff-internal imports at module level only.

The import graph is read from the source with ``ast`` (module-level imports only), so these tests
see the structure of the code, not what one run happened to import.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "moldiff"
MODALITIES = ("moldiff.molecules", "moldiff.proteins", "moldiff.images")
#: Where function-local moldiff imports are the point: the command imports a subcommand's modules only
#: when it runs (``moldiff --help`` stays instant, ``moldiff sample`` imports one modality).
LAZY_BY_DESIGN = {"moldiff.cli"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Modules an import statement names (``from pkg import sub`` names ``pkg`` and ``pkg.sub``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = _module_name(path).split(".")
        base = base[: len(base) - node.level + (path.name == "__init__.py")]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    subs = [f"{module}.{a.name}" for a in node.names]
    return [module] + [
        m
        for m in subs
        if (PACKAGE.parent / m.replace(".", "/")).with_suffix(".py").exists()
        or (PACKAGE.parent / m.replace(".", "/") / "__init__.py").exists()
    ]


def _imports() -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """``({module: moldiff modules it imports at module level}, [(module, line, statement) imported in a function]``."""
    graph, local = {}, []
    for path in sorted(PACKAGE.rglob("*.py")):
        name, tree = _module_name(path), ast.parse(path.read_text())
        graph[name] = set()
        top = {id(n) for n in tree.body}
        top |= {id(n) for block in tree.body if isinstance(block, (ast.If, ast.Try)) for n in ast.walk(block)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            ours = [t for t in _targets(path, node) if t == "moldiff" or t.startswith("moldiff.")]
            if not ours:
                continue
            if id(node) in top:
                graph[name].update(ours)
            else:
                local.append((name, node.lineno, ast.unparse(node)))
    return graph, local


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_there_are_no_import_cycles():
    graph, _ = _imports()
    cycles = sorted(m for m in graph if m in _reachable(graph, m))
    assert cycles == [], f"modules on an import cycle: {cycles}"


def test_moldiff_modules_are_imported_at_module_level():
    _, local = _imports()
    hidden = [f"{m}:{line}: {stmt}" for m, line, stmt in local if m not in LAZY_BY_DESIGN]
    assert hidden == [], "moldiff imports inside functions:\n" + "\n".join(hidden)


def test_shared_layers_import_no_modality():
    graph, _ = _imports()
    for layer in (
        "moldiff.core",
        "moldiff.nn",
        "moldiff.train",
        "moldiff.testing",
        "moldiff.hub",
        "moldiff.pretrained",
    ):
        for module in [m for m in graph if m == layer or m.startswith(layer + ".")]:
            bad = sorted(t for t in _reachable(graph, module) if t.startswith(MODALITIES))
            assert bad == [], f"{module} imports {bad}"


def test_the_core_imports_only_itself_and_the_errors():
    graph, _ = _imports()
    for module in [m for m in graph if m.startswith("moldiff.core")]:
        outside = sorted(t for t in graph[module] if not t.startswith("moldiff.core") and t != "moldiff.errors")
        assert outside == [], f"{module} imports {outside}"


def test_no_modality_imports_another():
    graph, _ = _imports()
    for modality in MODALITIES:
        for module in [m for m in graph if m.startswith(modality)]:
            others = sorted(
                t for t in _reachable(graph, module) if t.startswith(MODALITIES) and not t.startswith(modality)
            )
            assert others == [], f"{module} imports {others}"


def test_sampling_a_molecule_model_imports_only_the_molecule_modality(tmp_path):
    probe = (
        "import sys\nfrom moldiff.cli import main\n"
        f"assert main(['sample', '--model', 'qm9', '--num', '2', '--steps', '2', "
        f"'--out', {str(tmp_path / 'two.sdf')!r}, '--no-progress']) == 0\n"
        "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith(('moldiff.images', 'moldiff.proteins', "
        "'moldiff.molecules'))}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert eval(out.strip().splitlines()[-1]) == ["molecules"]
