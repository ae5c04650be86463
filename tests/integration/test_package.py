"""`make package` without AWS credentials: the template passes cfn-lint (informational checks included) and
our rules (the hosted dashboard reaches /api, data survives the stack, least privilege by action, an alarm
for every loss, brakes, logs that expire), deploys in moto after the SAM transform, the zip holds what the
Lambdas read at run time and not what the runtime has, and it serves a stream when started as the Lambda
Web Adapter starts it. One `chalice package` per module run: every test shares it."""
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

RUNTIME_FILES = ["templates/slack_message.json.j2", "templates/message.txt.j2",
                 "chalicelib/gateway/price_overrides.json", "app.py"]
# CONTRACT §2: every proxy route, served by ProxyFunction through API Gateway response streaming.
PROXY_ROUTES = {
    ("/openai/v1/chat/completions", "post"), ("/openai/v1/completions", "post"),
    ("/openai/v1/embeddings", "post"), ("/openai/v1/responses", "post"), ("/openai/v1/models", "get"),
    ("/openrouter/v1/chat/completions", "post"), ("/openrouter/v1/models", "get"),
    ("/anthropic/v1/messages", "post"), ("/anthropic/v1/messages/count_tokens", "post"),
    ("/bedrock/{proxy+}", "post"),
    ("/openai/v1/images/generations", "post"),
    ("/groq/{proxy+}", "post"), ("/groq/{proxy+}", "get"), ("/gemini/{proxy+}", "post"), ("/azure/{proxy+}", "post"),
}
ADAPTER_LAYER = "arn:${AWS::Partition}:lambda:${AWS::Region}:753240598075:layer:LambdaAdapterLayerArm64:30"  # v1.1.0
STARTUP_SCRIPT = "chalicelib/gateway/run_proxy.sh"
API_GATEWAY_IDLE_SECONDS = 300  # REGIONAL endpoints: a stream silent this long is cut
# TOLLGATE_* settings of the Chalice function that the proxy does not read, and why.
API_ONLY_SETTINGS = {
    "TOLLGATE_ADMIN_KEY_PARAMETER",  # /admin only; the proxy may not read the admin key at all
    "TOLLGATE_DASHBOARD_ORIGIN", "TOLLGATE_DASHBOARD_URL",  # CORS (a dashboard elsewhere), links in alerts
    "TOLLGATE_SNS_TOPIC_ARN", "TOLLGATE_SLACK_WEBHOOK_URL_PARAMETER", "TOLLGATE_ALERT_WEBHOOK_URL",  # alerts
    "TOLLGATE_ARCHIVE_BUCKET",  # exports and GDPR requests
    "TOLLGATE_EXPORT_FUNCTION",  # large exports: the API starts their job
    "TOLLGATE_ROLLUP_MERGE_MINUTES",  # the rollup's detail tier merged (and a rebuild's closed days): never the proxy
    "TOLLGATE_SPILL_DLQ_URL", "TOLLGATE_ROLLUP_DLQ_URL",  # /health counts what the dead-letter queues hold
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
    """Every statement granted to one role: its inline policies and the AWS::IAM::Policy resources naming it;
    a statement under a condition (`Fn::If`, e.g. the Slack parameter's) as if the condition held."""
    found = [s for p in template["Resources"][role]["Properties"].get("Policies", [])
             for s in p["PolicyDocument"]["Statement"]]
    found += [s for p in resources(template, "AWS::IAM::Policy").values()
              if {"Ref": role} in p["Properties"]["Roles"] for s in p["Properties"]["PolicyDocument"]["Statement"]]
    return [s["Fn::If"][1] if "Fn::If" in s else s for s in found]


def as_list(value):
    return value if isinstance(value, list) else [value]


def test_runtime_files_are_in_the_zip_and_runtime_packages_are_not(packaged):
    out, _ = packaged
    zip_path = out / "deployment.zip"
    assert zip_path.stat().st_size <= 15 * 1024 * 1024
    with zipfile.ZipFile(zip_path) as package:
        names = set(package.namelist())
        assert set(RUNTIME_FILES) <= names
        assert "{{ title" in package.read("templates/message.txt.j2").decode()
    assert not any(n.startswith(("botocore/", "boto3/", "local/", "tests/")) for n in names)
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
    probe = ("import sys; sys.path[:0] = sys.argv[1:]; import app, chalicelib.alerting.notify, chalicelib.gateway.pricing; "
             "print(app.app.app_name, chalicelib.alerting.notify.__file__, "
             "len(chalicelib.alerting.notify._templates().get_template('message.txt.j2').render(title='t', message='m', "
             "severity='high', event='opened', timestamp='now', dashboard_url=None)) > 0)")
    env = {"AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_METRICS_DISABLED": "true", "PATH": os.environ["PATH"]}
    done = subprocess.run([sys.executable, "-S", "-c", probe, *path], cwd=path[0], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["tollgate", str(tmp_path / "code" / "chalicelib" / "alerting" / "notify.py"), "True"]


def test_cfn_lint_finds_nothing_even_with_informational_checks(packaged):
    """cfn-lint with `-c I` (errors, warnings and informational rules such as I3011, an explicit deletion
    policy on stateful resources) after its own SAM transform: no finding at all."""
    out, _ = packaged
    lint = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), "-c", "I", "--", str(out / "sam.json")],
                          capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout[-3000:]


CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-0000-4000-8000-000000000000"


def every_option_on(template: dict) -> dict:
    """The packaged template finished again for the dev stage with every deploy option on: the proxy on Managed
    Instances, a custom domain for the dashboard, /admin only from two networks."""
    import copy
    import dataclasses

    from infra.stages import ManagedInstances, load
    from infra.template import finish

    dev = load("dev")
    options = dataclasses.replace(
        dev.deploy, proxy_compute="managed-instances", dashboard_domain="dash.example.com",
        dashboard_certificate_arn=CERTIFICATE, admin_source_cidrs=("203.0.113.0/24", "2001:db8::/32"),
        managed_instances=ManagedInstances(("subnet-0123456789abcdef0", "subnet-0fedcba9876543210"),
                                           ("sg-0123456789abcdef0",)))
    return finish(copy.deepcopy(template), dataclasses.replace(dev, deploy=options))


def test_every_stage_option_at_once_is_lint_clean_in_the_whole_template(packaged, tmp_path):
    """The stage options (docs/OPERATIONS.md) all on: the proxy's capacity provider, its operator role and the
    attached proxy (`"proxy_compute": "managed-instances"`; every function runs python3.13, which Managed Instances
    runs), the dashboard on its own domain with TLS 1.2 at least, and /admin's resource policy pass cfn-lint `-c I`
    too (tests/unit/test_managed_instances.py packages Managed Instances for real and holds it to adding only its
    own resources)."""
    _, template = packaged
    assert not resources(template, "AWS::Lambda::CapacityProvider")  # the default: Lambda's own compute
    assert "CapacityProviderConfig" not in template["Resources"]["ProxyFunction"]["Properties"]
    functions = resources(template, "AWS::Serverless::Function")
    assert {f["Properties"]["Runtime"] for f in functions.values()} == {"python3.13"}
    on = every_option_on(template)
    assert resources(on, "AWS::Lambda::CapacityProvider")
    (tmp_path / "sam.json").write_text(json.dumps(on, indent=2))
    lint = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), "-c", "I", "--", str(tmp_path / "sam.json")],
                          capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout[-3000:]


