"""The shape issue 13 asks for, checked on the source: small modules, short functions, no cycles, thin pages."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core"
MAX_MODULE_LINES = 420  # "under ~400 lines"
MAX_FUNCTION_LINES = 80


def _core_files() -> list[Path]:
    return sorted(p for p in CORE.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_every_core_module_is_small():
    big = {
        str(p.relative_to(ROOT)): n
        for p in _core_files()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not big, f"modules over {MAX_MODULE_LINES} lines: {big}"


def test_every_core_function_is_short():
    long = []
    for path in _core_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "functions over 80 lines:\n" + "\n".join(long)


def test_classes_are_defined_at_module_level_and_no_globals_tricks():
    bad = []
    for path in _core_files():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                bad += [
                    f"{path.relative_to(ROOT)}:{c.lineno} class {c.name} inside {node.name}"
                    for c in ast.walk(node)
                    if isinstance(c, ast.ClassDef)
                ]
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "globals":
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} globals()")
    assert not bad, "\n".join(bad)


def _imports(path: Path, module: str) -> set[str]:
    """core modules a module reaches: imports at any depth (inside functions too) and dotted
    `importlib.import_module("core....")` strings, so a lazy import cannot hide a circle."""
    out: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("core")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.startswith("core"):
                out.add(base)
                out |= {f"{base}.{a.name}" for a in node.names}
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
        ):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and str(arg.value).startswith("core"):
                out.add(str(arg.value))
            elif isinstance(arg, ast.JoinedStr):  # f"core.training.{name}": the package it reaches into
                head = arg.values[0]
                if isinstance(head, ast.Constant) and str(head.value).startswith("core"):
                    out.add(str(head.value).rstrip("."))
    return out


def _known(target: str, modules: dict[str, Path]) -> str | None:
    """The module a dotted name lands in (a name imported from a module counts as that module)."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in _core_files()}
    graph = {}
    for name, path in modules.items():
        targets = {_known(t, modules) for t in _imports(path, name)}
        graph[name] = {t for t in targets if t and t != name and t != "core"}
    return graph


def test_the_import_graph_counts_lazy_imports_and_import_module_strings(tmp_path):
    """The cycle check below sees what a function-level import or an import_module string reaches."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import importlib\n"
        "def f():\n    from core.training import trainer\n"
        "def g():\n    return importlib.import_module('core.mining.miner')\n"
        "def h(name):\n    return importlib.import_module(f'core.quality.{name}')\n"
    )
    assert _imports(probe, "core.runs.probe") >= {
        "core.training.trainer",
        "core.mining.miner",
        "core.quality",
    }


def test_no_import_cycles_between_core_modules():
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    # a package __init__ re-exporting its own submodules is not a cycle between concepts
    real = [c for c in cycles if len({m.split(".")[1] for m in c}) > 1]
    assert not real, "import cycles:\n" + "\n".join(" -> ".join(c) for c in real)


def test_core_never_imports_streamlit():
    code = (
        "import sys, pkgutil, importlib, core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'core.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(len(sys.modules) > 100, 'streamlit' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "True False"


def test_pages_hold_no_sql_and_call_no_private_core_function():
    bad = []
    for path in (
        sorted((ROOT / "pages").glob("*.py")) + sorted((ROOT / "ui").glob("*.py")) + [ROOT / "app.py"]
    ):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("execute", "executemany", "executescript"):
                bad.append(f"{path.name}:{node.lineno} .{node.attr}(")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("core"):
                bad += [
                    f"{path.name}:{node.lineno} imports {a.name}"
                    for a in node.names
                    if a.name.startswith("_")
                ]
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                root = node.value
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id not in ("st", "self", "np", "pd", "go", "px"):
                    bad.append(f"{path.name}:{node.lineno} {root.id}...{node.attr}")
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if any(
                    node.value.lstrip().upper().startswith(k)
                    for k in ("SELECT ", "INSERT ", "UPDATE ", "DELETE ")
                ):
                    bad.append(f"{path.name}:{node.lineno} SQL text")
    assert not bad, "\n".join(bad)


def test_packages_point_one_way():
    """Between core's packages (runs, training, mining, ...) imports form no circle at all, lazy ones included."""
    top = {}
    for name, targets in _graph().items():
        for t in targets:
            a, b = name.split(".")[1], t.split(".")[1]
            if a != b:
                top.setdefault(a, set()).add(b)
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(top.get(node, ())):
            assert state.get(nxt) != 1, "packages import in a circle: " + " -> ".join([*path, node, nxt])
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2
        order.append(node)

    for name in sorted(top):
        if name not in state:
            visit(name, [])
    assert order.index("runs") < order.index("training") and "runs" not in top.get("store", set())
    assert not top.get("runs", set()) - {"errors", "progress", "store"}, (
        "core.runs must know no domain package"
    )


def test_core_never_reaches_the_ui_side():
    """core is usable from a script: it imports neither ui/ nor pages/ (figures and widgets live there)."""
    bad = []
    for path in _core_files():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            bad += [
                f"{path.relative_to(ROOT)}:{node.lineno} {n}"
                for n in names
                if n.split(".")[0] in ("ui", "pages")
            ]
    assert not bad, "\n".join(bad)
