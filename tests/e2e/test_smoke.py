"""`make smoke` as a deployer runs it (the real make target), against the local stack: every check passes,
a broken target fails with a FAIL line; and the STAGE inputs (CloudFormation outputs, SSM) against moto."""
import os
import subprocess

import boto3
import pytest
from moto import mock_aws

from infra import smoke
from local.stack import free_port
from tests.conftest import ADMIN_KEY, ROOT

CHECKS = ("health (API)", "health (dashboard)", "gateway key", "call (SDK)", "stream (SDK)", "trailer",
          "call by id", "rollup", "key revoked", "revoked key refused")


def run_smoke(base_url: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "TOLLGATE_ADMIN_KEY": ADMIN_KEY, "SMOKE_ROLLUP_SECONDS": "20",
               "SMOKE_REVOKE_SECONDS": "15", **env}
    return subprocess.run(["make", "--no-print-directory", "smoke", f"BASE_URL={base_url}"], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=240)


def check_lines(stdout: str) -> dict[str, str]:
    """Each check's status (`ok`, `FAIL`, `skip`) by name."""
    found = {}
    for line in stdout.splitlines():
        status, _, rest = line.partition(" ")
        name = next((n for n in CHECKS if rest.lstrip().startswith(n)), None)
        if status in ("ok", "FAIL", "skip") and name:
            found[name] = status
    return found


def test_smoke_passes_against_the_local_stack(stack):
    result = run_smoke(stack.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert check_lines(result.stdout) == {name: "ok" for name in CHECKS}, result.stdout
    assert "first event" in result.stdout and "all checks passed" in result.stdout
    assert ADMIN_KEY not in result.stdout + result.stderr and "tg-" not in result.stdout + result.stderr
    smoke_keys = [k for k in stack.admin("GET", "/admin/keys").json()["keys"] if k["account"] == "smoke"]
    assert smoke_keys and not any(k["active"] for k in smoke_keys)  # the temporary key was revoked


def test_smoke_fails_with_a_wrong_admin_key(stack):
    result = run_smoke(stack.url, TOLLGATE_ADMIN_KEY="not-the-admin-key")
    assert result.returncode != 0
    lines = check_lines(result.stdout)
    assert lines["health (API)"] == "ok" and lines["gateway key"] == "FAIL", result.stdout
    assert lines["trailer"] == "skip" and set(lines) == set(CHECKS)
    assert "Traceback" not in result.stderr


def test_smoke_fails_fast_where_nothing_listens():
    result = run_smoke(f"http://127.0.0.1:{free_port()}")
    assert result.returncode != 0
    assert "FAIL health (API): cannot connect" in result.stdout, result.stdout
    assert "Traceback" not in result.stderr


@mock_aws
def test_stage_reads_the_stack_outputs_and_the_admin_key_from_ssm(monkeypatch):
    monkeypatch.delenv("TOLLGATE_ADMIN_KEY")
    boto3.client("cloudformation").create_stack(StackName="tollgate-dev", TemplateBody="""{
      "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
      "Outputs": {"EndpointURL": {"Value": "https://abc.execute-api.us-east-1.amazonaws.com/api/"},
                  "DashboardURL": {"Value": "https://d1.cloudfront.net"}}}""")
    boto3.client("ssm").put_parameter(Name="/tollgate/dev/admin-key", Value="s3cret", Type="SecureString")
    target = smoke.resolve(None, "dev")
    assert target == smoke.Target("https://abc.execute-api.us-east-1.amazonaws.com/api", "https://d1.cloudfront.net",
                                  "/", "s3cret")


@mock_aws
@pytest.mark.parametrize("stack_exists, needle", [(False, "stack tollgate-dev does not exist in us-east-1"),
                                                  (True, "SSM parameter /tollgate/dev/admin-key is missing")])
def test_stage_input_errors_are_one_line(monkeypatch, capsys, stack_exists, needle):
    monkeypatch.delenv("TOLLGATE_ADMIN_KEY")
    if stack_exists:
        boto3.client("cloudformation").create_stack(StackName="tollgate-dev", TemplateBody="""{
          "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
          "Outputs": {"EndpointURL": {"Value": "https://a/api/"}, "DashboardURL": {"Value": "https://d"}}}""")
    assert smoke.main(["--stage", "dev"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and needle in err, err
