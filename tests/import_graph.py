"""The import graph of `src/avgate`, read from the source (lazy imports inside functions included).

`imports(module)` names the avgate modules a module imports anywhere in its body; imports under
`if TYPE_CHECKING:` are left out (they never run). An `importlib.import_module(f"avgate.x.{...}")`
with a constant prefix counts as importing every module under that prefix.

>>> "avgate.declare" in imports("avgate.config")
True
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "avgate"


@functools.cache
def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its `__init__`)."""
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _resolve(name: str) -> str | None:
    """`name`, or the longest dotted prefix of it that is a module."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, skipping the bodies of `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _type_checking(node):
            yield from (n for child in node.orelse for n in [child, *_walk(child)])
            continue
        yield node
        yield from _walk(node)


def _dynamic_prefix(node: ast.Call) -> str | None:
    """The constant module prefix of `importlib.import_module(...)`, if any."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name != "import_module" or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value)
    return None


@functools.cache
def tree(module: str) -> ast.Module:
    path = modules()[module]
    return ast.parse(path.read_text(), str(path))


@functools.cache
def imports(module: str) -> frozenset[str]:
    """The avgate modules `module` imports, each named as precisely as the source allows."""
    return imports_in(tree(module), module)


def imports_in(part: ast.AST, module: str) -> frozenset[str]:
    """The avgate modules imported anywhere under `part`, a piece of `module`'s source."""
    is_package = modules()[module].name == "__init__.py"
    found: set[str] = set()
    for node in _walk(part):
        if isinstance(node, ast.Import):
            found.update(filter(None, (_resolve(a.name) for a in node.names)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                target = _resolve(f"{base}.{alias.name}") if base else None
                if target == base or target is None:
                    target = _resolve(base)
                if target:
                    found.add(target)
        elif isinstance(node, ast.Call):
            prefix = _dynamic_prefix(node)
            if prefix and prefix.startswith(PACKAGE):
                found.update(m for m in modules() if m.startswith(prefix))
    found.discard(module)
    return frozenset(m for m in found if m.split(".")[0] == PACKAGE)


def parents(module: str) -> list[str]:
    """The packages whose `__init__` runs when `module` is imported.

    >>> parents("avgate.encoders.logmel")
    ['avgate', 'avgate.encoders']
    """
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def closure(*starts: str) -> set[str]:
    """Every module that runs when `starts` are imported (package `__init__`s included)."""
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += [*imports(module), *parents(module)]
    return seen


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in imports(module):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(modules()):
        if module not in index:
            visit(module)
    return found


def has_code(module: str) -> bool:
    """False for a module holding nothing but a docstring."""
    body = tree(module).body
    return any(not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)) for n in body)
