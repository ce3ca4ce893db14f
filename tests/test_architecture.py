"""The package's import graph: layers that import only downwards, no cycles, and no module reaching into
another module's private names."""

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


# The layers, top to bottom: a module may import from its own layer and from the rows below its own. Layers that
# share a row are independent (neither imports the other). A layer is a folder of the package, or named modules.
# ARCHITECTURE.md's layer table says what each does.
COMMANDS = "commands"  # fer_ablation/<command>.py for each fer_ablation/cli/<command>.py: `python -m` names
LAYERS: list[dict[str, tuple[str, ...]]] = [
    {COMMANDS: ()},
    {"cli": ("fer_ablation.cli",)},
    {"inference": ("fer_ablation.inference",)},
    {"train": ("fer_ablation.train",), "report": ("fer_ablation.report",)},
    {"records": ("fer_ablation.records",)},
    {"data": ("fer_ablation.data",), "models": ("fer_ablation.models",)},
    {"config": ("fer_ablation.config",)},
    {"foundation": ("fer_ablation", "fer_ablation.atomic", "fer_ablation.classes", "fer_ablation.statistics")},
]


def _commands() -> set[str]:
    return {"fer_ablation." + m.rsplit(".", 1)[1] for m in MODULES if m.startswith("fer_ablation.cli.")}


def _layer_of(module: str) -> tuple[int, str] | None:
    """(row, layer) of a module: the layer whose folder holds it or which names it; None when no layer does."""
    if module in _commands():
        return 0, COMMANDS
    found = [(row, name, prefix) for row, layers in enumerate(LAYERS) for name, prefixes in layers.items()
             for prefix in prefixes
             if module == prefix or (prefix != PACKAGE.name and module.startswith(prefix + "."))]
    if not found:
        return None
    row, name, _ = max(found, key=lambda f: len(f[2]))  # the most specific entry
    return row, name


def test_every_module_is_in_a_layer():
    """A new module has to be placed in the table (or in a layer's folder) before it can be imported from."""
    missing = sorted(m for m in MODULES if _layer_of(m) is None)
    assert missing == [], f"modules in no layer of LAYERS (add them to a layer's folder or to the table): {missing}"


def test_layers_import_only_downwards():
    violations = []
    for module in MODULES:
        row, layer = _layer_of(module)
        for imported, _, node in _imports(module):
            if imported not in MODULES or imported == module or module.startswith(imported + "."):
                continue  # a package's own __init__ chain, or a name that is no module of the package
            target_row, target = _layer_of(imported)
            if target != layer and target_row <= row:
                violations.append(f"{module}:{node.lineno} ({layer}) imports {imported} ({target})")
    assert violations == [], "imports that do not go down the layers: " + "; ".join(violations)


def test_commands_only_call_their_cli():
    """`fer_ablation/<command>.py` exists for every cli module and imports nothing but it."""
    assert {"fer_ablation.run", "fer_ablation.evaluate", "fer_ablation.collect"} <= _commands()
    wrong = {}
    for command in sorted(_commands()):
        imported = {m for m, _, _ in _imports(command)} if command in MODULES else {"(no such module)"}
        if imported != {command.replace("fer_ablation.", "fer_ablation.cli.", 1)}:
            wrong[command] = sorted(imported)
    assert wrong == {}, f"commands that are not a call of their cli module: {wrong}"


@pytest.mark.parametrize("name,source,expected", [
    ("fer_ablation.data.probe", "from fer_ablation.train import training\n",
     "fer_ablation.data.probe:1 (data) imports fer_ablation.train.training (train)"),
    ("fer_ablation.report.probe", "from fer_ablation.train.training import train\n",
     "fer_ablation.report.probe:1 (report) imports fer_ablation.train.training (train)"),
])
def test_the_layer_check_catches_an_upward_or_sideways_import(monkeypatch, name, source, expected):
    fake = PACKAGE / "_architecture_probe_does_not_exist.py"
    monkeypatch.setitem(MODULES, name, fake)
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source if self == fake else _read(self))
    with pytest.raises(AssertionError, match=expected.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        test_layers_import_only_downwards()


def test_the_layer_table_covers_a_new_top_level_module(monkeypatch):
    monkeypatch.setitem(MODULES, "fer_ablation.newcomer", PACKAGE / "newcomer.py")
    with pytest.raises(AssertionError, match="fer_ablation.newcomer"):
        test_every_module_is_in_a_layer()
