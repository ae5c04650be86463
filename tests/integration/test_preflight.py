"""`make deploy` checks first (infra/preflight.py), against moto: each missing piece is one line that names the
command fixing it, and nothing is deployed until none is left. No secret value is ever read."""
import boto3
import pytest
from moto import mock_aws

from infra import preflight

REGION = "eu-west-1"


class Concurrency:
    """Lambda's GetAccountSettings, which moto does not implement: an account's concurrency limits."""

    def __init__(self, monkeypatch):
        import botocore.client

        self.limit = self.unreserved = 1000
        original = botocore.client.BaseClient._make_api_call

        def answer(client, operation, params):
            if operation == "GetAccountSettings":
                return {"AccountLimit": {"ConcurrentExecutions": self.limit,
                                         "UnreservedConcurrentExecutions": self.unreserved}}
            return original(client, operation, params)

        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", answer)


@pytest.fixture
def concurrency(monkeypatch):
    return Concurrency(monkeypatch)


@pytest.fixture
def account(concurrency):
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(
            Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": REGION})
        ssm = boto3.client("ssm", region_name=REGION)
        for name in ("admin-key", *(f"{p}-api-key" for p in preflight.PROVIDER_KEYS)):
            ssm.put_parameter(Name=f"/tollgate/dev/{name}", Value="secret", Type="SecureString")
        yield ssm


def check(bucket="artifacts", **environ):
    return preflight.check("dev", bucket, session=boto3.Session(region_name=environ.pop("region", None)),
                           environ={"AWS_REGION": REGION, **environ})


def test_a_ready_account_passes_and_says_what_the_deploy_needs(account):
    found = check()
    assert found.problems == [] and found.notes == []
    assert found.values == {"REGION": REGION, "ACCOUNT": "123456789012", "API_GATEWAY_ACCOUNT_ROLE": "create",
                            "DASHBOARD_URL": ""}


def test_no_region_is_an_error_not_us_east_1(account, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    found = preflight.check("dev", "artifacts", session=boto3.Session(), environ={})
    [problem] = found.problems
    assert problem.startswith("no AWS region") and "export AWS_REGION=" in problem


def test_an_unknown_stage_names_the_command_that_creates_it(account):
    found = preflight.check("prod", "artifacts", session=boto3.Session(), environ={"AWS_REGION": REGION})
    assert found.problems == ["stage 'prod' is not in .chalice/config.json: create it with "
                              "`.venv/bin/python -m infra.stages add prod`"]


@pytest.mark.parametrize("bucket, fragment", [
    (None, "TOLLGATE_DEPLOY_BUCKET is not set"),
    ("missing-bucket", "code bucket 'missing-bucket' does not exist"),
    ("elsewhere", "code bucket 'elsewhere' is in us-east-2, the stack goes to eu-west-1"),
])
def test_the_code_bucket_must_exist_in_the_stacks_region(account, bucket, fragment):
    boto3.client("s3", region_name="us-east-2").create_bucket(
        Bucket="elsewhere", CreateBucketConfiguration={"LocationConstraint": "us-east-2"})
    [problem] = check(bucket).problems
    assert fragment in problem
    assert f"aws s3 mb s3://tollgate-artifacts-123456789012-{REGION} --region {REGION}" in problem


def test_missing_secrets_name_their_put_parameter_command(account):
    account.delete_parameter(Name="/tollgate/dev/admin-key")
    account.delete_parameter(Name="/tollgate/dev/anthropic-api-key")
    account.put_parameter(Name="/tollgate/dev/slack", Value="https://hooks.slack.com/x", Type="String")
    found = check(TOLLGATE_SLACK_WEBHOOK_PARAMETER="/tollgate/dev/slack")
    assert found.problems == [
        "SSM parameter /tollgate/dev/admin-key is missing: `aws ssm put-parameter --region eu-west-1 --type "
        "SecureString --name /tollgate/dev/admin-key --value …`",
        "SSM parameter /tollgate/dev/slack is a String, not a SecureString: delete it and `aws ssm put-parameter "
        "--region eu-west-1 --type SecureString --name /tollgate/dev/slack --value …`"]
    assert [n.split(":")[0] for n in found.notes] == ["SSM parameter /tollgate/dev/anthropic-api-key is missing"]


def test_no_secret_value_is_read(account, monkeypatch):
    import botocore.client

    read = []
    original = botocore.client.BaseClient._make_api_call

    def watching(client, operation, params):
        read.append(operation)
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", watching)
    assert check().problems == []
    assert not {"GetParameter", "GetParameters", "GetParametersByPath"} & set(read)


def test_a_previous_deploy_lends_its_dashboard_url(account):
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    body = ('{"Resources": {"T": {"Type": "AWS::SNS::Topic"}}, "Outputs": {"DashboardURL": '
            '{"Value": "https://d9.cloudfront.net"}}}')
    cloudformation.create_stack(StackName="tollgate-dev", TemplateBody=body)
    found = check()
    assert found.problems == [] and found.values["DASHBOARD_URL"] == "https://d9.cloudfront.net"
    assert found.values["STACK_STATUS"] == "CREATE_COMPLETE"


def test_an_account_whose_logging_role_is_set_keeps_it(account):
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="apigw-logs", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    boto3.client("apigateway", region_name=REGION).update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": role}])
    assert check().values["API_GATEWAY_ACCOUNT_ROLE"] == "existing"


def test_reserved_concurrency_needs_room_in_the_account(account, concurrency):
    """Lambda refuses a reservation that leaves the account fewer than 100 unreserved; the proxy's cap
    (`proxy_reserved_concurrency`, 100 by default) is a reservation too."""
    assert preflight.UNRESERVED_MINIMUM == 100
    concurrency.limit = concurrency.unreserved = 199  # one short of the proxy's 100 and Lambda's 100
    [problem] = check().problems
    assert "cannot reserve 100 for ['proxy'] and keep 100 unreserved" in problem
    assert "--quota-code L-B99A9384" in problem and "proxy_reserved_concurrency" in problem
    concurrency.limit = concurrency.unreserved = 200
    assert check().problems == []


def test_a_redeploy_counts_what_the_stage_reserves_already(account, concurrency):
    """The proxy's reservation of the deployed stack is freed by the redeploy: it is not counted twice."""
    lambdas = boto3.client("lambda", region_name=REGION)
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName="proxy", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    import io
    import zipfile

    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def handler(event, context): pass\n")
    lambdas.create_function(FunctionName="tollgate-dev-proxy", Runtime="python3.13", Role=role, Handler="app.handler",
                            Code={"ZipFile": code.getvalue()})
    lambdas.put_function_concurrency(FunctionName="tollgate-dev-proxy", ReservedConcurrentExecutions=100)
    concurrency.limit, concurrency.unreserved = 200, 100  # 100 of 200 held by the stage's own proxy
    assert check().problems == []
