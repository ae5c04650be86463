"""infra/ without packaging: stages (and creating one), which archive objects are worth Glacier IR, and how a
function's grants become its role's policy."""
import json

import pytest

from infra import permissions, stages
from infra.template import smallest_object_worth_tiering


@pytest.fixture
def config(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    path.write_text(stages.CONFIG.read_text())
    monkeypatch.setattr(stages, "CONFIG", path)
    return path


def test_a_new_stage_is_one_command_and_follows_its_name(config):
    stages.add("prod")
    prod = stages.load("prod")
    dev = stages.load("dev")
    assert prod.chalice["environment_variables"]["TOLLGATE_STAGE"] == "prod"
    assert prod.function_config("api_handler")["environment_variables"] == {
        "TOLLGATE_ADMIN_KEY_PARAMETER": "/tollgate/prod/admin-key"}
    assert "/tollgate/dev/" not in json.dumps(prod.chalice)
    assert prod.deploy == dev.deploy and prod.tracing == dev.tracing
    with pytest.raises(stages.StageError, match="already exists"):
        stages.add("prod")


@pytest.mark.parametrize("name, message", [
    ("prod", "create it with `.venv/bin/python -m infra.stages add prod`"),
    ("local", "the local stack's"),
    ("Prod_1", "lowercase letters"),
    ("a" * 21, "1-20"),
])
def test_a_stage_that_cannot_be_packaged_says_why_in_one_line(config, name, message):
    with pytest.raises(stages.StageError) as caught:
        stages.load(name)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_deploy_settings_are_checked(config):
    raw = json.loads(config.read_text())
    raw["stages"]["dev"]["tollgate"] = {"log_retention_days": 31}
    config.write_text(json.dumps(raw))
    with pytest.raises(stages.StageError, match="log_retention_days must be one of"):
        stages.load("dev")
    raw["stages"]["dev"]["tollgate"] = {"retention": 3}
    config.write_text(json.dumps(raw))
    with pytest.raises(stages.StageError, match="unknown deploy settings"):
        stages.load("dev")


def test_glacier_ir_takes_small_objects_only_when_the_retention_pays_for_them():
    """Glacier IR bills 128 KB and 90 days at least, and each transition: short retentions keep everything in
    Standard, longer ones move ever smaller objects, never below what Standard would cost less to keep."""
    assert smallest_object_worth_tiering(90) is None and smallest_object_worth_tiering(119) is None
    sizes = [smallest_object_worth_tiering(days) for days in (120, 200, 365, 730, 2557)]
    assert sizes == sorted(sizes, reverse=True)
    assert 100 * 1024 < smallest_object_worth_tiering(365) < 128 * 1024  # one year: objects from ~105 KB
    assert 30 * 1024 < smallest_object_worth_tiering(2557) < 40 * 1024  # seven years: from ~33 KB
    assert smallest_object_worth_tiering(120) > 128 * 1024  # a short stay: only big objects repay the transition


def test_grants_render_one_statement_per_resource_and_slack_only_when_named():
    digest = permissions.policy("DailyDigest", "/aws/lambda/tollgate-${Stage}-daily_digest", tracing=False)
    body = digest["PolicyDocument"]["Statement"]
    plain = [s for s in body if "Fn::If" not in s]
    conditional = [s["Fn::If"] for s in body if "Fn::If" in s]
    assert {s["Sid"] for s in plain} == {"OwnLogGroupOnly", "AggregatesTable", "AggregatesTableIndexByKind",
                                         "AlertsTopic", "BudgetsTable", "DeliveriesTable", "DeliveriesTableIndexByStatus"}
    # its only secret is the Slack URL: reading and decrypting it exist only when the stack names one
    assert [(c[0], c[1]["Sid"], c[2]) for c in conditional] == [
        (permissions.HAS_SLACK, "DecryptThroughSsmOnly", {"Ref": "AWS::NoValue"}),
        (permissions.HAS_SLACK, "SsmSlackWebhookUrl", {"Ref": "AWS::NoValue"})]
    assert conditional[1][1]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${SlackWebhookParameterName}"}
    api = permissions.policy("APIHandler", "/aws/lambda/tollgate-${Stage}-api_handler", tracing=True)
    sids = [s.get("Sid") or s["Fn::If"][1]["Sid"] for s in api["PolicyDocument"]["Statement"]]
    assert "DecryptThroughSsmOnly" in sids and sids[-1] == "XRayTraces"  # the admin key makes decrypt unconditional
    assert len(sids) == len(set(sids))


def test_the_audit_trail_can_only_be_appended_to_and_read():
    holders = {f: g["AuditTable"] for f, g in permissions.CODE.items() if "AuditTable" in g}
    assert holders == {"APIHandler": ("dynamodb:PutItem", "dynamodb:Query")}
