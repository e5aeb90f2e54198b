"""The import arrows point one way: runs -> recipe -> models, data -> insight -> train -> sweep,
bench -> cli; the TUI sits beside the CLI and reads run directories.

Every import counts, also the ones inside functions (a lazy import is still an arrow). The
table says, for each unit of the code, which other units it may import; a reversed arrow
(``kvision.runs`` importing ``kvision.insight``, ``kvision.models`` importing
``kvision.train``...) fails with the file and line that added it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Units at the bottom: the package root (backend choice, version), the error types, the
# --set parser, the model catalogue (names, families and options: data that the recipe
# validates against; it imports only kvision.errors), the one-shot import hook, and the
# stand-in that keeps torch._dynamo out of Keras' import (it imports only the hook).
BASE = {
    "kvision._import_hooks",
    "kvision",
    "kvision.errors",
    "kvision.keyvalue",
    "kvision.models.catalog",
    "kvision._lazy_dynamo",
}
# One deferred arrow: ``import kvision`` installs a post-import hook (kvision._keras_layers)
# that registers the LRN layer from kvision.models.layers once Keras itself is imported, so
# ``keras.saving.load_model`` finds it (issue 13); nothing else in the base reaches up.
HOOK = "kvision._keras_layers"
BELOW: dict[str, set[str]] = {
    "base": {HOOK},
    HOOK: {"kvision.models"},
    "kvision.runs": set(),
    "kvision.recipe": {"kvision.runs"},
    "kvision.models": {"kvision.runs", "kvision.recipe"},
    "kvision.data": {"kvision.runs", "kvision.recipe"},
    "kvision.insight": {
        "kvision.runs",
        "kvision.recipe",
        "kvision.models",
        "kvision.data",
        "kvision.portable",
    },
    "kvision.train": {
        "kvision.runs",
        "kvision.recipe",
        "kvision.models",
        "kvision.data",
        "kvision.insight",
    },
    "kvision.sweep": {"kvision.runs", "kvision.recipe", "kvision.train"},
    "kvision.bench": {
        "kvision.runs",
        "kvision.recipe",
        "kvision.models",
        "kvision.data",
        "kvision.train",
    },
    # Exported models, their sidecars and predict: a run's events, its models, image files.
    "kvision.portable": {"kvision.runs", "kvision.recipe", "kvision.models", "kvision.data"},
    "kvision.cli": {
        "kvision.runs",
        "kvision.recipe",
        "kvision.models",
        "kvision.data",
        "kvision.insight",
        "kvision.train",
        "kvision.sweep",
        "kvision.bench",
        "kvision.portable",
    },
    "kvision_tui": {"kvision.runs", "kvision.recipe"},
}
# Third-party packages a unit must never import (the TUI and the readers stay light).
NEVER = {
    "kvision.runs": {"keras", "torch", "cv2", "textual"},
    "kvision.recipe": {"keras", "torch", "cv2", "textual"},
    "kvision_tui": {"keras", "torch", "cv2", "tensorflow", "tensorflow_datasets"},
}
LIBRARY_NEVER = {"textual", "textual_image", "kvision_tui", "tui"}


def unit_of(module: str) -> str:
    """The unit a dotted kvision module belongs to (``kvision.train.runner`` -> ``kvision.train``)."""
    if module in BASE or module.startswith("kvision.models.catalog."):
        return "base"
    if module.startswith(("kvision_tui", "tui")):
        return "kvision_tui"
    if module in ("kvision.cli", "kvision.__main__"):
        return "kvision.cli"
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = ["kvision_tui", *rel.parts[1:]] if rel.parts[0] == "tui" else list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path = ROOT) -> list[tuple[str, int]]:
    """Every module ``path`` imports (absolute name, line), inside functions too."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.append((base, node.lineno))
            # ``from kvision import errors`` imports the submodule kvision.errors
            found += [
                (f"{base}.{alias.name}", node.lineno)
                for alias in node.names
                if f"{base}.{alias.name}" in BASE
            ]
    return found


def sources() -> list[Path]:
    return sorted([*ROOT.glob("kvision/**/*.py"), *ROOT.glob("tui/**/*.py")])


def violations(files: list[Path], root: Path = ROOT) -> list[str]:
    bad = []
    for path in files:
        unit = unit_of(module_name(path, root))
        for target, line in imports_of(path, root):
            where = f"{path.relative_to(root)}:{line}"
            top = target.split(".")[0]
            if top in ("kvision", "kvision_tui"):
                other = unit_of(target)
                if other not in (unit, "base") and other not in BELOW[unit]:
                    bad.append(f"{where}: {unit} imports {target} ({other} is not below it)")
            if top in NEVER.get(unit, ()) or (unit != "kvision_tui" and top in LIBRARY_NEVER):
                bad.append(f"{where}: {unit} must never import {top}")
    return bad


def test_every_file_belongs_to_a_unit_of_the_table():
    units = {unit_of(module_name(p)) for p in sources()}
    assert units <= set(BELOW), units - set(BELOW)
    assert {"kvision.runs", "kvision.train", "kvision_tui", "base"} <= units