def test_the_startup_script_puts_the_zip_first_then_the_runtime_on_the_python_path(packaged, tmp_path):
    """boto3 and botocore are left out of the zip: the script names where the code and the runtime's libraries
    are instead of leaving it to the environment, the zip first (/var/task), then the runtime directory, then
    whatever the environment adds (layers)."""
    from infra.package import unpack_like_lambda

    out, _ = packaged
    code, _ = unpack_like_lambda(out / "deployment.zip", tmp_path / "lambda")
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "$PYTHONPATH"\n')
    fake.chmod(0o755)
    base = {"PATH": f"{fake.parent}:/usr/bin:/bin", "LAMBDA_TASK_ROOT": str(code), "LAMBDA_RUNTIME_DIR": "/var/runtime"}
    for extra, expected in (({}, f"{code}:/var/runtime"), ({"PYTHONPATH": "/opt/python"}, f"{code}:/var/runtime:/opt/python")):
        done = subprocess.run([str(code / STARTUP_SCRIPT)], env={**base, **extra}, capture_output=True, text=True,
                              timeout=30)
        assert done.returncode == 0 and done.stdout.strip() == expected, (done.stdout, done.stderr)


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
    """Each role holds one inline policy, rendered from infra/permissions.py (which
    tests/integration/test_least_privilege.py holds equal to what the code calls): the function's data,
    its own log group, nothing else. Inline, so the function cannot run before its permissions exist."""
    from infra import permissions
    from infra.template import log_group, role_of

    _, template = packaged
    functions = resources(template, "AWS::Serverless::Function")
    assert len(functions) == 11  # ten Chalice functions and the streaming proxy
    roles = {name: f["Properties"]["Role"]["Fn::GetAtt"][0] for name, f in functions.items()}
    assert len(set(roles.values())) == len(roles)
    assert all(f["Properties"]["Architectures"] == ["arm64"] for f in functions.values())
    assert not resources(template, "AWS::IAM::Policy") and not resources(template, "AWS::IAM::ManagedPolicy")
    for function, role in roles.items():
        assert role == role_of(function)
        assert template["Resources"][role]["Properties"]["Policies"] == [
            permissions.policy(function, log_group(function, "${Stage}"), tracing=False)], function
        assert "ManagedPolicyArns" not in template["Resources"][role]["Properties"]


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
    assert set(env) & API_ONLY_SETTINGS == set()


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
        assert set(paths[path]) == {m for p, m in PROXY_ROUTES if p == path}, path
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
              if a["Properties"].get("Dimensions", [{}])[0].get("Value") == {"Ref": "ProxyFunction"}}
    assert alarms == {"Errors", "Throttles", "Duration"}


