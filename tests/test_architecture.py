"""The way through the house: the engine imports none of the packages built on it, the network
spec imports no package that reads its own section, the modules import each other without a
cycle, and no module is a sprawl."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dtb", "atlas", "assimilation", "bridges", "cluster")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path, top_level_only: bool) -> set[str]:
    """Modules of this project that ``path`` imports (anywhere in it, or only at module level)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] in PACKAGES}


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
            if "examples" not in p.parts and "assets" not in p.parts}


def test_the_engine_imports_nothing_built_on_it():
    forbidden = ("dtb.bold", "dtb.task", "dtb.runs", "dtb.cli", "atlas", "bridges", "assimilation", "cluster")
    for path in (ROOT / "dtb" / "engine").glob("*.py"):
        bad = [m for m in imports(path, top_level_only=False) if m.startswith(forbidden)]
        assert not bad, f"{path.name} imports {bad}"


def test_the_spec_imports_no_section_reader():
    bad = [m for m in imports(ROOT / "dtb" / "spec.py", top_level_only=False)
           if m.startswith(("dtb.bold", "dtb.task", "atlas", "bridges", "assimilation", "dtb.engine"))]
    assert not bad, bad


def test_no_import_cycle():
    modules = all_modules()
    graph = {}
    for name, path in modules.items():
        targets = set()
        for m in imports(path, top_level_only=True):
            while m and m not in modules:          # "pkg.mod.name" -> "pkg.mod"
                m = m.rpartition(".")[0]
            if m and m != name:
                targets.add(m)
        graph[name] = targets
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2
    for name in graph:
        if name not in state:
            visit(name, [name])


def test_no_module_is_a_sprawl():
    """No module over 700 lines (the largest was 1,242: dtb/cli.py)."""
    sizes = {name: len(path.read_text().splitlines()) for name, path in all_modules().items()}
    big = {n: s for n, s in sizes.items() if s > 700}
    assert not big, big
