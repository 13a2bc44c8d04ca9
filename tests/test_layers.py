"""The import contract: obskit's layers import downwards only, and no module imports itself back.

Read from the source (``ast``), so that an import inside a function counts as much as one at
the top of a module: both run. Imports under ``if TYPE_CHECKING:`` do not run and are left out
(a frozen dataclass in the bottom layer may name a type of the layer above it). Module names
written as strings (``obskit._export.backends``' tables for ``importlib``) count too.
docs/design.md, "The map", says what each layer owns.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import obskit

SRC = Path(obskit.__file__).parent
#: Bottom first. A module belongs to the first entry whose prefix names it or its package.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("obskit._core", "obskit.environment_variables")),
    ("recording", ("obskit._recording", "obskit.logging", "obskit.health")),
    ("export", ("obskit._export",)),
    ("web", ("obskit._web",)),
    ("runtime", ("obskit._runtime",)),
    (
        "surface",
        (
            "obskit.__init__",
            "obskit.__main__",
            "obskit._cli",
            "obskit.asgi",
            "obskit.wsgi",
            "obskit.django",
            "obskit.prometheus",
            "obskit.testing",
            "obskit.pytest_plugin",
        ),
    ),
]


def _module_name(path: Path) -> str:
    parts = ("obskit", *path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 2 else parts)


MODULES = {_module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def _layer(module: str) -> int:
    if module == "obskit":
        module = "obskit.__init__"
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(f"{prefix}.") for prefix in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and to docs/design.md's map")


def _type_checking_nodes(tree: ast.Module) -> set[ast.AST]:
    skipped: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(ast.walk(child))
    return skipped


def _resolve(target: str) -> str:
    """``target`` if it is a module of obskit, else the module it is an attribute of."""
    while target not in MODULES and "." in target:
        target = target.rpartition(".")[0]
    return target


def _imports(module: str) -> Iterator[tuple[str, int]]:
    """(obskit module imported, line) for every import ``module`` can run."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "obskit":
                    yield _resolve(alias.name), node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != "obskit":
                continue
            for alias in node.names:
                yield _resolve(f"{base}.{alias.name}"), node.lineno
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("obskit._")
            and node.value.replace(".", "").replace("_", "").isalnum()
        ):
            yield _resolve(node.value), node.lineno


GRAPH = {module: sorted(set(_imports(module))) for module in MODULES}


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        _layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module: str) -> None:
    mine = _layer(module)
    upward = [
        f"{module}:{line} imports {target} ({LAYERS[_layer(target)][0]} is above {LAYERS[mine][0]})"
        for target, line in GRAPH[module]
        if target != module and _layer(target) > mine
    ]
    assert upward == []


def test_no_module_imports_itself_back() -> None:
    edges = {module: {target for target, _ in GRAPH[module] if target != module} for module in MODULES}
    done: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append([*path[path.index(module) :], module])
            return
        if module in done:
            return
        for target in sorted(edges.get(module, ())):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(edges):
        visit(module, [])
    assert cycles == []


def test_the_contract_sees_lazy_string_and_relative_imports() -> None:
    """The reader itself: an import inside a function and a module named in a string both count."""
    assert ("obskit._web.http", 0) not in GRAPH["obskit._runtime.lifecycle"]
    lifecycle = {target for target, _ in GRAPH["obskit._runtime.lifecycle"]}
    assert {"obskit._web.http", "obskit._export.backends"} <= lifecycle  # imported inside functions
    assert "obskit._export.azure" in {target for target, _ in GRAPH["obskit._export.backends"]}
    state = {target for target, _ in GRAPH["obskit._core.state"]}
    assert "obskit._recording.store" not in state  # under TYPE_CHECKING only