def test_no_wildcard_actions_and_star_resources_only_where_aws_requires(packaged):
    _, template = packaged
    statements = [s for r in resources(template, "AWS::IAM::Policy").values()
                  for s in r["Properties"]["PolicyDocument"]["Statement"]]
    statements += [s for r in resources(template, "AWS::IAM::Role").values()
                   for p in r["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    for statement in statements:
        statement = statement["Fn::If"][1] if "Fn::If" in statement else statement  # the Slack parameter's
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions), statement
        if statement["Resource"] == "*":  # the aws/ssm key's ARN cannot be named: decrypt only through SSM
            assert actions == ["kms:Decrypt"] and "kms:ViaService" in statement["Condition"]["StringEquals"]


def test_the_proxy_may_do_only_what_a_proxied_call_needs(packaged):
    """Authenticate (GetItem on keys), check hard limits (read budgets), log the call (a conditional
    PutItem, else spill to SQS), read the provider keys from SSM, count refused keys (UpdateItem on one
    partition of the aggregates table, and no other), invoke Bedrock models (its own SigV4 calls). Nothing else,
    and no other table."""
    _, template = packaged
    def arn(name):
        return json.dumps({"Fn::GetAtt": [name, "Arn"]})

    def parameter(provider):
        return json.dumps({"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:"
                                      f"parameter/tollgate/${{Stage}}/{provider}-api-key"})

    granted = {}
    for statement in statements_of(template, "ProxyFunctionRole"):
        if statement.get("Sid") == "OwnLogGroupOnly":  # its own log group, as every function
            continue
        for resource in as_list(statement["Resource"]):
            granted.setdefault(json.dumps(resource), set()).update(as_list(statement["Action"]))
    assert granted == {
        arn("KeysTable"): {"dynamodb:GetItem"},
        arn("BudgetsTable"): {"dynamodb:Scan"},
        arn("CallsTable"): {"dynamodb:PutItem"},
        arn("SpillQueue"): {"sqs:SendMessage"},
        # the refused-keys counter, a hard budget's ledger, holds, rate windows and (read) the accounts' and teams'
        # rate limits (partitions below)
        arn("AggregatesTable"): {"dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query"},
        parameter("openai"): {"ssm:GetParameter"},
        parameter("anthropic"): {"ssm:GetParameter"},
        parameter("openrouter"): {"ssm:GetParameter"},
        parameter("groq"): {"ssm:GetParameter"},
        parameter("gemini"): {"ssm:GetParameter"},
        parameter("azure"): {"ssm:GetParameter"},
        json.dumps("*"): {"kms:Decrypt"},
        **{json.dumps({"Fn::Sub": f"arn:${{AWS::Partition}}:bedrock:*:{account}:{kind}/*"}): {  # its own SigV4 calls
            "bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"} for account, kind in (
            ("", "foundation-model"), ("${AWS::AccountId}", "inference-profile"),
            ("${AWS::AccountId}", "application-inference-profile"))},
    }
    assert not any("AuditTable" in key for key in granted)  # no Scan, no Delete, nothing on the audit trail
    aggregates = {json.dumps(s["Condition"], sort_keys=True): set(as_list(s["Action"]))
                  for s in statements_of(template, "ProxyFunctionRole")
                  if s["Resource"] == {"Fn::GetAtt": ["AggregatesTable", "Arn"]}}
    assert aggregates == {  # each action on its partitions only: no report, no other signal
        json.dumps(condition, sort_keys=True): actions for condition, actions in (
            ({"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["signal#auth_failures"]}}, {"dynamodb:UpdateItem"}),
            ({"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["hard#*"]}}, {"dynamodb:UpdateItem"}),
            ({"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["hold#*"]}}, {"dynamodb:DeleteItem", "dynamodb:PutItem"}),
            ({"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["rate#*"]}}, {"dynamodb:UpdateItem"}),
            ({"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["config#limits"]}}, {"dynamodb:Query"}),
            ({"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["config#fallbacks"]}}, {"dynamodb:Query"}))}
    env = template["Resources"]["ProxyFunction"]["Properties"]["Environment"]["Variables"]
    for provider in ("openai", "anthropic", "openrouter", "groq", "gemini", "azure"):  # the names it reads are the ones it may read
        assert env[f"TOLLGATE_{provider.upper()}_API_KEY_PARAMETER"] == {"Fn::Sub": f"/tollgate/${{Stage}}/{provider}-api-key"}


def test_stream_mapping_tables_and_buckets(packaged):
    _, template = packaged
    mapping = template["Resources"]["RollupCalls"]["Properties"]["Events"]["RollupCallsDynamodbEventSource"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True  # only a record that keeps failing is retried, then dead-lettered
    assert mapping["MaximumRetryAttempts"] <= 100 and "OnFailure" in mapping["DestinationConfig"]
    # batches gathered for up to 40 s (infra/resources.json over Chalice's 100), ten in flight per shard, each holding
    # whole partition keys (accounts): the rollup folds each item once a batch, so its write units a call fall as an
    # account's calls in a batch grow (docs/BENCHMARKS.md, capacity); /api/summary still shows a call within a minute
    assert (mapping["BatchSize"], mapping["MaximumBatchingWindowInSeconds"], mapping["ParallelizationFactor"]) == (
        10_000, 40, 10)
    spill = template["Resources"]["ReplaySpill"]["Properties"]["Events"]["ReplaySpillSqsEventSource"]
    assert spill["Type"] == "SQS" and spill["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert spill["Properties"]["BatchSize"] == 10  # Chalice's own properties survive the merge
    spill_queue = template["Resources"]["SpillQueue"]["Properties"]
    # AWS: at least six times the function's timeout, so a batch being retried is not delivered twice
    assert spill_queue["VisibilityTimeout"] >= 6 * template["Resources"]["ReplaySpill"]["Properties"]["Timeout"]
    redrive = template["Resources"]["SpillQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["SpillDeadLetterQueue", "Arn"]}
    # a record failing for 6 hours goes to the dead-letter queue while the stream (24 h) still holds it
    assert mapping["MaximumRecordAgeInSeconds"] <= 6 * 3600 < 24 * 3600
    # the rollup has no ceiling of its own (one invocation per stream shard); the proxy's cap keeps it from starving
    for function in ("RollupCalls", "RollupDetails"):
        assert "ReservedConcurrentExecutions" not in template["Resources"][function]["Properties"]
    # the detail tier (chalicelib/rollup/layout.py): the same stream read again, batches gathered for up to 5 minutes
    detail = template["Resources"]["RollupDetails"]["Properties"]["Events"]["RollupDetailsDynamodbEventSource"]
    assert detail["Properties"]["Stream"] == mapping["Stream"]
    assert (detail["Properties"]["BatchSize"], detail["Properties"]["MaximumBatchingWindowInSeconds"]) == (10_000, 300)
    assert {k: v for k, v in detail["Properties"].items() if k != "MaximumBatchingWindowInSeconds"} == {
        k: v for k, v in mapping.items() if k != "MaximumBatchingWindowInSeconds"}
    assert template["Resources"]["ProxyFunction"]["Properties"]["ReservedConcurrentExecutions"] >= 1
    tables = resources(template, "AWS::DynamoDB::Table")
    assert len(tables) == 8
    assert all(t["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] for t in tables.values())
    assert tables["CallsTable"]["Properties"]["TimeToLiveSpecification"]["Enabled"]
    # summaries stay: TTL deletes only the items that carry `expires_at` there (a session's totals, an export's record)
    assert tables["AggregatesTable"]["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "expires_at",
                                                                                 "Enabled": True}
    for bucket in resources(template, "AWS::S3::Bucket").values():  # the dashboard too: CloudFront reads it via OAC
        assert all(bucket["Properties"]["PublicAccessBlockConfiguration"].values())


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
    setup = ("import json, boto3; from local.tables import create_tables; from chalicelib.ledger.keys import "
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




# --- the hosted dashboard reaches /api ------------------------------------------------------------------
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # CloudFront's managed cache policies ...
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"  # ... and origin request policies, by id
SAFELISTED_HEADERS = {"accept", "accept-language", "content-language", "content-type"}  # CORS: need no preflight
DISTRIBUTION_DOMAIN = "d1234abcd.cloudfront.net"  # stands for ${DashboardDistribution.DomainName}


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _api_operation(template, path: str, method: str):
    """The REST API operation a stage-relative path reaches (path parameters match one segment)."""
    import re

    for declared, operations in api_paths(template).items():
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(declared)), path) and method in operations:
            return operations[method]
    return None


def browser_fetch(template, page: str, url: str, method: str, headers: dict[str, str]):
    """What a browser showing `page` does with `fetch(url, {method, headers})` against this template: returns
    (whether it sent a preflight first, the API operation the request reached). A cross-origin request with a
    header outside the CORS safelist (X-Dashboard-Key) is preflighted with OPTIONS and sent only if the answer
    allows the page's origin and the header; a same-origin request is sent as it is."""
    from fnmatch import fnmatchcase

    distribution = template["Resources"]["DashboardDistribution"]["Properties"]["DistributionConfig"]
    preflight = _origin(page) != _origin(url) and bool({h.lower() for h in headers} - SAFELISTED_HEADERS)
    path = "/" + url.split("://", 1)[1].split("/", 1)[1].split("?", 1)[0]
    if _origin(url) != f"https://{DISTRIBUTION_DOMAIN}":  # the API's own domain, path after the stage
        path = "/" + path.split("/", 2)[2]
        options = _api_operation(template, path, "options") if preflight else None
        answer = (options or {}).get("x-amazon-apigateway-integration", {}).get("responses", {}).get("default", {})
        headers_allowed = answer.get("responseParameters", {})
        allowed = (headers_allowed.get("method.response.header.Access-Control-Allow-Origin") == f"'{_origin(page)}'"
                   and "x-dashboard-key" in headers_allowed.get(
                       "method.response.header.Access-Control-Allow-Headers", "").lower())
        return preflight, _api_operation(template, path, method.lower()) if allowed or not preflight else None
    behavior = next((b for b in distribution.get("CacheBehaviors", []) if fnmatchcase(path, b["PathPattern"])),
                    distribution["DefaultCacheBehavior"])
    assert method.upper() in behavior.get("AllowedMethods", ["GET", "HEAD"]), (path, method, behavior)
    origin = next(o for o in distribution["Origins"] if o["Id"] == behavior["TargetOriginId"])
    if "CustomOriginConfig" not in origin:
        return preflight, None  # the S3 bucket: the dashboard's files
    assert origin["DomainName"] == {"Fn::Sub": "${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    # nothing cached, every viewer header (the dashboard key) and the query string forwarded
    assert behavior["CachePolicyId"] == CACHING_DISABLED and behavior["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST
    stage = template["Resources"]["RestAPI"]["Properties"]["StageName"]
    assert origin["OriginPath"] == f"/{stage}"  # CloudFront prepends it: /api/summary → stage api, path /api/summary
    return preflight, _api_operation(template, path, method.lower())


def test_the_hosted_dashboard_reaches_every_api_route_on_its_own_origin(packaged):
    """The dashboard's CloudFront distribution serves /api/* from the REST API, so the page and the API share one
    origin: a browser sends the dashboard key with no preflight, and every /api route of app.py answers through
    the Chalice function. `make deploy` builds the dashboard without an API URL (same origin), and no /api path
    answers a preflight, so no other origin's page can read /api with a key."""
    import app

    _, template = packaged
    deploy = (ROOT / "infra" / "deploy.sh").read_text()
    [build] = [line for line in deploy.splitlines() if "local.build_dashboard" in line]
    assert "--api-url" not in build  # config.json's api_url stays empty: the dashboard calls its own origin
    page = f"https://{DISTRIBUTION_DOMAIN}/"
    routes = [(path, method) for path, methods in app.app.routes.items() if path.startswith("/api/") for method in methods]
    assert len(routes) >= 10
    for path, method in routes:
        concrete = path.replace("{", "").replace("}", "")  # /api/calls/call_id: one segment for each parameter
        preflight, operation = browser_fetch(template, page, f"https://{DISTRIBUTION_DOMAIN}{concrete}?hours=24",
                                             method, {"X-Dashboard-Key": "tgd-key"})
        assert not preflight, (path, method)
        assert operation is not None, f"{method} {path} does not reach the API through CloudFront"
        assert "${APIHandler.Arn}" in integration_uri(operation), (path, method)
    for path, operations in api_paths(template).items():
        assert not (path.startswith("/api/") and "options" in operations), f"{path} answers other origins' preflights"
    preflight, reached = browser_fetch(template, page, "https://abc.execute-api.us-east-1.amazonaws.com/api/api/summary",
                                       "GET", {"X-Dashboard-Key": "tgd-key"})
    assert preflight and reached is None  # the API's own URL from the page: cross-origin, its preflight refused
    assert "TOLLGATE_DASHBOARD_ORIGIN" not in template["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]


# --- data survives ------------------------------------------------------------------------------------------
def test_the_data_survives_the_stack(packaged):
    """Deleting the stack, or a change that would replace a resource, keeps every table, the archive and the
    spill queues (they hold call records), but a first deploy that fails removes what it created, so the retry
    does not fail on their names (`RetainExceptOnCreate`; a replacement keeps them: UpdateReplacePolicy takes no
    RetainExceptOnCreate). Tables refuse deletion even outside CloudFormation from the deploy after the one that
    created them (make deploy's second, short update on a first deploy): a rollback could not delete them else."""
    _, template = packaged
    keep = {**resources(template, "AWS::DynamoDB::Table"),
            "ArchiveBucket": template["Resources"]["ArchiveBucket"],
            "SpillQueue": template["Resources"]["SpillQueue"],
            "SpillDeadLetterQueue": template["Resources"]["SpillDeadLetterQueue"]}
    assert len(keep) == 11
    for name, resource in keep.items():
        assert (resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy")) == ("RetainExceptOnCreate",
                                                                                        "Retain"), name
    for name, table in resources(template, "AWS::DynamoDB::Table").items():
        assert table["Properties"]["DeletionProtectionEnabled"] == {"Fn::If": ["DeployedBefore", True, False]}, name
    assert template["Conditions"]["DeployedBefore"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "DashboardUrl"}, ""]}]}
    assert template["Resources"]["ArchiveBucket"]["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    stateful = ("AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::SQS::Queue", "AWS::Logs::LogGroup", "AWS::KMS::Key")
    for name, resource in template["Resources"].items():  # everything else says what happens to it, too
        if resource["Type"] in stateful:
            assert resource.get("DeletionPolicy") in ("RetainExceptOnCreate", "Retain", "Delete"), name
            assert resource.get("UpdateReplacePolicy") == {"RetainExceptOnCreate": "Retain"}.get(
                resource["DeletionPolicy"], resource["DeletionPolicy"]), name


def s3_lifecycle(configuration: dict) -> dict:
    """A CloudFormation LifecycleConfiguration as S3's PutBucketLifecycleConfiguration takes it (its arguments)."""
    rules = []
    for rule in configuration["Rules"]:
        conditions = {k: v for k, v in (("Prefix", rule.get("Prefix")),
                                        ("ObjectSizeGreaterThan", rule.get("ObjectSizeGreaterThan"))) if v is not None}
        s3_rule = {"ID": rule["Id"], "Status": rule["Status"],
                   "Filter": {"And": conditions} if len(conditions) > 1 else conditions}
        if "ExpirationInDays" in rule:
            s3_rule["Expiration"] = {"Days": rule["ExpirationInDays"]}
        if rule.get("ExpiredObjectDeleteMarker"):
            s3_rule["Expiration"] = {"ExpiredObjectDeleteMarker": True}
        if "AbortIncompleteMultipartUpload" in rule:
            s3_rule["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
        if "NoncurrentVersionExpiration" in rule:
            s3_rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": rule["NoncurrentVersionExpiration"]["NoncurrentDays"]}
        if "Transitions" in rule:
            s3_rule["Transitions"] = [{"Days": t["TransitionInDays"], "StorageClass": t["StorageClass"]}
                                      for t in rule["Transitions"]]
        rules.append(s3_rule)
    return {"LifecycleConfiguration": {"Rules": rules},
            "TransitionDefaultMinimumObjectSize": configuration.get("TransitionDefaultMinimumObjectSize",
                                                                    "all_storage_classes_128K")}


def test_archived_raw_calls_expire_after_the_stage_retention_while_summaries_stay(packaged):
    """S3 (moto) takes the archive's lifecycle as the template states it; read back: raw calls (`calls/`) expire
    after the stage's retention (365 days), overwritten or deleted versions 30 days later, and objects big enough
    to gain move to Glacier IR; large exports' files (`exports/`) go after 3 days; nothing else expires. Summaries
    are the aggregates, which stay."""
    import boto3
    from moto import mock_aws

    from infra.stages import load
    from infra.template import archive_lifecycle

    _, template = packaged
    retention = load("dev").deploy.archive_retention_days
    configuration = template["Resources"]["ArchiveBucket"]["Properties"]["LifecycleConfiguration"]
    assert configuration == archive_lifecycle(retention) and retention == 365
    assert archive_lifecycle(730)["Rules"][0]["ExpirationInDays"] == 730  # a stage setting
    # S3 applies a rule to the objects that match all its filters: the rule that expires raw calls has no size
    # filter (moto ignores one, so this is read from the template), and the size filter only chooses what tiers
    by_id = {r["Id"]: r for r in configuration["Rules"]}
    assert not {"ObjectSizeGreaterThan", "ObjectSizeLessThan", "Transitions"} & set(by_id["expire-archived-calls"])
    tier = by_id["tier-large-archived-calls"]
    assert "ExpirationInDays" not in tier and "NoncurrentVersionExpiration" not in tier
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="archive")
        s3.put_bucket_versioning(Bucket="archive", VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_lifecycle_configuration(Bucket="archive", **s3_lifecycle(configuration))
        rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket="archive")["Rules"]}
    expire = rules["expire-archived-calls"]
    assert expire["Expiration"] == {"Days": retention} and expire["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    assert expire["Filter"] == {"Prefix": "calls/"} and "Transitions" not in expire
    assert rules["tier-large-archived-calls"]["Transitions"] == [{"Days": 30, "StorageClass": "GLACIER_IR"}]
    # moto keeps neither the size filter nor the default minimum size: read from the template. Objects from
    # ~105 KB reach Glacier IR (S3 skips any under 128 KB by default); smaller ones cost less where they are.
    assert 100 * 1024 < tier["ObjectSizeGreaterThan"] < 128 * 1024
    assert configuration["TransitionDefaultMinimumObjectSize"] == "varies_by_storage_class"
    assert rules["remove-expired-delete-markers"]["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    prefixes = {name: r["Filter"].get("Prefix") or r["Filter"]["And"]["Prefix"] for name, r in rules.items()}
    assert {name for name, prefix in prefixes.items() if prefix != "calls/"} == {
        "expire-exports", "remove-expired-export-delete-markers", "expire-staged-rollup-batches",
        "remove-staged-delete-markers"}  # nothing else expires, summaries least of all
    staged = rules["expire-staged-rollup-batches"]  # the detail tier's staged batches, merged within the hour
    assert prefixes["expire-staged-rollup-batches"] == "rollup/pending/" and staged["Expiration"] == {"Days": 3}
    exports = rules["expire-exports"]  # large exports' files: 3 days, no version kept, no upload left unfinished
    assert prefixes["expire-exports"] == "exports/" and exports["Expiration"] == {"Days": 3}
    assert exports["NoncurrentVersionExpiration"]["NoncurrentDays"] == 1
    assert exports["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


# --- every loss is visible ------------------------------------------------------------------------------------
def _readme_alarm_rows() -> set[str]:
    """The alarm names (with <Function> / <Table> placeholders) in the README's alarm table."""
    import re

    text = (ROOT / "docs" / "OPERATIONS.md").read_text()
    table = text.split("#### Alarms", 1)[1].split("\n\n", 2)[1]
    return {m for line in table.splitlines() if line.startswith("| `") for m in re.findall(r"^\| `([^`]+)`", line)}


def test_every_loss_has_an_alarm_on_the_alerts_topic_and_the_readme_says_what_to_do(packaged):
    from infra import alarms
    from infra.template import FUNCTIONS

    _, template = packaged
    found = resources(template, "AWS::CloudWatch::Alarm")
    tables = sorted(resources(template, "AWS::DynamoDB::Table"))
    expected = {f"{f}{kind}Alarm" for f in FUNCTIONS for kind in ("Errors", "Throttles", "NearTimeout")}
    expected |= {"SpillDeadLetterQueueAlarm", "RollupDeadLetterQueueAlarm", "SpillQueueAgeAlarm", "CallLogLostAlarm",
                 "AuditWriteFailedAlarm", "RollupIteratorAgeAlarm", "RollupDetailsIteratorAgeAlarm", "Api5XXAlarm", "ApiThrottledAlarm"} | {f"{t}ThrottlesAlarm" for t in tables}
    assert set(found) == expected
    for name, alarm in found.items():
        properties = alarm["Properties"]
        assert properties["AlarmActions"] == properties["OKActions"] == [{"Ref": "AlertsTopic"}], name
        assert properties["AlarmName"] == {"Fn::Sub": f"tollgate-${{Stage}}-{name}"}
    for queue in ("SpillDeadLetterQueue", "RollupDeadLetterQueue"):  # one message is one too many
        dead = found[f"{queue}Alarm"]["Properties"]
        assert (dead["MetricName"], dead["Threshold"]) == ("ApproximateNumberOfMessagesVisible", 1)
        assert dead["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    age = found["SpillQueueAgeAlarm"]["Properties"]
    assert (age["MetricName"], age["Threshold"]) == ("ApproximateAgeOfOldestMessage", 300)
    lost = found["CallLogLostAlarm"]["Properties"]
    assert lost["Metrics"][0]["Expression"] == "SELECT SUM(CallLogLost) FROM Tollgate" and lost["Threshold"] == 1
    unaudited = found["AuditWriteFailedAlarm"]["Properties"]
    assert unaudited["Metrics"][0]["Expression"] == "SELECT SUM(AuditWriteFailed) FROM Tollgate"
    for function in FUNCTIONS:
        near = found[f"{function}NearTimeoutAlarm"]["Properties"]
        timeout = template["Resources"][function]["Properties"]["Timeout"]
        assert near["MetricName"] == "Duration" and near["Threshold"] == round(timeout * 1000 * alarms.NEAR_TIMEOUT)
    api = found["Api5XXAlarm"]["Properties"]["Metrics"][0]["MetricStat"]["Metric"]
    assert api["Dimensions"][0] == {"Name": "ApiName", "Value": template["Resources"]["RestAPI"]["Properties"]["Name"]}
    rows = _readme_alarm_rows()
    named = {r.replace("<Function>", f).replace("<Table>", t) for r in rows for f in FUNCTIONS for t in tables}
    assert set(found) <= named, f"alarms the README does not explain: {sorted(set(found) - named)}"
    assert all(any(n in found for n in {r.replace("<Function>", f).replace("<Table>", t) for f in FUNCTIONS
                                        for t in tables}) for r in rows), "README rows for alarms that do not exist"


# --- logs, brakes, tracing --------------------------------------------------------------------------------
def test_each_function_logs_to_its_own_group_of_its_stage_which_expires(packaged):
    from infra.template import FUNCTIONS

    _, template = packaged
    retention = 30  # the dev stage's setting
    for function, name in FUNCTIONS.items():
        properties = template["Resources"][function]["Properties"]
        assert properties["FunctionName"] == {"Fn::Sub": f"tollgate-${{Stage}}-{name}"}
        group = template["Resources"][f"{function}LogGroup"]
        assert group["Properties"] == {"LogGroupName": {"Fn::Sub": f"/aws/lambda/tollgate-${{Stage}}-{name}"},
                                       "RetentionInDays": retention}
        assert f"{function}LogGroup" in template["Resources"][function]["DependsOn"]
        [logs] = [s for s in statements_of(template, template["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0])
                  if any(a.startswith("logs:") for a in as_list(s["Action"]))]
        assert logs["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]  # the group exists: no CreateLogGroup
        assert logs["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
                                               f"/aws/lambda/tollgate-${{Stage}}-{name}:*"}
    api = template["Resources"]["RestAPI"]["Properties"]
    assert api["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert template["Resources"]["ApiAccessLogGroup"]["Properties"]["RetentionInDays"] == retention
    assert "$context.requestId" in api["AccessLogSetting"]["Format"]
    assert "header" not in api["AccessLogSetting"]["Format"].lower()  # keys travel in headers: never logged


def test_brakes_and_tracing_follow_the_stage(packaged):
    """Per-method throttling and the proxy's concurrency cap from the stage, API Gateway's own 429s counted into a
    metric with an alarm; `"xray": true` traces every function and the API stage and grants X-Ray writes, and
    nothing of it otherwise."""
    import copy

    from infra.stages import DeploySettings, Stage, load
    from infra.template import FUNCTIONS, finish

    _, template = packaged
    dev = load("dev")
    api = template["Resources"]["RestAPI"]["Properties"]
    assert api["MethodSettings"] == [{"ResourcePath": "/*", "HttpMethod": "*", "MetricsEnabled": True,
                                      "ThrottlingRateLimit": dev.deploy.throttle_rate_per_second,
                                      "ThrottlingBurstLimit": dev.deploy.throttle_burst}]
    # the proxy's cap is the stage's; nothing else reserves concurrency (a ceiling on the rollup lags budgets)
    reserved = {n: f["Properties"]["ReservedConcurrentExecutions"] for n, f in
                resources(template, "AWS::Serverless::Function").items() if "ReservedConcurrentExecutions" in f["Properties"]}
    assert reserved == {"ProxyFunction": dev.deploy.proxy_reserved_concurrency} and reserved["ProxyFunction"] == 100
    assert not any("reserved_concurrency" in c for c in dev.chalice.get("lambda_functions", {}).values())
    # API Gateway's own throttling (not a budget's 429 or a provider's): a field of the access log, counted
    access = template["Resources"]["RestAPI"]["Properties"]["AccessLogSetting"]["Format"]
    assert '"responseType":"$context.error.responseType"' in access
    [counted] = resources(template, "AWS::Logs::MetricFilter").values()
    assert counted["Properties"]["LogGroupName"] == {"Ref": "ApiAccessLogGroup"}
    assert counted["Properties"]["FilterPattern"] == '{ $.responseType = "THROTTLED" }'
    [metric] = counted["Properties"]["MetricTransformations"]
    throttled = template["Resources"]["ApiThrottledAlarm"]["Properties"]
    assert (throttled["Namespace"], throttled["MetricName"]) == (metric["MetricNamespace"], metric["MetricName"])
    assert metric["MetricValue"] == "1" and throttled["Threshold"] == 1 and throttled["Statistic"] == "Sum"
    assert api["TracingEnabled"] is False
    assert {template["Resources"][f]["Properties"]["Tracing"] for f in FUNCTIONS} == {"PassThrough"}

    traced = finish(copy.deepcopy(template), Stage("dev", {**dev.chalice, "xray": True},
                                                     DeploySettings(log_retention_days=90, throttle_burst=7,
                                                                    proxy_reserved_concurrency=None)))
    assert "ReservedConcurrentExecutions" not in traced["Resources"]["ProxyFunction"]["Properties"]
    assert traced["Resources"]["RestAPI"]["Properties"]["TracingEnabled"] is True
    assert traced["Resources"]["RestAPI"]["Properties"]["MethodSettings"][0]["ThrottlingBurstLimit"] == 7
    for function in FUNCTIONS:
        assert traced["Resources"][function]["Properties"]["Tracing"] == "Active"
        assert traced["Resources"][f"{function}LogGroup"]["Properties"]["RetentionInDays"] == 90
        role = traced["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
        assert any(s.get("Sid") == "XRayTraces" for s in statements_of(traced, role))


def test_functions_do_not_wait_on_cloudfront_and_secrets_stay_hidden(packaged):
    """CloudFront takes minutes to create: the functions learn the dashboard's URL from a parameter
    (`make deploy` passes it), never from the distribution. The webhook URL is NoEcho."""
    from infra.template import FUNCTIONS, role_of

    _, template = packaged
    for function in FUNCTIONS:
        for name in (function, role_of(function), f"{function}LogGroup"):
            assert "DashboardDistribution" not in json.dumps(template["Resources"][name]), name
    assert template["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]["TOLLGATE_DASHBOARD_URL"] == \
        {"Ref": "DashboardUrl"}
    assert template["Parameters"]["AlertWebhookUrl"]["NoEcho"] is True
    assert template["Parameters"]["Stage"]["AllowedValues"] == ["dev"]  # a dev package cannot become another stage


def test_packaging_a_stage_that_does_not_exist_says_how_to_create_it(tmp_path):
    done = subprocess.run([sys.executable, "-m", "infra.package", "--stage", "prod", "--out", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: stage 'prod' is not in .chalice/config.json: create it with `.venv/bin/python -m infra.stages add prod`"]
    assert not (tmp_path / "out").exists()


# --- what AWS does with the template: one API stage, retries, encryption, TLS, who may call /admin --------------
@pytest.fixture(scope="module")
def transformed(packaged):
    """The packaged template after the SAM transform (as `make deploy` runs it)."""
    return sam_transform(packaged[1], "s3://tollgate-code/dev/deployment.zip")


def test_one_api_stage_alone_invokes_the_functions_and_it_waits_for_the_logging_role(packaged, transformed):
    """SAM adds a stage named `Stage` (no throttling, no access log, no alarm) unless the API states its OpenAPI
    version: a deployment that names a stage creates it. The functions may be invoked by the `api` stage only.
    In a fresh account the stage's access log needs the account's logging role first ("CloudWatch Logs role ARN
    must be set in account settings"): the stage refers to ApiGatewayAccount, under that resource's own condition
    (a DependsOn on a resource that may not exist is refused), so CloudFormation creates the stage after it."""
    _, template = packaged
    api = template["Resources"]["RestAPI"]["Properties"]
    assert api["OpenApiVersion"] == api["DefinitionBody"]["swagger"] == "2.0"
    [stage] = resources(transformed, "AWS::ApiGateway::Stage").values()
    assert stage["Properties"]["StageName"] == api["StageName"] == "api"
    assert "RestAPIStage" not in transformed["Resources"]
    deployments = resources(transformed, "AWS::ApiGateway::Deployment")
    assert deployments and all("StageName" not in d["Properties"] for d in deployments.values())
    waits = [t["Value"] for t in stage["Properties"].get("Tags", []) if "ApiGatewayAccount" in _names_in(t["Value"])]
    assert waits == [{"Fn::If": ["CreateApiGatewayLogsRole", {"Ref": "ApiGatewayAccount"}, "existing"]}]
    assert transformed["Resources"]["ApiGatewayAccount"]["Condition"] == "CreateApiGatewayLogsRole"
    invokers = [p["Properties"] for p in resources(transformed, "AWS::Lambda::Permission").values()
                if p["Properties"]["Principal"] == "apigateway.amazonaws.com"]
    assert sorted(p["FunctionName"]["Ref"] for p in invokers) == ["APIHandler", "ProxyFunction"]
    for permission in invokers:
        assert permission["SourceArn"] == {
            "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${RestAPI}/api/*"}


def test_scheduled_runs_are_not_retried_and_a_failed_export_reaches_the_alerts_topic(packaged, transformed):
    """Lambda retries a failed asynchronous invocation twice by default: a scheduled run retried overlaps the next
    one (the evaluator runs every minute), so they are not retried and a run not started in time is dropped. The
    export function, invoked asynchronously by the API, sends an invocation that failed for good to the alerts
    topic, which its role may publish to (with the topic's key)."""
    _, template = packaged
    ages = {"EvaluateEveryMinute": 60, "MergeDetails": 60, "DailyDigest": 3600, "WeeklyReport": 3600}
    for function, age in ages.items():
        assert template["Resources"][function]["Properties"]["EventInvokeConfig"] == {
            "MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": age}, function
    export = template["Resources"]["ExportCalls"]["Properties"]["EventInvokeConfig"]
    assert export["DestinationConfig"] == {"OnFailure": {"Type": "SNS", "Destination": {"Ref": "AlertsTopic"}}}
    granted = {json.dumps(s["Resource"]): set(as_list(s["Action"])) for s in statements_of(template, "ExportCallsRole")}
    assert {"sns:Publish"} <= granted[json.dumps({"Ref": "AlertsTopic"})]
    assert {"kms:GenerateDataKey", "kms:Decrypt"} <= granted[json.dumps({"Fn::GetAtt": ["AlertsKey", "Arn"]})]
    configs = {c["Properties"]["FunctionName"]["Ref"]: c["Properties"]
               for c in resources(transformed, "AWS::Lambda::EventInvokeConfig").values()}
    assert template["Resources"]["MergeGroup"]["Properties"]["EventInvokeConfig"] == {
        "MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60}  # the next tick starts it again
    assert set(configs) == {*ages, "ExportCalls", "MergeGroup"} and {c["Qualifier"] for c in configs.values()} == {"$LATEST"}
    assert configs["ExportCalls"]["DestinationConfig"] == {"OnFailure": {"Destination": {"Ref": "AlertsTopic"}}}
    assert configs["EvaluateEveryMinute"]["MaximumRetryAttempts"] == 0


def test_the_alerts_topic_is_encrypted_with_a_key_the_alarms_may_use(packaged):
    """AWS's own aws/sns key cannot be used by CloudWatch alarms (its policy cannot be changed to let them): the
    topic has a key of its own whose policy lets CloudWatch publish, and every role that publishes to the topic
    may make and read data keys with it."""
    _, template = packaged
    key_arn = {"Fn::GetAtt": ["AlertsKey", "Arn"]}
    assert template["Resources"]["AlertsTopic"]["Properties"]["KmsMasterKeyId"] == key_arn
    key = template["Resources"]["AlertsKey"]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    [alarms] = [s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert sorted(alarms["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    [account] = [s for s in statements if s["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}]
    assert account["Action"] == "kms:*"  # IAM policies decide for the account's roles (the grants below)
    publishers = {role for role in resources(template, "AWS::IAM::Role") if any(
        s["Resource"] == {"Ref": "AlertsTopic"} and "sns:Publish" in as_list(s["Action"])
        for s in statements_of(template, role))}
    assert publishers == {"ApiHandlerRole", "EvaluateEveryMinuteRole", "DailyDigestRole", "WeeklyReportRole",
                          "ExportCallsRole"}
    for role in publishers:
        [grant] = [s for s in statements_of(template, role) if s["Resource"] == key_arn]
        assert grant["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"], role


def test_the_buckets_refuse_requests_without_tls(packaged):
    _, template = packaged
    for bucket in ("ArchiveBucket", "DashboardBucket"):
        [policy] = [p["Properties"] for p in resources(template, "AWS::S3::BucketPolicy").values()
                    if p["Properties"]["Bucket"] == {"Ref": bucket}]
        [deny] = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert (deny["Principal"], deny["Action"]) == ("*", "s3:*")
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert deny["Resource"] == [{"Fn::GetAtt": [bucket, "Arn"]}, {"Fn::Sub": f"${{{bucket}.Arn}}/*"}]


def test_the_dashboard_logs_its_requests_and_offers_tls_1_2_on_a_domain_of_its_own(packaged):
    """The default *.cloudfront.net certificate fixes the viewer security policy at TLSv1: only a distribution
    with its own domain and an ACM certificate (us-east-1) can require TLS 1.2, a stage option. Every request is
    logged (CloudFront's standard logging to S3, kept as long as the stage's logs) in the Regions CloudFront
    delivers logs to. Names that are global carry the Region: one stage may be deployed in two Regions."""
    from infra.stages import load
    from infra.template import CLOUDFRONT_LOG_REGIONS

    _, template = packaged
    config = template["Resources"]["DashboardDistribution"]["Properties"]["DistributionConfig"]
    assert "Aliases" not in config and "ViewerCertificate" not in config  # the default certificate: TLSv1
    assert config["Logging"] == {"Fn::If": ["CloudFrontLogsHere", {
        "Bucket": {"Fn::GetAtt": ["DashboardLogsBucket", "DomainName"]}, "Prefix": "dashboard/",
        "IncludeCookies": False}, {"Ref": "AWS::NoValue"}]}
    logs = template["Resources"]["DashboardLogsBucket"]
    assert logs["Condition"] == "CloudFrontLogsHere"
    assert logs["Properties"]["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]}
    assert all(logs["Properties"]["PublicAccessBlockConfiguration"].values())
    assert logs["Properties"]["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == \
        load("dev").deploy.log_retention_days
    assert {"us-east-1", "eu-west-1"} <= set(CLOUDFRONT_LOG_REGIONS) and "eu-south-1" not in CLOUDFRONT_LOG_REGIONS
    assert json.dumps(template["Conditions"]["CloudFrontLogsHere"]).count('"Fn::Equals"') == len(CLOUDFRONT_LOG_REGIONS)
    assert "${AWS::Region}" in template["Resources"]["DashboardBucket"]["Properties"]["BucketName"]["Fn::Sub"]
    assert "${AWS::Region}" in template["Resources"]["DashboardOriginAccessControl"]["Properties"][
        "OriginAccessControlConfig"]["Name"]["Fn::Sub"]

    on = every_option_on(template)
    config = on["Resources"]["DashboardDistribution"]["Properties"]["DistributionConfig"]
    assert config["Aliases"] == ["dash.example.com"]
    assert config["ViewerCertificate"] == {"AcmCertificateArn": CERTIFICATE, "SslSupportMethod": "sni-only",
                                           "MinimumProtocolVersion": "TLSv1.2_2021"}
    assert on["Outputs"]["DashboardURL"]["Value"] == "https://dash.example.com"


def test_admin_answers_only_the_stages_networks_when_it_names_them(packaged):
    """`admin_source_cidrs`: the REST API's resource policy denies /admin to every other address (the key alone
    guards it otherwise, the default); everything else stays open, as the proxy and /api must be."""
    _, template = packaged
    assert "x-amazon-apigateway-policy" not in template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    on = every_option_on(template)
    policy = on["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["x-amazon-apigateway-policy"]
    assert policy == {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*"},
        {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*/*/admin/*",
         "Condition": {"NotIpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:db8::/32"]}}}]}
    body = sam_transform(on, "s3://tollgate-code/dev/deployment.zip")["Resources"]["RestAPI"]["Properties"]["Body"]
    assert body["x-amazon-apigateway-policy"] == policy  # SAM passes it to the RestApi, as API Gateway reads it


# --- the stack deploys in moto -------------------------------------------------------------------------------
MOTO_ACCOUNT, MOTO_REGION = "123456789012", "us-east-1"


def sam_transform(template: dict, code_uri: str) -> dict:
    """The SAM transform `make deploy` runs (infra/sam_transform.py), after `aws cloudformation package` has
    replaced every CodeUri with the uploaded zip."""
    import copy

    from infra.sam_transform import transform

    sam = copy.deepcopy(template)
    for resource in resources(sam, "AWS::Serverless::Function").values():
        resource["Properties"]["CodeUri"] = code_uri
    return transform(sam, MOTO_REGION, MOTO_ACCOUNT, "tollgate-dev")


def _names_in(node) -> set[str]:
    """Logical ids a template fragment refers to (Ref, GetAtt, ${...} in Sub)."""
    import re

    if isinstance(node, list):
        return set().union(*map(_names_in, node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = set()
    for key, value in node.items():
        if key == "Ref" and isinstance(value, str):
            found.add(value)
        elif key == "Fn::GetAtt":
            found.add(value[0] if isinstance(value, list) else value.split(".")[0])
        elif key == "Fn::Sub":
            text, variables = (value, {}) if isinstance(value, str) else value
            found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)} | _names_in(variables)
        else:
            found |= _names_in(value)
    return found


def resolve(node, physical: dict[str, str], parameters: dict[str, str]):
    """A fragment with Ref, GetAtt (Arn, QueueName) and Sub replaced by the deployed stack's values (`physical` may
    also name an attribute, `Bucket.Arn`, where the physical id is not the ARN)."""
    import re

    def value(name: str) -> str:
        logical, _, attribute = name.partition(".")
        if name in physical:
            return physical[name]
        if logical in parameters:
            return parameters[logical]
        if attribute == "QueueName":
            return physical[logical].rsplit("/", 1)[1]
        assert not attribute or attribute == "Arn", name
        return physical[logical]

    if isinstance(node, list):
        return [resolve(v, physical, parameters) for v in node]
    if not isinstance(node, dict):
        return node
    if "Ref" in node:
        return value(node["Ref"])
    if "Fn::GetAtt" in node:
        return value(".".join(node["Fn::GetAtt"]))
    if "Fn::Sub" in node:
        return re.sub(r"\$\{([^}!]+)\}", lambda m: value(m.group(1)), node["Fn::Sub"])
    return {k: resolve(v, physical, parameters) for k, v in node.items()}


# Left out of the moto stack: what moto's CloudFormation cannot create (CloudFront, API Gateway), and what
# refers to it. The template tests above cover them.
NOT_IN_MOTO = {"DashboardDistribution", "DashboardOriginAccessControl", "DashboardBucketPolicy", "RestAPI",
               "RestAPIapiStage", "APIHandlerInvokePermission", "ProxyFunctionInvokePermission", "ApiGatewayAccount"}
# Types moto's CloudFormation skips (with a warning): the test creates them through their own APIs.
MOTO_SKIPS = ("AWS::CloudWatch::Alarm", "AWS::Lambda::EventInvokeConfig", "AWS::Logs::MetricFilter",
              "AWS::S3::BucketPolicy")


@pytest.mark.filterwarnings("ignore:Tried to parse AWS")  # moto: no CloudFormation for MOTO_SKIPS (created below)
def test_the_stack_deploys_in_moto_after_the_sam_transform(packaged):
    """`aws cloudformation package` (the zip to S3) and the SAM transform, then CloudFormation in moto: every
    resource but CloudFront's and API Gateway's is created, with the names, settings and links the template
    gives. moto 5.2's CloudFormation skips alarms, asynchronous invocation configs, metric filters, bucket policies
    and a bucket's versioning and lifecycle, so those go through their own APIs (PutMetricAlarm,
    PutFunctionEventInvokeConfig, PutMetricFilter, PutBucketPolicy, PutBucketVersioning,
    PutBucketLifecycleConfiguration) with the stack's physical names: botocore and moto validate each one."""
    import boto3
    from moto import mock_aws

    out, template = packaged
    transformed = sam_transform(template, "s3://tollgate-code/dev/deployment.zip")
    everything = transformed["Resources"]
    left_out = {n for n, r in everything.items() if r["Type"].startswith(("AWS::CloudFront::", "AWS::ApiGateway::"))}
    while more := {n for n, r in everything.items() if n not in left_out and _names_in(r) & left_out}:
        left_out |= more
    assert {n for n in left_out if not n.startswith("RestAPIDeployment")} == NOT_IN_MOTO
    stack_template = {**transformed, "Resources": {n: r for n, r in everything.items() if n not in left_out},
                      "Outputs": {k: v for k, v in transformed.get("Outputs", {}).items() if not _names_in(v) & left_out}}
    parameters = {"Stage": "dev", "SlackWebhookParameterName": "/tollgate/dev/slack-webhook-url",
                  "AlertWebhookUrl": "https://hooks.example.com/t", "DashboardUrl": "https://d1234abcd.cloudfront.net",
                  "ApiGatewayAccountRole": "create"}
    with mock_aws():
        s3 = boto3.client("s3", region_name=MOTO_REGION)
        s3.create_bucket(Bucket="tollgate-code")
        s3.upload_file(str(out / "deployment.zip"), "tollgate-code", "dev/deployment.zip")
        cloudformation = boto3.client("cloudformation", region_name=MOTO_REGION)
        cloudformation.create_stack(StackName="tollgate-dev", TemplateBody=json.dumps(stack_template),
                                    Capabilities=["CAPABILITY_IAM"],
                                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()])
        assert cloudformation.describe_stacks(StackName="tollgate-dev")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
        summaries = cloudformation.list_stack_resources(StackName="tollgate-dev")["StackResourceSummaries"]
        created = {r["LogicalResourceId"]: r["ResourceStatus"] for r in summaries if r["LogicalResourceId"]}
        assert created == {n: "CREATE_COMPLETE" for n, r in stack_template["Resources"].items()
                           if r["Type"] not in MOTO_SKIPS}
        physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in summaries}

        kinds = {}
        for r in stack_template["Resources"].values():
            kinds[r["Type"]] = kinds.get(r["Type"], 0) + 1
        assert kinds == {"AWS::DynamoDB::Table": 8, "AWS::SQS::Queue": 3, "AWS::S3::Bucket": 3, "AWS::SNS::Topic": 1,
                         "AWS::KMS::Key": 1, "AWS::S3::BucketPolicy": 1, "AWS::Lambda::Function": 11,
                         "AWS::IAM::Role": 12, "AWS::Logs::LogGroup": 12, "AWS::Logs::MetricFilter": 1,
                         "AWS::Lambda::EventSourceMapping": 3, "AWS::Events::Rule": 4, "AWS::Lambda::Permission": 4,
                         "AWS::Lambda::EventInvokeConfig": 6, "AWS::CloudWatch::Alarm": 50}, kinds

        dynamodb = boto3.client("dynamodb", region_name=MOTO_REGION)
        tables = dynamodb.list_tables()["TableNames"]
        assert len(tables) == 8 and all(
            dynamodb.describe_table(TableName=t)["Table"]["DeletionProtectionEnabled"] for t in tables)
        lambdas = boto3.client("lambda", region_name=MOTO_REGION)
        functions = {f["FunctionName"]: f for f in lambdas.list_functions()["Functions"]}
        assert set(functions) == {f"tollgate-dev-{n}" for n in ("api_handler", "rollup_calls", "rollup_details",
                                                                "replay_spill",
                                                                "evaluate_every_minute", "daily_digest",
                                                                "weekly_report", "proxy", "export_calls",
                                                                "merge_details", "merge_group")}
        assert lambdas.get_function(FunctionName="tollgate-dev-proxy")["Concurrency"] == {
            "ReservedConcurrentExecutions": 100}
        assert "Concurrency" not in lambdas.get_function(FunctionName="tollgate-dev-rollup_calls")
        assert functions["tollgate-dev-api_handler"]["Environment"]["Variables"]["TOLLGATE_DASHBOARD_URL"] == \
            parameters["DashboardUrl"]
        mappings = {m["FunctionArn"].rsplit(":", 1)[1]: m for m in lambdas.list_event_source_mappings()["EventSourceMappings"]}
        rollup = mappings["tollgate-dev-rollup_calls"]
        assert rollup["BisectBatchOnFunctionError"] and rollup["MaximumRecordAgeInSeconds"] == 6 * 3600
        assert rollup["DestinationConfig"]["OnFailure"]["Destination"].endswith(":tollgate-dev-rollup-dlq")
        assert mappings["tollgate-dev-rollup_details"]["MaximumBatchingWindowInSeconds"] == 300  # the detail tier
        assert mappings["tollgate-dev-replay_spill"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        groups = {g["logGroupName"]: g["retentionInDays"] for g in
                  boto3.client("logs", region_name=MOTO_REGION).describe_log_groups()["logGroups"]}
        assert groups == {**{f"/aws/lambda/{name}": 30 for name in functions}, "/aws/apigateway/tollgate-dev/access": 30}
        iam = boto3.client("iam", region_name=MOTO_REGION)
        for function in resources(template, "AWS::Serverless::Function"):
            role = physical[template["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]]
            assert iam.list_role_policies(RoleName=role)["PolicyNames"] == [f"{function}-least-privilege"]

        values = {**parameters, "AWS::Region": MOTO_REGION, "AWS::AccountId": MOTO_ACCOUNT, "AWS::Partition": "aws",
                  "AWS::URLSuffix": "amazonaws.com"}
        cloudwatch = boto3.client("cloudwatch", region_name=MOTO_REGION)
        for name, alarm in stack_template["Resources"].items():
            if alarm["Type"] == "AWS::CloudWatch::Alarm":
                cloudwatch.put_metric_alarm(**resolve(alarm["Properties"], physical, values))  # same names as the API
        described = cloudwatch.describe_alarms(MaxRecords=100)["MetricAlarms"]
        assert len(described) == 50 and {a["AlarmActions"][0] for a in described} == {physical["AlertsTopic"]}
        sns = boto3.client("sns", region_name=MOTO_REGION)
        # (moto keeps a CloudFormation key policy as an object, which its own DescribeKey then fails to read)
        assert sns.get_topic_attributes(TopicArn=physical["AlertsTopic"])["Attributes"]["KmsMasterKeyId"] == \
            f"arn:aws:kms:{MOTO_REGION}:{MOTO_ACCOUNT}:key/{physical['AlertsKey']}"

        for config in (r["Properties"] for r in stack_template["Resources"].values()
                       if r["Type"] == "AWS::Lambda::EventInvokeConfig"):
            lambdas.put_function_event_invoke_config(**resolve(config, physical, values))
        export = lambdas.get_function_event_invoke_config(FunctionName="tollgate-dev-export_calls")
        assert export["DestinationConfig"]["OnFailure"]["Destination"] == physical["AlertsTopic"]
        assert lambdas.get_function_event_invoke_config(
            FunctionName="tollgate-dev-evaluate_every_minute")["MaximumRetryAttempts"] == 0
        logs = boto3.client("logs", region_name=MOTO_REGION)
        [counted] = [r["Properties"] for r in stack_template["Resources"].values() if r["Type"] == "AWS::Logs::MetricFilter"]
        counted = resolve(counted, physical, values)
        logs.put_metric_filter(logGroupName=counted["LogGroupName"], filterName=counted["FilterName"],
                               filterPattern=counted["FilterPattern"], metricTransformations=[
                                   {k[0].lower() + k[1:]: v for k, v in t.items()} for t in counted["MetricTransformations"]])
        [throttled] = logs.describe_metric_filters(logGroupName="/aws/apigateway/tollgate-dev/access")["metricFilters"]
        assert throttled["filterPattern"] == '{ $.responseType = "THROTTLED" }'
        [policy] = [r["Properties"] for r in stack_template["Resources"].values() if r["Type"] == "AWS::S3::BucketPolicy"]
        arns = {**physical, "ArchiveBucket.Arn": f"arn:aws:s3:::{physical['ArchiveBucket']}"}
        policy = resolve(policy, arns, values)
        s3.put_bucket_policy(Bucket=policy["Bucket"], Policy=json.dumps(policy["PolicyDocument"]))

        archive = resolve(stack_template["Resources"]["ArchiveBucket"]["Properties"], physical, values)
        s3.put_bucket_versioning(Bucket=archive["BucketName"], VersioningConfiguration=archive["VersioningConfiguration"])
        s3.put_bucket_lifecycle_configuration(Bucket=archive["BucketName"], **s3_lifecycle(archive["LifecycleConfiguration"]))
        assert s3.get_bucket_versioning(Bucket=archive["BucketName"])["Status"] == "Enabled"
        queue = boto3.client("sqs", region_name=MOTO_REGION).get_queue_attributes(
            QueueUrl=physical["SpillQueue"], AttributeNames=["VisibilityTimeout", "RedrivePolicy"])["Attributes"]
        assert queue["VisibilityTimeout"] == "360" and "tollgate-dev-spill-dlq" in queue["RedrivePolicy"]