def test_imports_follow_the_layer_order():
    bad = violations(sources())
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_the_base_imports_only_the_base_and_the_standard_library():
    for path in sources():
        if unit_of(module_name(path)) == "base":
            kvision_imports = {t for t, _ in imports_of(path) if t.split(".")[0] == "kvision"}
            assert all(unit_of(t) in ("base", HOOK) for t in kvision_imports), path


@pytest.mark.parametrize(
    ("unit", "line", "expected"),
    [
        (
            "kvision/runs/listing.py",
            "from kvision.insight.hooks import report_markdown",
            "kvision.runs imports kvision.insight.hooks",
        ),
        (
            "kvision/models/factory.py",
            "    from kvision.train import runner",
            "kvision.models imports kvision.train",
        ),
        (
            "kvision/recipe/load.py",
            "from kvision.data import load",
            "kvision.recipe imports kvision.data",
        ),
        ("tui/app.py", "import keras", "kvision_tui must never import keras"),
        (
            "tui/app.py",
            "from kvision.train.runner import run_recipe",
            "kvision_tui imports kvision.train",
        ),
        (
            "kvision/insight/viz.py",
            "from kvision_tui.app import main",
            "kvision.insight imports kvision_tui",
        ),
        (
            "kvision/train/runner.py",
            "from kvision.sweep.study import run_sweep",
            "kvision.train imports kvision.sweep",
        ),
    ],
)
def test_a_reversed_arrow_is_caught(tmp_path, unit, line, expected):
    """The checker itself: a copy of a real file with one reversed import added fails."""
    original = ROOT / unit
    copy = tmp_path / unit
    copy.parent.mkdir(parents=True)
    copy.write_text(original.read_text("utf-8") + f"\n\ndef _reversed():\n    {line.strip()}\n")
    bad = violations([copy], root=tmp_path)
    assert any(expected in b for b in bad), bad


# -- inside a package: no circles, and no reaching into another package's private modules --


def _runtime_imports(path: Path, known: set[str], root: Path = ROOT) -> list[tuple[str, int]]:
    """The kvision modules ``path`` imports when it runs (inside functions too, but not under
    ``if TYPE_CHECKING:``), with ``from package import module`` resolved to the module."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text("utf-8"))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            found += [(m, node.lineno) for m in subs] or [(base, node.lineno)]
    return [(m, line) for m, line in found if m in known]


def import_cycles(files: list[Path], root: Path = ROOT) -> list[list[str]]:
    """Circles of imports between modules of one package (strongly connected components)."""
    modules = {module_name(p, root): p for p in files}
    graph = {
        m: {
            t
            for t, _ in _runtime_imports(p, set(modules), root)
            if t != m and unit_of(t) == unit_of(m) and not m.startswith(f"{t}.")
        }
        for m, p in modules.items()
    }
    return [c for c in strong_components(graph) if len(c) > 1]


def strong_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of nodes that all reach each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(m: str) -> None:
        index[m] = low[m] = len(index)
        stack.append(m)
        for t in sorted(graph[m]):
            if t not in index:
                visit(t)
                low[m] = min(low[m], low[t])
            elif t in stack:
                low[m] = min(low[m], index[t])
        if low[m] == index[m]:
            component = [stack.pop()]
            while component[-1] != m:
                component.append(stack.pop())
            components.append(sorted(component))

    for m in sorted(graph):
        if m not in index:
            visit(m)
    return components


def test_no_import_circle_inside_a_package():
    """A circle (a imports b, b imports a, often hidden by a lazy import) means the shared
    piece belongs in a module below both."""
    cycles = import_cycles(sources())
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def private_reaches(files: list[Path], root: Path = ROOT) -> list[str]:
    """Imports of a ``_private`` module from outside the package that holds it."""
    bad = []
    for path in files:
        name = module_name(path, root)
        for target, line in imports_of(path, root):
            parts = target.split(".")
            private = [i for i, part in enumerate(parts) if part.startswith("_") and i > 0]
            if parts[0] != "kvision" or not private:
                continue
            owner = ".".join(parts[: private[0]])
            if not (name == owner or name.startswith(f"{owner}.")):
                bad.append(f"{path.relative_to(root)}:{line}: {name} imports {target}")
    return bad


def test_no_import_of_another_packages_private_module():
    """``kvision.models._fast`` is the models package's own business: others use the names
    kvision.models exports."""
    bad = private_reaches(sources())
    assert not bad, "private modules imported from outside their package:\n" + "\n".join(bad)


def test_the_circle_and_private_checks_catch_a_planted_case(tmp_path):
    pkg = tmp_path / "kvision" / "demo"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from kvision.demo import b\n")
    (pkg / "b.py").write_text("def f():\n    from kvision.demo.a import x\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import kvision.demo.a\n"
    )
    (pkg / "d.py").write_text("from kvision.models._fast import direct_graph\n")
    files = sorted(pkg.glob("*.py"))
    assert import_cycles(files, tmp_path) == [["kvision.demo.a", "kvision.demo.b"]]
    assert private_reaches(files, tmp_path) == [
        "kvision/demo/d.py:1: kvision.demo.d imports kvision.models._fast"
    ]
