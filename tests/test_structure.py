"""The package's shape: one subpackage per stage, thin chapters, short signatures, unique public names."""

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lib" / "brainldm"
SUBPACKAGES = ("data", "models", "features", "fit", "evaluate", "generate", "figures", "book", "testing", "training")
MAX_CHAPTER_LINES, MAX_CELL_LINES, MAX_PARAMETERS, MAX_EXCEPTIONS = 40, 12, 8, 2


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "weights" not in p.parts)


def chapter_cells(path):
    """``(is_parameters, code lines)`` of each code cell of a jupytext percent chapter (comments and blanks not counted)."""
    cells, lines, kind = [], None, None
    for line in path.read_text().splitlines() + ["# %% [markdown]"]:
        if line.startswith("# %%"):
            if kind is not None:
                cells.append((kind, [x for x in lines if x.strip() and not x.strip().startswith("#")]))
            kind = None if "[markdown]" in line else ("parameters" in line)
            lines = []
        elif kind is not None:
            lines.append(line)
    return cells


def parameter_counts():
    """``{module:function: number of parameters}`` of every function (self, cls, *args and **kwargs not counted)."""
    counts = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs if a.arg not in ("self", "cls")]
                counts[(path, node.lineno, node.name)] = (len(names), ast.get_docstring(node) or "")
    return counts


def test_no_module_is_left_loose_and_every_subpackage_curates_its_names():
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "errors.py", "settings.py"]
    for package in [p.parent for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE]:
        tree = ast.parse((package / "__init__.py").read_text())
        assert ast.get_docstring(tree), f"{package.name}/__init__.py has no docstring"
        assert any(isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "__all__" for n in tree.body), \
            f"{package.relative_to(PACKAGE)} has no __all__"
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()} == set(SUBPACKAGES)


@pytest.mark.parametrize("chapter", sorted((ROOT / "chapters").glob("[0-9]*.py")), ids=lambda p: p.stem)
def test_chapters_only_tell_the_story(chapter):
    cells = chapter_cells(chapter)
    assert sum(len(lines) for _, lines in cells) <= MAX_CHAPTER_LINES
    long = [len(lines) for parameters, lines in cells if not parameters and len(lines) > MAX_CELL_LINES]
    assert not long, f"code cells of {long} lines (at most {MAX_CELL_LINES})"
    # nbval's kernel shows a last expression even behind a trailing ";": assign it instead
    assert not [line for _, lines in cells for line in lines if line.rstrip().endswith(";")]
    text = chapter.read_text()
    assert "```{bibliography}" in text and "{cite" in text, "a References section and citations"
    assert not re.search(r"\bbrief\b", text, re.IGNORECASE)


def test_functions_take_at_most_eight_parameters_unless_their_docstring_says_why():
    over = {key: doc for key, (n, doc) in parameter_counts().items() if n > MAX_PARAMETERS}
    undocumented = [f"{p.relative_to(PACKAGE)}:{line} {name}" for (p, line, name), doc in over.items()
                    if "parameters" not in doc.lower() or "more than eight" not in doc.lower()]
    assert not undocumented
    assert len(over) <= MAX_EXCEPTIONS


def test_every_public_name_is_defined_in_one_module():
    where = defaultdict(list)
    for path in _modules():
        if path.name == "__init__.py" and path.parent != PACKAGE and path.parent.name in SUBPACKAGES:
            continue  # a subpackage's __init__ re-exports its modules' names
        for node in ast.parse(path.read_text()).body:
            names = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names = [node.target.id]
            for name in names:
                if not name.startswith("_"):
                    where[name].append(str(path.relative_to(PACKAGE)))
    assert {name: paths for name, paths in where.items() if len(paths) > 1} == {}
