"""The house's size figures (issue 24): the largest parameter counts in kvision/train and the
Python lines of kvision/ and tests/. Counts only, so any machine gives the same numbers.

    python scripts/house_figures.py [REPO]
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path


def parameter_counts(root: Path) -> list[tuple[int, str]]:
    """(parameters, where) of every function in kvision/train, self/cls not counted."""
    found = []
    for path in sorted((root / "kvision/train").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                n = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs)
                n += bool(a.vararg) + bool(a.kwarg)
                n -= bool(a.args and a.args[0].arg in ("self", "cls"))
                found.append((n, f"{path.relative_to(root)}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)


def python_lines(root: Path, folder: str) -> tuple[int, int]:
    """(lines, files) of the Python files git tracks under ``folder``."""
    listed = subprocess.run(
        ["git", "ls-files", folder], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    files = [f for f in listed if f.endswith(".py")]
    return sum(len((root / f).read_text("utf-8").splitlines()) for f in files), len(files)


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    counts = parameter_counts(root)
    print("largest parameter counts in kvision/train (self excluded):")
    for n, where in counts[:6]:
        print(f"  {n} {where}")
    print("functions with >= 7 parameters:", sum(n >= 7 for n, _ in counts))
    print("functions with > 4 parameters:", sum(n > 4 for n, _ in counts))
    for folder in ("kvision", "tests"):
        lines, files = python_lines(root, folder)
        print(f"{folder}/: {lines} Python lines in {files} files")


if __name__ == "__main__":
    main()
