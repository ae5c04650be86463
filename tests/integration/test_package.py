"""`make package` without AWS credentials: the template passes cfn-lint and our least-privilege rules,
the zip holds what the Lambdas read at run time (templates, price overrides) and not what the runtime has,
and the zip serves a stream when started as the Lambda Web Adapter starts it."""
import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, UPSTREAM_KEY

RUNTIME_FILES = ["chalicelib/templates/slack_message.json.j2", "chalicelib/templates/message.txt.j2",
                 "chalicelib/price_overrides.json", "app.py"]
# CONTRACT §2: every proxy route, served by ProxyFunction through API Gateway response streaming.
PROXY_ROUTES = {
    ("/openai/v1/chat/completions", "post"), ("/openai/v1/completions", "post"),
    ("/openai/v1/embeddings", "post"), ("/openai/v1/responses", "post"), ("/openai/v1/models", "get"),
    ("/openrouter/v1/chat/completions", "post"), ("/openrouter/v1/models", "get"),
    ("/anthropic/v1/messages", "post"), ("/anthropic/v1/messages/count_tokens", "post"),
}
ADAPTER_LAYER = "arn:aws:lambda:${AWS::Region}:753240598075:layer:LambdaAdapterLayerArm64:27"
STARTUP_SCRIPT = "chalicelib/run_proxy.sh"
API_GATEWAY_IDLE_SECONDS = 300  # REGIONAL endpoints: a stream silent this long is cut
# TOLLGATE_* settings of the Chalice function that the proxy does not read, and why.
API_ONLY_SETTINGS = {
    "TOLLGATE_ADMIN_KEY_PARAMETER",  # /admin only; the proxy may not read the admin key at all
    "TOLLGATE_DASHBOARD_ORIGIN", "TOLLGATE_DASHBOARD_URL",  # CORS for /api, links in alerts
    "TOLLGATE_SNS_TOPIC_ARN", "TOLLGATE_SLACK_WEBHOOK_URL_PARAMETER", "TOLLGATE_ALERT_WEBHOOK_URL",  # alerts
    "TOLLGATE_ARCHIVE_BUCKET",  # exports and GDPR requests
}


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


def api_paths(template):
    return template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"]


def integration_uri(operation) -> str:
    """The Lambda an operation invokes, as its `Fn::Sub` text; "" for mock integrations (CORS preflights)."""
    uri = operation.get("x-amazon-apigateway-integration", {}).get("uri", "")
    return uri["Fn::Sub"] if isinstance(uri, dict) else uri


def statements_of(template, role):
    """Every statement granted to one role: its inline policies and the AWS::IAM::Policy resources naming it."""
    found = [s for p in template["Resources"][role]["Properties"].get("Policies", [])
             for s in p["PolicyDocument"]["Statement"]]
    found += [s for p in resources(template, "AWS::IAM::Policy").values()
              if {"Ref": role} in p["Properties"]["Roles"] for s in p["Properties"]["PolicyDocument"]["Statement"]]
    return found


def as_list(value):
    return value if isinstance(value, list) else [value]


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


def test_the_startup_script_is_an_executable_script_in_the_zip(packaged):
    """The adapter's /opt/bootstrap execs ${LAMBDA_TASK_ROOT}/${_HANDLER}: no `x` bit, no cold start."""
    out, template = packaged
    assert template["Resources"]["ProxyFunction"]["Properties"]["Handler"] == STARTUP_SCRIPT
    with zipfile.ZipFile(out / "deployment.zip") as package:
        entry = package.getinfo(STARTUP_SCRIPT)
        script = package.read(STARTUP_SCRIPT)
    mode = entry.external_attr >> 16
    assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o755, oct(mode)
    assert script.startswith((b"#!/bin/sh\n", b"#!/bin/bash\n")), script[:40]
    assert b"\r\n" not in script  # a CRLF shebang fails in Lambda with "required file not found"


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


def test_the_streaming_integrations_are_valid_api_gateway_method_integrations(packaged):
    """cfn-lint does not look inside the REST API's OpenAPI body, so each proxy integration is checked
    here against cfn-lint's own schema of `AWS::ApiGateway::Method` `Integration`, which knows
    `ResponseTransferMode` (BUFFERED | STREAM) since the feature shipped."""
    import jsonschema
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    _, template = packaged
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", "AWS::ApiGateway::Method").schema
    assert schema["definitions"]["Integration"]["properties"]["ResponseTransferMode"]["enum"] == ["BUFFERED", "STREAM"]
    validator = jsonschema.Draft7Validator({"$ref": "#/definitions/Integration", "definitions": schema["definitions"]})
    for path, method in PROXY_ROUTES:
        integration = api_paths(template)[path][method]["x-amazon-apigateway-integration"]
        as_cloudformation = {  # the OpenAPI extension's names and spelling → the resource's (Uri: tested below)
            "Type": integration["type"].upper(), "IntegrationHttpMethod": integration["httpMethod"],
            "PassthroughBehavior": integration["passthroughBehavior"].upper(),
            "TimeoutInMillis": integration["timeoutInMillis"], "ResponseTransferMode": integration["responseTransferMode"]}
        assert not [e.message for e in validator.iter_errors(as_cloudformation)], (path, as_cloudformation)


