"""`make package` without AWS credentials: the template passes cfn-lint and our least-privilege rules,
and the zip holds what the Lambdas read at run time (templates, price overrides) and not what the runtime has."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

RUNTIME_FILES = ["chalicelib/templates/slack_message.json.j2", "chalicelib/templates/message.txt.j2",
                 "chalicelib/price_overrides.json", "app.py"]


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    out = tmp_path_factory.mktemp("package") / "dev"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # no credentials at all
    done = subprocess.run([sys.executable, "-m", "infra.package", "--stage", "dev", "--out", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, json.loads((out / "sam.json").read_text())


def resources(template, kind):
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def test_runtime_files_are_in_the_zip_and_runtime_packages_are_not(packaged):
    out, _ = packaged
    zip_path = out / "deployment.zip"
    assert zip_path.stat().st_size <= 15 * 1024 * 1024
    with zipfile.ZipFile(zip_path) as package:
        names = set(package.namelist())
        assert set(RUNTIME_FILES) <= names
        assert "{{ title" in package.read("chalicelib/templates/message.txt.j2").decode()
    assert not any(n.startswith(("botocore/", "boto3/", "templates/", "local/", "tests/")) for n in names)
    assert any("aarch64" in n for n in names if n.startswith("pydantic_core/"))  # wheels for arm64


def test_the_zip_imports_with_only_what_lambda_provides(packaged, tmp_path):
    """Every runtime import resolves from the zip or the Lambda runtime: none from the dev environment."""
    from infra.package import unpack_like_lambda

    out, _ = packaged
    path = [str(p) for p in unpack_like_lambda(out / "deployment.zip", tmp_path)]
    probe = ("import sys; sys.path[:0] = sys.argv[1:]; import app, chalicelib.notify, chalicelib.pricing; "
             "print(app.app.app_name, chalicelib.notify.__file__)")
    env = {"AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_METRICS_DISABLED": "true", "PATH": os.environ["PATH"]}
    done = subprocess.run([sys.executable, "-S", "-c", probe, *path], cwd=path[0], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["tollgate", str(tmp_path / "code" / "chalicelib" / "notify.py")]


def test_cfn_lint_finds_no_errors(packaged):
    out, _ = packaged
    lint = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), str(out / "sam.json")],
                          capture_output=True, text=True, timeout=300)
    assert lint.returncode & 2 == 0, lint.stdout[-3000:]  # bit 2: errors (warnings are bit 4)


def test_every_function_has_its_own_role_and_runs_on_arm64(packaged):
    _, template = packaged
    functions = resources(template, "AWS::Serverless::Function")
    assert len(functions) == 6
    roles = [f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values()]
    assert len(set(roles)) == len(roles)
    assert all(f["Properties"]["Architectures"] == ["arm64"] for f in functions.values())
    policies = resources(template, "AWS::IAM::Policy")
    attached = {p["Properties"]["Roles"][0]["Ref"] for p in policies.values()}
    assert attached == set(roles)


def test_no_wildcard_actions_and_star_resources_only_where_aws_requires(packaged):
    _, template = packaged
    statements = [s for r in resources(template, "AWS::IAM::Policy").values()
                  for s in r["Properties"]["PolicyDocument"]["Statement"]]
    statements += [s for r in resources(template, "AWS::IAM::Role").values()
                   for p in r["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions), statement
        if statement["Resource"] == "*":  # the aws/ssm key's ARN cannot be named: decrypt only through SSM
            assert actions == ["kms:Decrypt"] and "kms:ViaService" in statement["Condition"]["StringEquals"]


def test_stream_mapping_tables_and_buckets(packaged):
    _, template = packaged
    mapping = template["Resources"]["RollupCalls"]["Properties"]["Events"]["RollupCallsDynamodbEventSource"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["MaximumRetryAttempts"] <= 100 and "OnFailure" in mapping["DestinationConfig"]
    tables = resources(template, "AWS::DynamoDB::Table")
    assert len(tables) == 8
    assert all(t["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] for t in tables.values())
    assert tables["CallsTable"]["Properties"]["TimeToLiveSpecification"]["Enabled"]
    for bucket in resources(template, "AWS::S3::Bucket").values():  # the dashboard too: CloudFront reads it via OAC
        assert all(bucket["Properties"]["PublicAccessBlockConfiguration"].values())
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert {a["Properties"]["MetricName"] for a in alarms.values()} == {"Errors", "Throttles", "IteratorAge"}


# Resources that need the SAM transform and the functions (moto cannot run the transform), and the
# types moto's CloudFormation does not implement: named here, checked by the template tests above.
NEEDS_FUNCTIONS = {"AWS::IAM::Policy", "AWS::CloudWatch::Alarm"}
NOT_IN_MOTO = {"AWS::CloudFront::Distribution", "AWS::CloudFront::OriginAccessControl", "AWS::S3::BucketPolicy"}


def test_the_stateful_resources_create_in_moto_cloudformation():
    import boto3
    from moto import mock_aws

    template = json.loads((ROOT / "infra" / "resources.json").read_text())
    kinds = {r["Type"] for r in template["Resources"].values() if "Type" in r}
    created = {name: r for name, r in template["Resources"].items()
               if r.get("Type") and r["Type"] not in NEEDS_FUNCTIONS | NOT_IN_MOTO}
    assert kinds - NEEDS_FUNCTIONS - NOT_IN_MOTO == {"AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::SNS::Topic",
                                                      "AWS::S3::Bucket"}
    body = {"AWSTemplateFormatVersion": "2010-09-09", "Parameters": {"Stage": template["Parameters"]["Stage"]},
            "Resources": created}
    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name="us-east-1")
        cloudformation.create_stack(StackName="tollgate-dev", TemplateBody=json.dumps(body))
        stack = cloudformation.describe_stacks(StackName="tollgate-dev")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        statuses = {r["LogicalResourceId"]: r["ResourceStatus"] for r in
                    cloudformation.list_stack_resources(StackName="tollgate-dev")["StackResourceSummaries"]}
        assert statuses == {name: "CREATE_COMPLETE" for name in created}
        calls = boto3.client("dynamodb", region_name="us-east-1").describe_table(TableName="tollgate-dev-calls")["Table"]
        assert calls["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert {i["IndexName"] for i in calls["GlobalSecondaryIndexes"]} == {"by_day", "by_user"}
