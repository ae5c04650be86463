"""No test computes a check and drops it: a bare `x == y`, `not x` or `check(x) and y` as a statement cannot fail
(tests/e2e/test_sdks.py once had `assert_openai_kinds(call) and not call["stream"]`, whose second half never ran)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKS = (ast.BoolOp, ast.Compare, ast.UnaryOp)


def dropped_checks(source: str) -> list[str]:
    return [f"{node.lineno}: {ast.unparse(node)}" for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Expr) and isinstance(node.value, CHECKS)]


@pytest.mark.parametrize("path", sorted((ROOT / "tests").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_check_is_asserted(path):
    assert not dropped_checks(path.read_text()), f"{path.relative_to(ROOT)}: a check that cannot fail"


def test_the_clause_that_could_not_fail_is_seen():
    assert dropped_checks('assert_openai_kinds(call) and not call["stream"]\n') == [
        "1: assert_openai_kinds(call) and (not call['stream'])"]
    assert dropped_checks("assert_openai_kinds(call, stream=False)\nassert x == 1\n") == []