def test_every_function_has_its_own_role_and_runs_on_arm64(packaged):
    _, template = packaged
    functions = resources(template, "AWS::Serverless::Function")
    assert len(functions) == 7  # six Chalice functions and the streaming proxy
    roles = [f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values()]
    assert len(set(roles)) == len(roles)
    assert all(f["Properties"]["Architectures"] == ["arm64"] for f in functions.values())
    policies = resources(template, "AWS::IAM::Policy")
    attached = {p["Properties"]["Roles"][0]["Ref"] for p in policies.values()}
    assert attached == set(roles)


def test_the_proxy_function_runs_the_app_under_the_lambda_web_adapter(packaged):
    _, template = packaged
    proxy = template["Resources"]["ProxyFunction"]["Properties"]
    chalice = template["Resources"]["APIHandler"]["Properties"]
    assert (proxy["Runtime"], proxy["CodeUri"]) == (chalice["Runtime"], chalice["CodeUri"])  # one zip, one runtime
    assert proxy["Architectures"] == ["arm64"] and proxy["Timeout"] == 900 and proxy["MemorySize"] == 512
    assert proxy["Layers"] == [{"Fn::Sub": ADAPTER_LAYER}]
    env = proxy["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["AWS_LWA_READINESS_CHECK_PATH"] == "/ready"
    assert env["PORT"] == "8080"
    # the proxy ends a stream itself (and logs it) before Lambda's timeout, and an upstream silence
    # before API Gateway's idle timeout, so neither cuts a call that was not logged
    assert int(env["TOLLGATE_UPSTREAM_DEADLINE_SECONDS"]) < proxy["Timeout"]
    assert float(env["TOLLGATE_UPSTREAM_READ_SECONDS"]) < API_GATEWAY_IDLE_SECONDS
    missing = {n for n in chalice["Environment"]["Variables"] if n.startswith("TOLLGATE_")} - set(env) - API_ONLY_SETTINGS
    assert not missing, f"settings of the Chalice function the proxy lacks: {sorted(missing)}"


def test_the_chalice_function_serves_only_admin_and_api_with_a_short_timeout(packaged):
    _, template = packaged
    chalice = template["Resources"]["APIHandler"]["Properties"]
    assert chalice["Timeout"] <= 60
    assert "TOLLGATE_UPSTREAM_READ_SECONDS" not in chalice["Environment"]["Variables"]
    served = {"${APIHandler.Arn}": set(), "${ProxyFunction.Arn}": set()}
    for path, operations in api_paths(template).items():
        for method, operation in operations.items():
            for function, routes in served.items():
                if function in integration_uri(operation):
                    routes.add((path, method))
            if "${APIHandler.Arn}" in integration_uri(operation):  # buffered, as before: JSON well under 29 s
                assert "responseTransferMode" not in operation["x-amazon-apigateway-integration"], path
    assert served["${ProxyFunction.Arn}"] == PROXY_ROUTES
    assert not served["${APIHandler.Arn}"] & PROXY_ROUTES
    assert {path.split("/")[1] for path, _ in served["${APIHandler.Arn}"]} <= {"admin", "api", "health", "openapi.json"}


def test_every_proxy_route_streams_from_the_proxy_function_on_one_regional_api(packaged):
    _, template = packaged
    paths = api_paths(template)
    for path, method in PROXY_ROUTES:
        assert set(paths[path]) == {method}, path
        integration = paths[path][method]["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy" and integration["httpMethod"] == "POST"
        assert integration["responseTransferMode"] == "STREAM"
        assert integration["timeoutInMillis"] == 900_000  # 29 s otherwise; 15 min is the streaming maximum
        assert integration_uri(paths[path][method]) == (
            "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2021-11-15/functions/"
            "${ProxyFunction.Arn}/response-streaming-invocations")
    api = template["Resources"]["RestAPI"]["Properties"]
    assert api["EndpointConfiguration"] in ("REGIONAL", {"Type": "REGIONAL"})  # idle timeout 5 min, not 30 s
    assert "MinimumCompressionSize" not in api and "CacheClusterEnabled" not in api  # neither works in STREAM
    assert [r["Properties"]["StageName"] for r in resources(template, "AWS::Serverless::Api").values()] == ["api"]
    [permission] = [p["Properties"] for p in resources(template, "AWS::Lambda::Permission").values()
                    if p["Properties"]["FunctionName"] == {"Ref": "ProxyFunction"}]
    assert permission["Principal"] == "apigateway.amazonaws.com" and permission["Action"] == "lambda:InvokeFunction"
    assert "${RestAPI}/" in permission["SourceArn"]["Fn::Sub"]
    alarms = {a["Properties"]["MetricName"] for a in resources(template, "AWS::CloudWatch::Alarm").values()
              if a["Properties"]["Dimensions"][0]["Value"] == {"Ref": "ProxyFunction"}}
    assert alarms == {"Errors", "Throttles"}


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


def test_the_proxy_may_do_only_what_a_proxied_call_needs(packaged):
    """Authenticate (GetItem on keys), check hard limits (read budgets), log the call (a conditional
    PutItem, else spill to SQS), read the provider keys from SSM. Nothing else, and no other table."""
    _, template = packaged
    def arn(name):
        return json.dumps({"Fn::GetAtt": [name, "Arn"]})

    def parameter(provider):
        return json.dumps({"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:"
                                      f"parameter/tollgate/${{Stage}}/{provider}-api-key"})

    granted = {}
    for statement in statements_of(template, "ProxyFunctionRole"):
        if statement.get("Sid") == "OwnLogsOnly":  # its own log group, as every function
            continue
        for resource in as_list(statement["Resource"]):
            granted.setdefault(json.dumps(resource), set()).update(as_list(statement["Action"]))
    assert granted == {
        arn("KeysTable"): {"dynamodb:GetItem"},
        arn("BudgetsTable"): {"dynamodb:Scan", "dynamodb:Query"},
        arn("CallsTable"): {"dynamodb:PutItem"},
        arn("SpillQueue"): {"sqs:SendMessage"},
        parameter("openai"): {"ssm:GetParameter"},
        parameter("anthropic"): {"ssm:GetParameter"},
        parameter("openrouter"): {"ssm:GetParameter"},
        json.dumps("*"): {"kms:Decrypt"},
    }
    assert not any("AuditTable" in key for key in granted)  # no Scan, no Delete, nothing on the audit trail
    env = template["Resources"]["ProxyFunction"]["Properties"]["Environment"]["Variables"]
    for provider in ("openai", "anthropic", "openrouter"):  # the names it reads are the ones it may read
        assert env[f"TOLLGATE_{provider.upper()}_API_KEY_PARAMETER"] == {"Fn::Sub": f"/tollgate/${{Stage}}/{provider}-api-key"}


def test_stream_mapping_tables_and_buckets(packaged):
    _, template = packaged
    mapping = template["Resources"]["RollupCalls"]["Properties"]["Events"]["RollupCallsDynamodbEventSource"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True  # only a record that keeps failing is retried, then dead-lettered
    assert mapping["MaximumRetryAttempts"] <= 100 and "OnFailure" in mapping["DestinationConfig"]
    spill = template["Resources"]["ReplaySpill"]["Properties"]["Events"]["ReplaySpillSqsEventSource"]
    assert spill["Type"] == "SQS" and spill["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert spill["Properties"]["BatchSize"] == 10  # Chalice's own properties survive the merge
    redrive = template["Resources"]["SpillQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["SpillDeadLetterQueue", "Arn"]}
    tables = resources(template, "AWS::DynamoDB::Table")
    assert len(tables) == 8
    assert all(t["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] for t in tables.values())
    assert tables["CallsTable"]["Properties"]["TimeToLiveSpecification"]["Enabled"]
    for bucket in resources(template, "AWS::S3::Bucket").values():  # the dashboard too: CloudFront reads it via OAC
        assert all(bucket["Properties"]["PublicAccessBlockConfiguration"].values())
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert {a["Properties"]["MetricName"] for a in alarms.values()} == {"Errors", "Throttles", "IteratorAge"}


# --- the zip serves a stream, started as the Lambda Web Adapter starts it ----------------------------
def test_the_zip_serves_a_stream_started_as_the_web_adapter_starts_it(packaged, tmp_path):
    """In Lambda, /opt/bootstrap runs `exec -- "${LAMBDA_TASK_ROOT}/${_HANDLER}"` in /var/task, and the
    script's `python` is the runtime's. Here: the same bash line, in the unpacked zip, with the
    template's literal environment; `python` on PATH is a shim running this interpreter with `-S`
    (no dev site-packages) and PYTHONPATH holding only what the Lambda runtime provides, so the app
    imports from the zip or not at all. DynamoDB is a moto server, the provider the mock upstream.
    """
    import boto3
    import openai
    from moto.server import ThreadedMotoServer

    from infra.package import unpack_like_lambda
    from local.mock_upstream import ANSWER, MockUpstream
    from local.stack import free_port

    out, template = packaged
    code, runtime = unpack_like_lambda(out / "deployment.zip", tmp_path / "lambda")
    proxy = template["Resources"]["ProxyFunction"]["Properties"]
    shim = tmp_path / "bin" / "python"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    shim.chmod(0o755)

    moto_url = f"http://127.0.0.1:{free_port()}"
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=int(moto_url.rsplit(":", 1)[1]), verbose=False)
    moto.start()
    upstream = MockUpstream(expected_key=UPSTREAM_KEY)
    upstream_url = upstream.start()
    aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
           "TOLLGATE_AWS_ENDPOINT": moto_url}
    server = None
    try:
        gateway_key, queue_url = _tables_queue_and_a_gateway_key(aws)
        port = free_port()
        env = {name: value for name, value in proxy["Environment"]["Variables"].items() if isinstance(value, str)}
        env.update(aws)
        env.update({
            "PORT": str(port), "LAMBDA_TASK_ROOT": str(code), "_HANDLER": proxy["Handler"],
            "PATH": f"{shim.parent}:/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(runtime),
            "HOME": str(tmp_path), "LANG": "C.UTF-8",
            "TOLLGATE_SPILL_QUEUE_URL": queue_url,
            "TOLLGATE_OPENAI_BASE_URL": f"{upstream_url}/v1", "TOLLGATE_OPENAI_API_KEY": UPSTREAM_KEY,
        })
        log = (tmp_path / "server.log").open("w")
        server = subprocess.Popen(["/bin/bash", "-c", 'exec -- "${LAMBDA_TASK_ROOT}/${_HANDLER}"'],
                                  cwd=code, env=env, stdout=log, stderr=subprocess.STDOUT)
        _wait_until_ready(server, f"http://127.0.0.1:{port}{env['AWS_LWA_READINESS_CHECK_PATH']}", tmp_path)

        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/openai/v1", api_key=gateway_key, max_retries=0)
        stream = client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                                messages=[{"role": "user", "content": "Say hello."}])
        call_id = stream.response.headers["x-tollgate-call-id"]
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text.strip() == ANSWER

        # the sync SDK closes the connection at `[DONE]`, before the trailer: the record may land just after
        dynamodb = boto3.client("dynamodb", endpoint_url=moto_url, region_name="us-east-1")
        deadline, logged = time.monotonic() + 5, []
        while not logged and time.monotonic() < deadline:
            logged = dynamodb.scan(TableName="tollgate-dev-calls", FilterExpression="call_id = :id",
                                   ExpressionAttributeValues={":id": {"S": call_id}})["Items"]
            time.sleep(0 if logged else 0.05)
        assert len(logged) == 1 and logged[0]["stream"] == {"BOOL": True}, logged

        server.send_signal(signal.SIGTERM)  # as Lambda does at shutdown
        server.wait(timeout=10)
        assert server.returncode in (0, -signal.SIGTERM), _log(tmp_path)  # uvicorn re-raises it when done
        assert "Traceback" not in _log(tmp_path), _log(tmp_path)
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.wait()
        upstream.stop()
        moto.stop()


def _tables_queue_and_a_gateway_key(aws: dict[str, str]) -> tuple[str, str]:
    """Set up the moto server in a child process: the models bind their endpoint when first imported,
    and in this test process they were imported long ago, without one."""
    setup = ("import json, boto3; from chalicelib.models import create_tables; from chalicelib.keys import "
             "create_gateway_key; create_tables(); "
             "queue = boto3.client('sqs', endpoint_url=__import__('os').environ['TOLLGATE_AWS_ENDPOINT'])"
             ".create_queue(QueueName='tollgate-dev-spill')['QueueUrl']; "
             "print(json.dumps([create_gateway_key({'name': 'package test', 'account': 'acme'})['key'], queue]))")
    done = subprocess.run([sys.executable, "-c", setup], cwd=ROOT, env={**os.environ, **aws},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    key, queue_url = json.loads(done.stdout.strip().splitlines()[-1])
    return key, queue_url


def _wait_until_ready(server: subprocess.Popen, url: str, tmp_path: Path, seconds: float = 30.0) -> None:
    """What the adapter does before it takes the first invocation: GET the readiness path until it answers."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the server exited ({server.returncode}):\n{_log(tmp_path)}"
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail(f"{url} not ready within {seconds:.0f} s:\n{_log(tmp_path)}")


def _log(tmp_path: Path) -> str:
    return (tmp_path / "server.log").read_text(errors="replace")[-3000:]


# Resources that need the SAM transform and the functions (moto cannot run the transform), and the
# types moto's CloudFormation does not implement: named here, checked by the template tests above.
NEEDS_FUNCTIONS = {"AWS::Serverless::Function", "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::Lambda::Permission",
                   "AWS::CloudWatch::Alarm"}
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
