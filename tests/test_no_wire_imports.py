"""Issue 16: the core, the dispatcher and the plugins work on a protocol-neutral model; nothing outside an
adapter (``callgate.protocols``) imports a wire type.

Allowed: ``hookspecs.py`` under ``TYPE_CHECKING`` (annotations), ``__init__.py`` (re-exports ``Svaml`` for
plugin authors) and ``builtin/router.py`` (its configuration syntax is v1 SVAML).
"""

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "core"
WIRE_MODULES = frozenset({"callgate.protocols.v1.svaml", "callgate.protocols.v1.wire", "callgate.protocols.v2.wire"})
ALLOWED = frozenset({"__init__.py", "builtin/router.py"})


def _package(relative: str) -> str:
    """The package a module of ``core/`` (``builtin/router.py``) is in: ``callgate.builtin``."""
    return ".".join(("callgate", *Path(relative).parts[:-1]))


def _absolute(node: ast.ImportFrom, relative: str) -> str:
    if not node.level:
        return node.module or ""
    base = _package(relative).split(".")
    base = base[:len(base) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """The ids of the nodes under ``if TYPE_CHECKING:``."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for statement in node.body:
                inside.update(id(n) for n in ast.walk(statement))
    return inside


def wire_imports(source: str, relative: str) -> list[str]:
    """The wire modules the module ``relative`` to ``core/`` imports (outside ``TYPE_CHECKING`` for
    ``hookspecs.py``), as ``line: module``."""
    tree = ast.parse(source, relative)
    exempt = _type_checking_nodes(tree) if relative == "hookspecs.py" else set()
    found = []
    for node in ast.walk(tree):
        if id(node) in exempt:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, relative)
            names = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found += [f"{node.lineno}: {name}" for name in names if name in WIRE_MODULES]
    return found


def _read(relative: str) -> str:
    return (CORE / relative).read_text()


#: Every module of ``core/`` outside ``core/protocols/`` and the allowed ones, relative to ``core/``.
CHECKED = sorted(p.relative_to(CORE).as_posix() for p in CORE.rglob("*.py")
                 if p.relative_to(CORE).parts[0] != "protocols" and p.relative_to(CORE).as_posix() not in ALLOWED)


@pytest.mark.parametrize("relative", CHECKED)
def test_no_module_outside_the_adapters_imports_a_wire_type(relative):
    assert wire_imports(_read(relative), relative) == [], \
        f"core/{relative} imports a wire module; ask the call's Renderer (callgate.plan) instead"


def test_the_check_sees_every_module_and_every_spelling_of_a_wire_import():
    """The check is not vacuous: it covers the dispatcher, sees relative, absolute and submodule imports, and
    exempts TYPE_CHECKING in hookspecs.py only."""
    assert {"dispatch.py", "combine.py", "results.py", "pipeline.py", "hookspecs.py"} <= set(CHECKED)
    assert wire_imports(_read("builtin/router.py"), "builtin/router.py")     # the allowed one imports the v1 parser
    assert wire_imports(_read("hookspecs.py"), "hookspecs.py") == []
    body = ("from typing import TYPE_CHECKING\n"
            "from .protocols.v2.wire import V2Answer\n"
            "import callgate.protocols.v1.svaml\n"
            "from .protocols.v1 import wire\n"
            "if TYPE_CHECKING:\n"
            "    from .protocols.v1.svaml import Svaml\n")
    assert [line.split(": ")[1] for line in wire_imports(body, "dispatch.py")] == [
        "callgate.protocols.v2.wire", "callgate.protocols.v1.svaml", "callgate.protocols.v1.wire",
        "callgate.protocols.v1.svaml"]
    assert [line.split(": ")[1] for line in wire_imports(body, "hookspecs.py")] == [
        "callgate.protocols.v2.wire", "callgate.protocols.v1.svaml", "callgate.protocols.v1.wire"]
    assert wire_imports("from ..protocols.v2.wire import V2Answer\n", "builtin/caller_id.py") == [
        "1: callgate.protocols.v2.wire"]
