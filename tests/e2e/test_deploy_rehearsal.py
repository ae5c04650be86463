"""`make deploy` rehearsed end to end: the unchanged script, run as a user runs it, against a moto server for AWS.

A copy of the checkout (so `infra.stages add` may write its config), the AWS CLI and boto3 pointed at
tests/aws_standin.py with `AWS_ENDPOINT_URL` and fake credentials: every call `infra/deploy.sh` and preflight
make goes there, and nothing in the script is mocked or skipped. The stand-in fills what moto's CloudFormation
lacks from moto's own service APIs; the types no moto API holds (its RECORDED) and the properties it does not
keep (a distribution's cache behaviours, a bucket's lifecycle) are checked on the template in
tests/integration/test_package.py. The AWS CLI here is v1 from PyPI (requirements-dev.txt); users run v2,
whose `cloudformation package`/`deploy`, `s3 sync` and `cloudfront` commands take the same arguments.

The tests run in file order on one stand-in: the first deploy, a second with changed code, a new stage, the
README's teardown.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import boto3
import pytest

from local.stack import free_port
from tests.conftest import ROOT

REGION, ACCOUNT, CODE_BUCKET = "eu-west-1", "123456789012", "tollgate-artifacts-rehearsal"
STAGE, NEW_STAGE = "rehearsal", "second"
TABLES = ("calls", "keys", "aggregates", "budgets", "alerts", "deliveries", "credits", "audit")
FUNCTIONS = ("api_handler", "rollup_calls", "rollup_details", "replay_spill", "evaluate_every_minute", "daily_digest",
             "weekly_report", "proxy", "export_calls", "merge_details", "merge_group")
DASHBOARD_TYPES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css",
                   "config.json": "application/json"}
DEPLOY_SECONDS = 600


class Standin(NamedTuple):
    url: str  # AWS_ENDPOINT_URL
    bundle: str  # AWS_CA_BUNDLE: its certificate


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> str:
    """A self-signed certificate for localhost: the stand-in's, and the one bundle the clients trust."""
    from werkzeug.serving import make_ssl_devcert

    return make_ssl_devcert(str(tmp_path_factory.mktemp("tls") / "localhost"), host="localhost")[0].removesuffix(".crt")


@pytest.fixture(scope="module")
def aws(tmp_path_factory, certificate):
    """The stand-in, on its own port; stopped with SIGTERM, killed if it hangs."""
    port = free_port()
    log = tmp_path_factory.mktemp("aws") / "standin.log"
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "tests.aws_standin", str(port), certificate], cwd=ROOT,
                                  stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while "aws stand-in on" not in log.read_text():
        assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    yield Standin(f"https://localhost:{port}", f"{certificate}.crt")
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """The repository as a user has it: tracked and new files, times kept (make's installed marker holds), the
    installed .venv and node_modules, and Chalice's cache of built dependencies shared with this tree."""
    tree = tmp_path_factory.mktemp("checkout") / "tollgate"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split("\n")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not name.startswith("dist/"):
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)
    for shared in (".venv", "node_modules", ".chalice/deployments"):
        (ROOT / shared).mkdir(exist_ok=True)
        (tree / shared).symlink_to(ROOT / shared)
    return tree


@pytest.fixture(scope="module")
def env(aws):
    """A user's shell: fake credentials, the region, the code bucket, every AWS endpoint on the stand-in."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TOLLGATE_"))}
    return {**clean, "AWS_ENDPOINT_URL": aws.url, "AWS_ACCESS_KEY_ID": "rehearsal", "AWS_SECRET_ACCESS_KEY": "rehearsal",
            "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CA_BUNDLE": aws.bundle,
            "TOLLGATE_DEPLOY_BUCKET": CODE_BUCKET, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def run(command: list[str], checkout: Path, env: dict, timeout: int = DEPLOY_SECONDS) -> str:
    """The command's output and errors, as a user's terminal shows them; it must succeed."""
    done = subprocess.run(command, cwd=checkout, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}:\n{done.stdout[-6000:]}"
    return done.stdout


def client(service: str, aws: Standin):
    return boto3.client(service, region_name=REGION, endpoint_url=aws.url, aws_access_key_id="rehearsal",
                        aws_secret_access_key="rehearsal", verify=aws.bundle)


def prepare_account(stage: str, checkout: Path, env: dict) -> None:
    """What the README asks of a user before the first deploy: the code bucket and the stage's secrets."""
    if stage == STAGE:
        run(["aws", "s3", "mb", f"s3://{CODE_BUCKET}"], checkout, env)
    for name, value in (("admin-key", "rehearsal-admin"), ("openai-api-key", "sk-rehearsal")):
        run(["aws", "ssm", "put-parameter", "--type", "SecureString", "--name", f"/tollgate/{stage}/{name}",
             "--value", value], checkout, env)


