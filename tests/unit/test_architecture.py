"""The package map holds: each stage imports only stages below it, and product code never imports local code.

Stages, lowest first: the root modules, ledger, rollup, reports, alerting, gateway (docs/ARCHITECTURE.md).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGES = ["root", "ledger", "rollup", "reports", "alerting", "gateway"]


def stage_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in STAGES else "root"


def module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, relative imports resolved, `from pkg import module` included."""
    tree = ast.parse(path.read_text())
    package = module_of(path) if path.name == "__init__.py" else module_of(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names if _is_module(f"{base}.{alias.name}")}
    return found


PRODUCT = sorted((ROOT / "chalicelib").rglob("*.py"))


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_stage_imports_only_the_stages_below_it(path):
    mine = STAGES.index(stage_of(module_of(path)))
    upward = [name for name in imports_of(path)
              if name.startswith("chalicelib.") and STAGES.index(stage_of(name)) > mine]
    assert not upward, f"{path.relative_to(ROOT)} imports from a higher stage: {sorted(upward)}"


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: str(p.relative_to(ROOT)))
def test_product_code_never_imports_local_bench_infra_or_app(path):
    outside = [name for name in imports_of(path) if name.split(".")[0] in {"local", "bench", "infra", "app", "tests"}]
    assert not outside, f"{path.relative_to(ROOT)} imports {outside}"


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The rule above can fail: a ledger module importing the gateway is caught."""
    bad = ROOT / "chalicelib" / "ledger" / "_upward_probe.py"
    bad.write_text("from chalicelib.gateway import proxy\nfrom ..reports import usage\n")
    try:
        names = imports_of(bad)
        assert "chalicelib.gateway.proxy" in names and "chalicelib.reports.usage" in names
        with pytest.raises(AssertionError, match="higher stage"):
            test_a_stage_imports_only_the_stages_below_it(bad)
    finally:
        bad.unlink()


def test_settings_are_read_from_the_environment_only_in_settings_py():
    readers = [str(p.relative_to(ROOT)) for p in PRODUCT
               if p.name != "settings.py" and re.search(r"os\.environ|os\.getenv", p.read_text())]
    assert not readers, f"read the environment outside settings.py: {readers}"


def test_only_aws_py_tells_a_failed_condition_by_its_code():
    """Every conditional write goes through `aws.conditional`: no other module catches a failed condition by hand."""
    by_hand = [str(p.relative_to(ROOT)) for p in PRODUCT if p != ROOT / "chalicelib" / "aws.py"
               and re.search(r"ConditionalCheckFailed|TransactionCanceled", p.read_text())]
    assert not by_hand, f"tell a failed condition with aws.conditional, not by hand: {by_hand}"
