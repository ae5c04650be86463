"""No float on the money path (#26): admin amounts, thresholds, percentages and sums stay Decimal.

A float keeps about 16 significant digits: `float()` applied to anything named like money would round what an
admin typed or what was summed. This scan reads the product code's syntax tree, so it cannot be fooled by a
comment, and it also looks at what a comprehension iterates (`float(t) for t in item.thresholds`).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = sorted((ROOT / "chalicelib").rglob("*.py"))
MONEY_NAMES = re.compile(r"cost|usd|spen[dt]|amount|price|percent|threshold|limit|balance|budget|today|history",
                         re.IGNORECASE)


def floats_on_money(source: str) -> list[str]:
    """`float(...)` calls whose argument, or the iterable a comprehension feeds it from, names money."""
    tree = ast.parse(source)
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float"):
            continue
        names = [name for arg in node.args for name in _names(arg)]
        up = parents.get(node)
        while up is not None:
            if isinstance(up, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
                names += [name for gen in up.generators for name in _names(gen.iter)]
            up = parents.get(up)
        if any(MONEY_NAMES.search(name) for name in names):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def _names(expression: ast.AST) -> list[str]:
    """The names an expression reads: variables, attributes and the string keys it subscripts with (not the
    text of other strings: a setting's env name is no amount)."""
    names = []
    for node in ast.walk(expression):
        if isinstance(node, ast.Name):
            names.append(node.id)
        elif isinstance(node, ast.Attribute):
            names.append(node.attr)
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            names.append(str(node.slice.value))
    return names


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_float_is_applied_to_money(path):
    found = floats_on_money(path.read_text())
    assert not found, f"{path.relative_to(ROOT)} turns money into a float: {found}"


@pytest.mark.parametrize("source", [
    "x = float(result.percent)",
    "x = [float(t) for t in item.thresholds]",
    "x = sorted(rows, key=lambda r: float(r['cost_usd']))",
    "x = [float(h) for h in spend.history]",
])
def test_the_scan_sees_money_turned_into_a_float(source):
    assert floats_on_money(source)


@pytest.mark.parametrize("source", [
    "x = float(_env('TOLLGATE_BUDGET_CACHE_SECONDS', '5'))", "x = float('inf')", "x = float(latency_ms)",
])
def test_the_scan_leaves_durations_and_settings_alone(source):
    assert not floats_on_money(source)