def outputs(stack: str, aws: Standin) -> dict[str, str]:
    [described] = client("cloudformation", aws).describe_stacks(StackName=stack)["Stacks"]
    return {"status": described["StackStatus"], **{o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}}


def printed(stdout: str, label: str) -> str:
    return next(line.removeprefix(label).strip() for line in stdout.splitlines() if line.startswith(label))


WEBHOOK = "https://hooks.example.com/tollgate"


@pytest.fixture(scope="module")
def first_deploy(checkout, env, aws):
    run([sys.executable, "-m", "infra.stages", "add", STAGE], checkout, env)
    prepare_account(STAGE, checkout, env)
    return run(["make", "deploy", f"STAGE={STAGE}"], checkout, {**env, "TOLLGATE_ALERT_WEBHOOK_URL": WEBHOOK})


def test_the_first_deploy_creates_the_stack_and_prints_its_urls(first_deploy, aws):
    stack = outputs(f"tollgate-{STAGE}", aws)
    assert stack["status"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")  # the second pass (DashboardUrl) is an update
    assert printed(first_deploy, "API:") == stack["EndpointURL"]
    assert stack["EndpointURL"].endswith(f".execute-api.{REGION}.amazonaws.com/api/")
    assert printed(first_deploy, "Dashboard:") == stack["DashboardURL"] + "/"
    assert printed(first_deploy, "Alerts SNS:") == stack["AlertsTopicArn"] == \
        f"arn:aws:sns:{REGION}:{ACCOUNT}:tollgate-{STAGE}-alerts"
    assert "warning: nobody receives the alarms and alerts yet: aws sns subscribe" in first_deploy

    # the two-pass DashboardUrl: every function that links the dashboard got CloudFront's name
    functions = client("lambda", aws)
    api = functions.get_function(FunctionName=f"tollgate-{STAGE}-api_handler")["Configuration"]
    assert api["Environment"]["Variables"]["TOLLGATE_DASHBOARD_URL"] == stack["DashboardURL"]
    assert {f["FunctionName"] for f in functions.list_functions()["Functions"]} == \
        {f"tollgate-{STAGE}-{name}" for name in FUNCTIONS}
    assert {f["Runtime"] for f in functions.list_functions()["Functions"]} == {"python3.13"}
    # created unprotected (a failed first deploy can roll back), protected by the second pass
    dynamodb = client("dynamodb", aws)
    assert all(dynamodb.describe_table(TableName=f"tollgate-{STAGE}-{t}")["Table"]["DeletionProtectionEnabled"]
               for t in TABLES)


def test_the_routes_the_dashboard_files_and_the_template_in_s3(first_deploy, aws):
    stack = outputs(f"tollgate-{STAGE}", aws)
    gateway = client("apigateway", aws)
    paths = {r["path"] for r in gateway.get_resources(restApiId=stack["RestAPIId"], limit=500)["items"]}
    assert {"/openai/v1/chat/completions", "/anthropic/v1/messages", "/api/summary", "/admin/keys"} <= paths
    assert [s["stageName"] for s in gateway.get_stages(restApiId=stack["RestAPIId"])["item"]] == ["api"]

    s3 = client("s3", aws)
    bucket = stack["DashboardBucketName"]
    for name, kind in DASHBOARD_TYPES.items():
        assert s3.head_object(Bucket=bucket, Key=name)["ContentType"].startswith(kind), name
    # the hosted dashboard reads /api on its own origin (CloudFront routes it to the API)
    assert json.loads(s3.get_object(Bucket=bucket, Key="config.json")["Body"].read()) == {"api_url": ""}
    # the template went through the code bucket: CloudFormation takes an inline body of at most 51,200 bytes
    templates = [o for o in s3.list_objects_v2(Bucket=CODE_BUCKET, Prefix=f"tollgate-{STAGE}/")["Contents"]
                 if o["Key"].endswith(".template")]
    assert templates and max(t["Size"] for t in templates) > 51_200


@pytest.fixture(scope="module")
def second_deploy(first_deploy, checkout, env, aws):
    """Changed code, deployed again, with a call already logged in the stage's table."""
    client("dynamodb", aws).put_item(TableName=f"tollgate-{STAGE}-calls", Item={
        "account": {"S": "acme"}, "sk": {"S": "2026-12-07T00:00:00Z#call_before"}})
    before = {f["FunctionName"]: f["CodeSha256"] for f in client("lambda", aws).list_functions()["Functions"]}
    changed = checkout / "chalicelib" / "__init__.py"
    changed.write_text(changed.read_text() + "\n# a change, deployed by the rehearsal\n")
    stdout = run(["make", "deploy", f"STAGE={STAGE}"], checkout, env)
    return before, stdout


def test_a_second_deploy_updates_the_code_and_keeps_the_data(second_deploy, aws):
    before, stdout = second_deploy
    stack = outputs(f"tollgate-{STAGE}", aws)
    assert stack["status"] == "UPDATE_COMPLETE"
    assert "telling the functions the dashboard" not in stdout  # the URL came from the first deploy's outputs
    after = {f["FunctionName"]: f["CodeSha256"] for f in client("lambda", aws).list_functions()["Functions"]}
    assert set(after) == set(before) and all(after[name] != before[name] for name in before)
    item = client("dynamodb", aws).get_item(TableName=f"tollgate-{STAGE}-calls", Key={
        "account": {"S": "acme"}, "sk": {"S": "2026-12-07T00:00:00Z#call_before"}})
    assert "Item" in item
    # deployed without TOLLGATE_ALERT_WEBHOOK_URL this time: the stack keeps the webhook it had
    api = client("lambda", aws).get_function(FunctionName=f"tollgate-{STAGE}-api_handler")["Configuration"]
    assert api["Environment"]["Variables"]["TOLLGATE_ALERT_WEBHOOK_URL"] == WEBHOOK


def test_a_new_stage_is_one_command_and_a_deploy(second_deploy, checkout, env, aws):
    run([sys.executable, "-m", "infra.stages", "add", NEW_STAGE], checkout, env)
    prepare_account(NEW_STAGE, checkout, env)
    stdout = run(["make", "deploy", f"STAGE={NEW_STAGE}"], checkout, env)
    stack = outputs(f"tollgate-{NEW_STAGE}", aws)
    assert printed(stdout, "API:") == stack["EndpointURL"] != outputs(f"tollgate-{STAGE}", aws)["EndpointURL"]
    tables = set(client("dynamodb", aws).list_tables()["TableNames"])
    assert {f"tollgate-{s}-{t}" for s in (STAGE, NEW_STAGE) for t in TABLES} <= tables


def test_the_readme_teardown_removes_the_stack_and_keeps_the_data(second_deploy, checkout, env, aws):
    """docs/OPERATIONS.md, Tear down: empty the dashboard bucket, delete the stack; tables, archive and queues stay."""
    stack = outputs(f"tollgate-{STAGE}", aws)
    archive = client("lambda", aws).get_function(FunctionName=f"tollgate-{STAGE}-api_handler")[
        "Configuration"]["Environment"]["Variables"]["TOLLGATE_ARCHIVE_BUCKET"]
    run(["aws", "s3", "rm", f"s3://{stack['DashboardBucketName']}", "--recursive"], checkout, env)
    run(["aws", "cloudformation", "delete-stack", "--stack-name", f"tollgate-{STAGE}"], checkout, env)
    run(["aws", "cloudformation", "wait", "stack-delete-complete", "--stack-name", f"tollgate-{STAGE}"], checkout, env)

    assert f"tollgate-{STAGE}" not in {s["StackName"] for s in client("cloudformation", aws).list_stacks(
        StackStatusFilter=["CREATE_COMPLETE", "UPDATE_COMPLETE"])["StackSummaries"]}
    assert not [f for f in client("lambda", aws).list_functions()["Functions"]
                if f["FunctionName"].startswith(f"tollgate-{STAGE}-")]
    tables = set(client("dynamodb", aws).list_tables()["TableNames"])
    assert {f"tollgate-{STAGE}-{t}" for t in TABLES} <= tables
    assert "Item" in client("dynamodb", aws).get_item(TableName=f"tollgate-{STAGE}-calls", Key={
        "account": {"S": "acme"}, "sk": {"S": "2026-12-07T00:00:00Z#call_before"}})
    buckets = {b["Name"] for b in client("s3", aws).list_buckets()["Buckets"]}
    assert archive in buckets and stack["DashboardBucketName"] not in buckets
    queues = client("sqs", aws).list_queues(QueueNamePrefix=f"tollgate-{STAGE}-").get("QueueUrls", [])
    assert {url.rsplit("/", 1)[1] for url in queues} >= {f"tollgate-{STAGE}-spill", f"tollgate-{STAGE}-spill-dlq"}
