"""The package map holds: each stage imports only the stages it stands on, and product code never imports local code.

Stages in flow order (docs/ARCHITECTURE.md): the root modules; the ledger; the gateway and the rollup side by side
on the ledger (neither imports the other); the reports on the rollup; the alerting on top of them all.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAY_IMPORT = {  # each stage, and the stages below it that it may import (besides itself)
    "root": set(),
    "ledger": {"root"},
    "gateway": {"ledger", "root"},
    "rollup": {"ledger", "root"},
    "reports": {"rollup", "ledger", "root"},
    "alerting": {"reports", "rollup", "gateway", "ledger", "root"},
}
BELOW_ALERTING = ("gateway", "rollup", "ledger")


def stage_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in MAY_IMPORT else "root"


def module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports_of(path: Path, module: str | None = None) -> set[str]:
    """Every module a file imports, relative imports resolved, `from pkg import module` included. `module`: the
    file's name as a module, when it is not under ROOT (a probe)."""
    tree = ast.parse(path.read_text())
    module = module or module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
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


def assert_only_stages_below(path: Path, module: str | None = None) -> None:
    module = module or module_of(path)
    mine = stage_of(module)
    outside = sorted(name for name in imports_of(path, module)
                     if name.startswith("chalicelib.") and stage_of(name) not in {mine, *MAY_IMPORT[mine]})
    assert not outside, f"{module} ({mine}) imports from a stage above or beside it: {outside}"


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_stage_imports_only_the_stages_below_it(path):
    assert_only_stages_below(path)


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: str(p.relative_to(ROOT)))
def test_product_code_never_imports_local_bench_infra_or_app(path):
    outside = [name for name in imports_of(path) if name.split(".")[0] in {"local", "bench", "infra", "app", "tests"}]
    assert not outside, f"{path.relative_to(ROOT)} imports {outside}"


@pytest.mark.parametrize("module, source", [
    ("chalicelib.ledger._probe", "from chalicelib.gateway import proxy\n"),  # up
    ("chalicelib.ledger._probe", "from ..reports import usage\n"),  # up, relative
    ("chalicelib.gateway._probe", "def later():\n    from chalicelib.alerting import listeners\n"),  # up, lazily
    ("chalicelib.gateway._probe", "from chalicelib.rollup import store\n"),  # beside
    ("chalicelib.rollup._probe", "from ..gateway import limits\n"),  # beside, relative
    ("chalicelib.reports._probe", "from chalicelib.gateway import pricing\n"),  # not under it
], ids=["ledger-gateway", "ledger-reports", "gateway-alerting", "gateway-rollup", "rollup-gateway", "reports-gateway"])
def test_the_checker_sees_an_import_from_above_or_beside(tmp_path, module, source):
    """The rule above can fail. The probe is written to tmp_path and checked as if it were `module`: nothing is
    written under chalicelib/, where a test run killed midway would leave it."""
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    with pytest.raises(AssertionError, match="above or beside"):
        assert_only_stages_below(probe, module)


def test_the_checker_resolves_relative_imports_and_modules_named_in_from(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from chalicelib.gateway import proxy\nfrom ..reports import usage\nfrom . import calllog\n")
    assert {"chalicelib.gateway.proxy", "chalicelib.reports.usage", "chalicelib.ledger.calllog"} <= imports_of(
        probe, "chalicelib.ledger._probe")
    assert_only_stages_below(probe, "chalicelib.alerting._probe")  # the same imports are fine at the top


def test_no_stage_below_the_alerting_names_it():
    """What `grep -r "chalicelib.alerting" chalicelib/gateway chalicelib/rollup chalicelib/ledger` finds (its dot
    matches a '/' too): nothing, not an import, not a lazy one, not a path in a docstring. Caches aside."""
    pattern = re.compile(r"chalicelib.alerting")
    found = [f"{path.relative_to(ROOT)}:{number}"
             for stage in BELOW_ALERTING for path in sorted((ROOT / "chalicelib" / stage).rglob("*"))
             if path.is_file() and "__pycache__" not in path.parts
             for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1)
             if pattern.search(line)]
    assert not found, f"below the alerting, yet naming it: {found}"


