"""The house's rules, read from the code: imports run one way (no circles, nothing imports a
room above it), no module is longer than one idea, core never imports streamlit, and no code
outside the engines asks which engine it runs on.

Every import is read, at module level and inside functions (``import x``, ``from x import y``,
relative ones resolved); the rooms and their order are docs/architecture.md's.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

# The rooms, lowest first: a module may import from its own room and the rooms below it.
LAYERS = [
    ("base", ["core.errors", "core.format", "core.resample", "core.features", "core.lgbm", "core.validation", "core.joins",
              "core.engines.base"]),
    ("log", ["core.schema", "core.io"]),
    ("engines", ["core.engines"]),
    ("data", ["core.simulate", "core.datasets", "core.workspace"]),
    ("measure", ["core.diagnostics", "core.evaluation"]),
    ("decide", ["core.uplift", "core.decision", "core.design", "core.monitoring", "core.ope"]),
    ("present", ["core.charts", "core.report"]),
    ("commands", ["core.commands"]),
    ("cli", ["core.cli", "core.__main__", "core"]),
    ("ui", ["ui"]),
    ("pages", ["pages", "app"]),
]
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    files = [*ROOT.glob("core/**/*.py"), *ROOT.glob("ui/**/*.py"), *ROOT.glob("pages/*.py"), ROOT / "app.py"]
    return {_module_name(f): f for f in sorted(files) if ".venv" not in f.parts}


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``module`` imports, wherever in the file the import is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path, node)
            # ``from package import module`` imports the submodule
            names = [f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {m: imports_of(m, p, known) for m, p in modules.items()}


def layer_of(module: str) -> int:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank is not None, f"module {module} is in no room of LAYERS"
    return rank


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_imports_form_no_circle():
    assert circles(import_graph()) == []


def test_no_module_imports_a_room_above_it():
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
              for m, targets in import_graph().items() for t in sorted(targets) if layer_of(t) > layer_of(m)]
    assert upward == []


def test_the_checker_sees_imports_inside_functions_and_relative_ones(tmp_path):
    known = {"core.a", "core.b", "core.pkg", "core.pkg.c"}
    source = tmp_path / "a.py"
    source.write_text("def f():\n    from .b import x\n    from .pkg import c\n    import core.pkg.c\n")
    assert imports_of("core.a", source, known) == {"core.b", "core.pkg.c"}
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("core.engines.base") < layer_of("core.schema") < layer_of("core.engines.spark.read")


@pytest.mark.parametrize("folder", ["core", "ui", "pages"])
def test_no_module_is_longer_than_one_idea(folder):
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / folder).rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_the_cli_module_only_assembles_the_commands():
    assert len((ROOT / "core" / "cli.py").read_text(encoding="utf-8").splitlines()) <= 200


def test_core_never_imports_streamlit():
    bad = [name for name, targets in ((m, _third_party(p)) for m, p in project_modules().items() if m.startswith("core"))
           if "streamlit" in targets]
    assert bad == []


def _third_party(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


ENGINE_NAME = re.compile(r"""(==|!=)\s*["'](spark|local)["']|["'](spark|local)["']\s*(==|!=)""")


def test_only_the_engines_know_which_engine_runs():
    asking = [f"{p.relative_to(ROOT)}:{i}" for m, p in project_modules().items() if not m.startswith("core.engines")
              for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1) if ENGINE_NAME.search(line)]
    assert asking == []
