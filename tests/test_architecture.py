"""The package's import graph: no cycles, and no module reaches into another module's private names."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "fer_ablation"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module name of a `from ... import` (relative imports included)."""
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> list[tuple[str, str | None, ast.AST]]:
    """(imported module, imported name or None, node) for every import of the package in `module`."""
    found = []
    for node in ast.walk(ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.append((submodule, None, node) if submodule in MODULES else (source, alias.name, node))
    return [(m, n, node) for m, n, node in found if m.split(".")[0] == PACKAGE.name]


def _graph() -> dict[str, set[str]]:
    # Importing `a.b.c` runs `a/__init__` and `a/b/__init__` too; those edges matter only when they
    # point back, which the package's own __init__ chains would show as self-loops: skip ancestors.
    graph = {}
    for module in MODULES:
        targets = {m for m, _, _ in _imports(module) if m in MODULES and m != module}
        graph[module] = {t for t in targets if not module.startswith(t + ".")}
    return graph


def test_the_walker_sees_the_package():
    assert {"fer_ablation.config", "fer_ablation.train.training", "fer_ablation.data.datamodule"} <= set(MODULES)
    assert "fer_ablation.config" in _graph()["fer_ablation.train.training"] or \
        "fer_ablation.config" in _graph()["fer_ablation.cli.run"]


def test_import_graph_has_no_cycles():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_module_uses_another_modules_private_names():
    reach_ins = []
    for module in MODULES:
        tree = ast.parse(MODULES[module].read_text())
        aliases = {}  # local name -> package module it stands for
        for imported, name, node in _imports(module):
            if name is not None and _is_private(name) and imported != module:
                reach_ins.append(f"{module}:{node.lineno} from {imported} import {name}")
            if name is None:
                for alias in node.names:
                    if isinstance(node, ast.Import):
                        aliases[alias.asname or alias.name] = alias.name if alias.asname else alias.name.split(".")[0]
                    else:
                        aliases[alias.asname or alias.name] = imported
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _is_private(node.attr):
                target = _dotted(node.value)
                if target in aliases or (target and target.split(".")[0] == PACKAGE.name):
                    reach_ins.append(f"{module}:{node.lineno} {target}.{node.attr}")
    assert reach_ins == [], "private names used across modules: " + "; ".join(reach_ins)


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


@pytest.mark.parametrize("source,expected", [
    ("from fer_ablation.train.training import _fit\n", "from fer_ablation.train.training import _fit"),
    ("from fer_ablation.train import training\ntraining._fit()\n", "training._fit"),
])
def test_the_reach_in_check_catches_both_forms(tmp_path, monkeypatch, source, expected):
    fake = PACKAGE / "_architecture_probe_does_not_exist.py"
    monkeypatch.setitem(MODULES, "fer_ablation.probe", fake)
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source if self == fake else _read(self))
    with pytest.raises(AssertionError, match=expected.replace(".", r"\.")):
        test_no_module_uses_another_modules_private_names()


_read = Path.read_text
