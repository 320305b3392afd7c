"""The shape every module of api/ follows: handlers are module functions, SQL calls are named constants
with `%(name)s` placeholders (docs/conventions.md, "Python rules")."""

from __future__ import annotations

import ast
import re

from tests.test_foundation_imports import ROOT as API_DIR

CALLS = {"fetch", "fetch_one", "fetch_val", "execute", "executemany"}
POSITIONAL = re.compile(r"(?<!%)%s")
SQL_START = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CALL)\b", re.IGNORECASE)


def modules() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(API_DIR.parent)): ast.parse(path.read_text()) for path in API_DIR.rglob("*.py")
    }


def inline_sql(tree: ast.Module) -> list[int]:
    """Lines where a database call is given its SQL as a string written in place."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CALLS
        and any(isinstance(arg, ast.Constant) and isinstance(arg.value, str) for arg in node.args[:2])
    ]


def positional_sql(tree: ast.Module) -> list[int]:
    """Lines of SQL text with a positional `%s` placeholder."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and SQL_START.match(node.value)
        and POSITIONAL.search(node.value)
    ]


def test_sql_calls_are_named_constants_with_named_placeholders() -> None:
    found = {name: (inline_sql(tree), positional_sql(tree)) for name, tree in modules().items()}
    assert {name: lines for name, lines in found.items() if lines != ([], [])} == {}


def test_handlers_are_module_functions_not_controllers() -> None:
    controllers = {
        name: [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
               and any(getattr(base, "id", getattr(base, "attr", None)) == "Controller" for base in node.bases)]
        for name, tree in modules().items()
    }  # fmt: skip
    assert {name: found for name, found in controllers.items() if found} == {}


def test_the_checks_can_fail() -> None:
    tree = ast.parse(
        'async def h(db):\n    await db.fetch_val(None, "SELECT x.y(%s)", (1,))\nclass C(Controller): ...'
    )
    assert inline_sql(tree) == [2] and positional_sql(tree) == [2]
