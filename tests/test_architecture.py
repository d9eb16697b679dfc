"""The structure of the package: the import contracts (layers, no cycles) and short functions."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "unetseg"
MAX_LINES = 60


def code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef, source: list[str]) -> int:
    """Lines of a function that hold code: its span less the docstring, blank lines and comment-only lines."""
    first, last = node.lineno, node.end_lineno or node.lineno
    doc = set()
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        doc = set(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    count = 0
    for number in range(first, last + 1):
        text = source[number - 1].strip()
        if number in doc or not text or text.startswith("#"):
            continue
        count += 1
    return count


def function_lengths() -> dict[str, int]:
    """``module:qualified.name`` -> lines of code, for every function and method in src/unetseg."""
    lengths = {}
    for path in sorted(SRC.rglob("*.py")):
        source = path.read_text().splitlines()
        tree = ast.parse("\n".join(source))
        stack: list[tuple[ast.AST, str]] = [(tree, "")]
        while stack:
            node, prefix = stack.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    name = f"{prefix}{child.name}"
                    if not isinstance(child, ast.ClassDef):
                        lengths[f"{path.relative_to(SRC)}:{name}"] = code_lines(child, source)
                    stack.append((child, name + "."))
    return lengths


def test_code_lines_counts_code_only():
    source = ['def f(x):', '    """Doc', '    string."""', '', '    # comment', '    y = x', '    return y']
    node = ast.parse("\n".join(source)).body[0]
    assert code_lines(node, source) == 3


def test_no_function_over_60_lines_of_code():
    lengths = function_lengths()
    assert len(lengths) > 300  # the walk found the package's functions
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not too_long, f"functions over {MAX_LINES} lines of code: {too_long}"


def test_train_facade_is_short():
    lengths = function_lengths()
    assert lengths["engine/trainer.py:train"] < 40


def test_import_contracts_hold():
    """import-linter's layers contract (data -> models -> checkpoint -> inference -> engine -> cli) and no import
    cycle inside any package (pyproject.toml, [tool.importlinter])."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("lint-imports not installed: pip install -e '.[dev]'")
    result = subprocess.run([exe, str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout and result.stdout.count("KEPT") == 2
