"""Lint of every notebooks/*.ipynb: structure, a literal-only parameters cell that matches the
notebook's config, no outputs, and no logic (functions and classes belong in scorelib/)."""
from __future__ import annotations

import ast
import io
import re
import tokenize
import typing
from pathlib import Path

import nbformat
import pytest

from scorelib import config as C

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]

pytestmark = pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks/*.ipynb")


def load(path: Path):
    return nbformat.read(str(path), as_version=4)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def param_cells(nb):
    return [c for c in nb.cells if "parameters" in (c.get("metadata", {}).get("tags") or [])]


def python_source(src: str) -> str:
    """Cell source with IPython magics and shell escapes blanked out, for ast.parse."""
    return "\n".join("" if re.match(r"\s*[!%]", line) else line for line in src.splitlines())


def is_literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def parameters(nb) -> dict:
    """Name -> value of the parameters cell; asserts it holds only literal assignments."""
    (cell,) = param_cells(nb)
    tree = ast.parse(cell.source)
    out: dict = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.AnnAssign):
            assert isinstance(stmt.target, ast.Name) and stmt.simple, ast.dump(stmt)
            assert stmt.value is not None, f"{stmt.target.id}: annotation without a value"
            assert not any(isinstance(n, ast.Call) for n in ast.walk(stmt.annotation)), ast.unparse(stmt)
            name, value = stmt.target.id, stmt.value
        elif isinstance(stmt, ast.Assign):
            assert len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name), ast.unparse(stmt)
            name, value = stmt.targets[0].id, stmt.value
        else:
            raise AssertionError(f"not an assignment in the parameters cell: {ast.unparse(stmt)}")
        assert is_literal(value), f"{name}: not a literal: {ast.unparse(value)}"
        assert name not in out, f"{name} assigned twice"
        out[name] = ast.literal_eval(value)
    for node in ast.walk(tree):
        assert not isinstance(node, (ast.Import, ast.ImportFrom, ast.Call)), ast.unparse(node)
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_valid_nbformat(path):
    nb = load(path)
    nbformat.validate(nb)
    assert nb.nbformat == 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_every_cell_has_a_unique_id(path):
    """nbformat 4.5 wants a cell id (JupyterLab and nbformat add random ones on save, a noisy diff otherwise)."""
    import json

    cells = json.loads(path.read_text())["cells"]
    ids = [c.get("id") for c in cells]
    assert all(isinstance(i, str) and re.fullmatch(r"[a-zA-Z0-9-_]{1,64}", i) for i in ids), ids
    assert len(set(ids)) == len(ids), ids


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_first_cell_is_a_markdown_title(path):
    first = load(path).cells[0]
    assert first.cell_type == "markdown"
    assert first.source.startswith("# ")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_kernelspec(path):
    assert load(path).metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_exactly_one_parameters_cell(path):
    cells = param_cells(load(path))
    assert len(cells) == 1
    assert cells[0].cell_type == "code"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_parameters_cell_is_literal_and_matches_config(path):
    nb = load(path)
    params = parameters(nb)
    cls = C.config_for(path.stem)
    assert set(params) == set(C.field_names(cls)), (
        f"missing {sorted(set(C.field_names(cls)) - set(params))}, extra {sorted(set(params) - set(C.field_names(cls)))}")
    # the cell's values are valid, and are the config's defaults
    cfg = C.make_config(cls, params)
    assert C.to_dict(cfg) == C.to_dict(cls()), "parameters cell values differ from the config defaults"


# A parameter's annotation in the cell, by its config field's type: list fields are tuples in the frozen dataclass
# (make_config turns the cell's or the profile's list into one).
CELL_TYPE = {int: "int", float: "float", str: "str", bool: "bool", tuple: "list"}
MAX_PARAM_LINE = 100


def parameter_problems(src: str, cls) -> list[str]:
    """What is wrong with a parameters cell's annotations and help against its config ``cls``: each parameter is
    ``name: type = value  # help``, the type the field's (CELL_TYPE), the help non-empty, the line <= 100
    characters."""
    hints = typing.get_type_hints(cls)
    comments = {tok.start[0]: tok.string[1:].strip() for tok in tokenize.generate_tokens(io.StringIO(src).readline)
                if tok.type == tokenize.COMMENT}
    lines = src.splitlines()
    problems = []
    for stmt in ast.parse(src).body:
        name = (stmt.target if isinstance(stmt, ast.AnnAssign) else stmt.targets[0]).id
        if name not in hints:
            continue  # an extra name: test_parameters_cell_is_literal_and_matches_config says so
        want = CELL_TYPE[hints[name]]
        got = ast.unparse(stmt.annotation) if isinstance(stmt, ast.AnnAssign) else None
        if got != want:
            problems.append(f"{name}: annotated {got}, the config's field is {want}")
        if not comments.get(stmt.end_lineno):
            problems.append(f"{name}: no help comment")
        if len(lines[stmt.lineno - 1]) > MAX_PARAM_LINE:
            problems.append(f"{name}: line of {len(lines[stmt.lineno - 1])} characters (max {MAX_PARAM_LINE})")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_parameters_have_the_configs_types_and_help(path):
    (cell,) = param_cells(load(path))
    problems = parameter_problems(cell.source, C.config_for(path.stem))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_parameter_comments_have_no_equals_sign(path):
    """papermill reads `name: type = value  # comment` and cannot parse a line whose comment holds '='."""
    (cell,) = param_cells(load(path))
    bad = [line for line in cell.source.splitlines() if "#" in line and "=" in line.split("#", 1)[1]]
    assert not bad, bad


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_parameter_shadows_an_import(path):
    """A parameter named like an imported name would replace it (e.g. `self_refine` the flag and the function)."""
    nb = load(path)
    imported = set()
    for cell in code_cells(nb):
        for node in ast.walk(ast.parse(python_source(cell.source))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imported |= {(a.asname or a.name).split(".")[0] for a in node.names}
    clash = sorted(imported & set(parameters(nb)))
    assert not clash, f"parameters shadow imported names: {clash}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_outputs(path):
    for i, cell in enumerate(code_cells(load(path))):
        assert not cell.get("outputs"), f"cell {i} has outputs"
        assert cell.get("execution_count") is None, f"cell {i} has an execution_count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_logic_or_environment_hacks(path):
    for i, cell in enumerate(code_cells(load(path))):
        src = cell.source
        assert not re.search(r"^\s*[!%]\s*pip\b", src, re.M), f"cell {i}: installs packages"
        assert "sys.path" not in src, f"cell {i}: edits sys.path"
        tree = ast.parse(python_source(src))
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)), f"cell {i}: def {node.name}"
            assert not isinstance(node, ast.ClassDef), f"cell {i}: class {node.name}"
        assert not re.search(r"^\s*(async\s+)?def\s", src, re.M), f"cell {i}: def"
        assert not re.search(r"^\s*class\s", src, re.M), f"cell {i}: class"


# Every line of every cell of every notebook, markdown included, fits in MAX_LINE characters (issue 12).
MAX_LINE = 100


def long_lines(nb, limit: int = MAX_LINE) -> list[str]:
    """'cell <i> line <j> (<n> chars)' for each line of a cell longer than ``limit``."""
    return [f"cell {i} line {j} ({len(line)} chars)" for i, cell in enumerate(nb.cells)
            for j, line in enumerate(cell.source.splitlines(), 1) if len(line) > limit]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_lines_fit(path):
    bad = long_lines(load(path))
    assert not bad, f"lines over {MAX_LINE} characters: {bad}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_registered(path):
    assert path.stem in C.NOTEBOOK_CONFIGS


def test_every_registered_notebook_exists():
    names = {p.stem for p in NOTEBOOKS}
    missing = sorted(set(C.NOTEBOOK_CONFIGS) - names)
    assert not missing, f"registered but missing: {missing}"


# ------------------------------------------------------------------------------------------
# The lint's own helpers
# ------------------------------------------------------------------------------------------

def _nb_with_params(src: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src, metadata={"tags": ["parameters"]})]
    return nb


@pytest.mark.parametrize("src,want", [
    ("a = 1\nb: float = -0.5\nc: list = [0.0, 1.0]\nd = (1, -2)\ne = {'x': [1]}\nf = None\ng: str = 'x'  # c",
     dict(a=1, b=-0.5, c=[0.0, 1.0], d=(1, -2), e={"x": [1]}, f=None, g="x")),
    ("", {}),
])
def test_helper_accepts_literals(src, want):
    assert parameters(_nb_with_params(src)) == want


@pytest.mark.parametrize("src", ["import os", "a = f(1)", "a = 1 + x", "a = b = 1", "a, b = 1, 2", "a: int",
                                 "a = [1, len('x')]", "a = 1\na = 2", "x.y = 1", "a: int = int('1')", "if 1: a = 1"])
def test_helper_rejects_non_literals(src):
    with pytest.raises(AssertionError):
        parameters(_nb_with_params(src))


def test_helper_finds_long_lines():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t\n" + "x" * 100),
                nbformat.v4.new_code_cell("a = 1\n" + "y" * 101 + "\nb = 2")]
    assert long_lines(nb) == ["cell 1 line 2 (101 chars)"]  # 100 is allowed, 101 is not


def test_parameter_lint_passes_a_good_cell():
    src = ("n_test: int = 64  # held-out problems\ntemperatures: list = [0.0]  # evaluation temperatures\n"
           "progress: bool = False  # bars\ntask: str = 'toy'  # which\nn_boot: int = 10  # " + "x" * 80)
    assert len(src.splitlines()[-1]) == 100
    assert parameter_problems(src, C.EvalConfig) == []


@pytest.mark.parametrize("src,want", [
    ("n_test: str = 64  # held-out problems", ["n_test: annotated str, the config's field is int"]),
    ("temperatures: tuple = [0.0]  # t", ["temperatures: annotated tuple, the config's field is list"]),
    ("n_boot: float = 10  # resamples", ["n_boot: annotated float, the config's field is int"]),
    ("n_test = 64  # held-out problems", ["n_test: annotated None, the config's field is int"]),
    ("n_test: int = 64", ["n_test: no help comment"]),
    ("n_test: int = 64  #   ", ["n_test: no help comment"]),
    ("n_test: int = 64\n# help on the next line", ["n_test: no help comment"]),
    ("n_test: int = 64  # " + "x" * 81, ["n_test: line of 101 characters (max 100)"]),
    ("n_test: str = 64\nn_boot: int = 10  # ok", ["n_test: annotated str, the config's field is int",
                                                 "n_test: no help comment"]),
])
def test_parameter_lint_catches_a_bad_cell(src, want):
    assert parameter_problems(src, C.EvalConfig) == want