def test_settings_are_read_from_the_environment_only_in_settings_py():
    readers = [str(p.relative_to(ROOT)) for p in PRODUCT
               if p.name != "settings.py" and re.search(r"os\.environ|os\.getenv", p.read_text())]
    assert not readers, f"read the environment outside settings.py: {readers}"


def test_only_aws_py_tells_a_failed_condition_by_its_code():
    """Every conditional write goes through `aws.conditional`: no other module catches a failed condition by hand."""
    by_hand = [str(p.relative_to(ROOT)) for p in PRODUCT if p != ROOT / "chalicelib" / "aws.py"
               and re.search(r"ConditionalCheckFailed|TransactionCanceled", p.read_text())]
    assert not by_hand, f"tell a failed condition with aws.conditional, not by hand: {by_hand}"


def test_pynamodb_models_live_only_in_a_models_module():
    """Each package that owns a table's items defines their pynamodb models (and indexes) in its models.py: no
    feature module defines one of its own."""
    bases = {"Model", "GlobalSecondaryIndex", "LocalSecondaryIndex"}
    elsewhere = [f"{path.relative_to(ROOT)}:{node.name}" for path in PRODUCT if path.name != "models.py"
                 for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ClassDef)
                 and {getattr(base, "id", getattr(base, "attr", None)) for base in node.bases} & bases]
    assert not elsewhere, f"pynamodb models outside a models.py: {elsewhere}"


# --- package faces ------------------------------------------------------------------------------------------

def face_of(package: str) -> set[str]:
    """The names a stage package offers others: its __init__.py's MODULES and NAMES."""
    tree = ast.parse((ROOT / "chalicelib" / package / "__init__.py").read_text())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id == "MODULES":
                found |= {element.value for element in node.value.elts}
            elif node.targets[0].id == "NAMES":
                found |= {key.value for key in node.value.keys}
    return found


def reaches_past_a_face(path: Path, module: str | None = None) -> list[str]:
    """Imports of another stage package that go around its face: into one of its modules, or for a name it
    does not offer."""
    module = module or module_of(path)
    mine = stage_of(module) if module.startswith("chalicelib.") else "app"
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([(alias.name, None) for alias in node.names] if isinstance(node, ast.Import) else
                 [(node.module or "", [alias.name for alias in node.names])] if isinstance(node, ast.ImportFrom)
                 and not node.level else [])
        for target, imported in names:
            parts = target.split(".")
            if len(parts) < 2 or parts[0] != "chalicelib" or parts[1] not in MAY_IMPORT or parts[1] in (mine, "root"):
                continue
            if len(parts) > 2:
                found.append(f"{target} (a module of {parts[1]}, behind its face)")
            else:
                found += [f"{target}.{name} (not in its face)" for name in imported or () if name not in face_of(parts[1])]
    return found


@pytest.mark.parametrize("path", [*PRODUCT, ROOT / "app.py"], ids=lambda p: str(p.relative_to(ROOT)))
def test_other_packages_import_a_stage_only_through_its_face(path):
    outside = reaches_past_a_face(path)
    assert not outside, f"{path.relative_to(ROOT)} reaches past a package's face: {outside}"


def test_the_face_checker_sees_a_reach_into_a_module_and_a_name_not_offered(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from chalicelib.ledger.calllog import call_view\nfrom chalicelib.ledger import new_call_id\n"
                     "from chalicelib.ledger import calllog\nfrom chalicelib.alerting.rules import Rules\n")
    found = reaches_past_a_face(probe, "chalicelib.alerting._probe")
    assert found == ["chalicelib.ledger.calllog (a module of ledger, behind its face)",
                     "chalicelib.ledger.new_call_id (not in its face)"]
