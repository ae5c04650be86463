"""infra/ without packaging: stages (and creating one), which archive objects are worth Glacier IR, and how a
function's grants become its role's policy."""
import json
import re

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
    ("a" * 16, "1-15"),
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
                                         "AlertsTopic", "AlertsKey", "BudgetsTable", "DeliveriesTable", "KeysTable",
                                         "DeliveriesTableIndexByStatus"}
    # the topic is encrypted with its own key: publishing needs a data key from it
    [key] = [s for s in plain if s["Sid"] == "AlertsKey"]
    assert key["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"] and key["Resource"] == {
        "Fn::GetAtt": ["AlertsKey", "Arn"]}
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


def test_archived_calls_expire_whatever_their_size():
    """S3 applies a rule only to objects matching every one of its filters: the rule that expires raw calls has
    no size filter (else small archive objects would never expire), and tiering to Glacier IR, which does
    filter by size, is a rule of its own that expires nothing."""
    from infra.template import archive_lifecycle

    for retention in (90, 119, 365, 730, 2557):
        rules = archive_lifecycle(retention)["Rules"]
        [expire] = [r for r in rules if r["Id"] == "expire-archived-calls"]
        assert (expire["Prefix"], expire["ExpirationInDays"]) == ("calls/", retention)
        assert expire["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
        assert not {"ObjectSizeGreaterThan", "ObjectSizeLessThan", "Transitions"} & set(expire), retention
        sized = [r for r in rules if "ObjectSizeGreaterThan" in r or "ObjectSizeLessThan" in r]
        assert all("ExpirationInDays" not in r and "NoncurrentVersionExpiration" not in r for r in sized)
        tiering = [r for r in rules if "Transitions" in r]
        if smallest_object_worth_tiering(retention) is None:
            assert not tiering
        else:
            [tier] = tiering
            assert tier["Prefix"] == "calls/" and tier["ObjectSizeGreaterThan"] == smallest_object_worth_tiering(retention)
            assert tier["Transitions"] == [{"StorageClass": "GLACIER_IR", "TransitionInDays": 30}]


# The longest Region name (us-isof-south-1); commercial ones are at most 14 characters (ap-southeast-5).
LONGEST_REGION = "us-isof-south-1"


def test_the_longest_stage_name_fits_every_global_name_in_every_region():
    """S3 bucket names and CloudFront origin access control names are global (per partition or account): the
    dashboard's carry the Region, so one stage can be deployed in two Regions, and the longest stage name the
    pattern accepts still fits S3's 63 characters."""
    longest = "a" * 15
    assert stages.STAGE_NAME.fullmatch(longest) and not stages.STAGE_NAME.fullmatch(longest + "a")
    resources = json.loads((stages.ROOT / "infra" / "resources.json").read_text())["Resources"]
    dashboard = resources["DashboardBucket"]["Properties"]["BucketName"]["Fn::Sub"]
    control = resources["DashboardOriginAccessControl"]["Properties"]["OriginAccessControlConfig"]["Name"]["Fn::Sub"]
    assert "${AWS::Region}" in dashboard and "${AWS::Region}" in control
    for name, most in ((dashboard, 63), (resources["ArchiveBucket"]["Properties"]["BucketName"]["Fn::Sub"], 63),
                       (control, 64)):
        concrete = name.replace("${Stage}", longest).replace("${AWS::Region}", LONGEST_REGION).replace(
            "${AWS::AccountId}", "123456789012")
        assert len(concrete) <= most, concrete


def test_the_docs_say_how_often_a_spilled_record_is_received_before_it_is_dead_lettered():
    resources = json.loads((stages.ROOT / "infra" / "resources.json").read_text())["Resources"]
    receives = resources["SpillQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
    for doc in ("docs/OPERATIONS.md", "docs/API.md"):
        text = (stages.ROOT / doc).read_text()
        said = re.findall(r"(?:after|failed) (\d+) (?:receives|times)", text)
        assert said and {int(n) for n in said} == {receives}, (doc, said, receives)


@pytest.mark.parametrize("version, runtime, fine", [
    ((3, 13), "python3.13", True), ((3, 11), "python3.13", False), ((3, 14), "python3.13", False),
    ((3, 13), "python3.12", False)])
def test_the_package_is_built_only_by_the_python_the_functions_run(version, runtime, fine):
    """chalice names the functions' runtime after the interpreter running it, and fetches wheels for it: a
    package built by another Python ships a runtime and wheels that differ from the proxy's."""
    from infra.package import check_interpreter

    if fine:
        check_interpreter(version, runtime)
        return
    with pytest.raises(stages.StageError) as caught:
        check_interpreter(version, runtime)
    message = str(caught.value)
    assert "\n" not in message and f"Python {version[0]}.{version[1]}" in message and runtime in message
    assert "make clean" in message


@pytest.mark.parametrize("settings, message", [
    ({"proxy_reserved_concurrency": 0}, "proxy_reserved_concurrency must be"),
    ({"proxy_reserved_concurrency": "100"}, "proxy_reserved_concurrency must be"),
    ({"proxy_memory_mb": 64}, "proxy_memory_mb must be a whole number of MB from 128 to 10240"),
    ({"proxy_memory_mb": 10_241}, "proxy_memory_mb must be"),
    ({"proxy_memory_mb": "512"}, "proxy_memory_mb must be"),
    ({"proxy_memory_mb": 512.5}, "proxy_memory_mb must be"),
    ({"admin_source_cidrs": "10.0.0.0/8"}, "admin_source_cidrs must be a list"),
    ({"admin_source_cidrs": ["10.0.0.0/33"]}, "admin_source_cidrs must be a list"),
    ({"dashboard_domain": "dash.example.com"}, "dashboard_domain and dashboard_certificate_arn go together"),
    ({"dashboard_domain": "dash.example.com",
      "dashboard_certificate_arn": "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-0000-4000-8000-000000000000"},
     "us-east-1"),
])
def test_new_deploy_settings_are_checked(config, settings, message):
    raw = json.loads(config.read_text())
    raw["stages"]["dev"]["tollgate"] = settings
    config.write_text(json.dumps(raw))
    with pytest.raises(stages.StageError) as caught:
        stages.load("dev")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_new_deploy_settings_have_safe_defaults_and_load(config):
    defaults = stages.load("dev").deploy
    assert defaults.proxy_reserved_concurrency == 100 and defaults.admin_source_cidrs == ()
    assert defaults.dashboard_domain is None and defaults.dashboard_certificate_arn is None
    raw = json.loads(config.read_text())
    certificate = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-0000-4000-8000-000000000000"
    raw["stages"]["dev"]["tollgate"] = {"proxy_reserved_concurrency": None, "admin_source_cidrs": ["203.0.113.0/24"],
                                        "dashboard_domain": "dash.example.com", "dashboard_certificate_arn": certificate}
    config.write_text(json.dumps(raw))
    loaded = stages.load("dev").deploy
    assert loaded.proxy_reserved_concurrency is None and loaded.admin_source_cidrs == ("203.0.113.0/24",)
    assert (loaded.dashboard_domain, loaded.dashboard_certificate_arn) == ("dash.example.com", certificate)


def test_the_proxy_may_invoke_bedrock_models_and_inference_profiles_and_nothing_else_of_bedrock():
    """Its own SigV4 calls (no botocore request, so the least-privilege recording cannot see them): InvokeModel and
    InvokeModelWithResponseStream (Converse and ConverseStream need the same), on foundation models in any region
    (a cross-region profile routes there) and on the account's inference profiles."""
    proxy = permissions.policy("ProxyFunction", "/aws/lambda/tollgate-${Stage}-proxy", tracing=False)
    bedrock = {s["Sid"]: s for s in proxy["PolicyDocument"]["Statement"]
               if any(a.startswith("bedrock:") for a in s["Action"])}
    assert {sid: (s["Action"], s["Resource"]["Fn::Sub"]) for sid, s in bedrock.items()} == {
        "BedrockFoundationModels": (["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
                                    "arn:${AWS::Partition}:bedrock:*::foundation-model/*"),
        "BedrockInferenceProfiles": (["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
                                     "arn:${AWS::Partition}:bedrock:*:${AWS::AccountId}:inference-profile/*"),
        "BedrockApplicationInferenceProfiles": (
            ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
            "arn:${AWS::Partition}:bedrock:*:${AWS::AccountId}:application-inference-profile/*"),
    }
    others = [f for f in permissions.CODE if f != "ProxyFunction"]
    assert not any("bedrock" in json.dumps(permissions.policy(f, "/aws/lambda/x", tracing=False)) for f in others)


# CloudFront's managed policies, by id: no caching, and every viewer header and the query string forwarded. With
# caching disabled, AllViewerExceptHostHeader forwards Authorization too (an origin request policy may name it
# only when nothing is cached), which the admin API needs.
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
EVERY_METHOD = {"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"}


def _behaviour(distribution: dict, path: str) -> dict:
    """The cache behaviour CloudFront applies to a path: the first pattern that matches, else the default."""
    from fnmatch import fnmatchcase

    return next((b for b in distribution.get("CacheBehaviors", []) if fnmatchcase(path, b["PathPattern"])),
                distribution["DefaultCacheBehavior"])


def test_the_hosted_dashboard_reaches_the_admin_api_on_its_own_origin():
    """The dashboard's Manage section calls /admin on the page's origin (its API URL is empty in AWS), so CloudFront
    sends /admin/* to the API as it sends /api/*: every method, nothing cached, the Authorization header (the admin
    key) and the query string forwarded. Otherwise S3 answers, and Manage stays hidden on the hosted dashboard."""
    import app

    resources = json.loads((stages.ROOT / "infra" / "resources.json").read_text())["Resources"]
    distribution = resources["DashboardDistribution"]["Properties"]["DistributionConfig"]
    origins = {origin["Id"]: origin for origin in distribution["Origins"]}
    routes = {(path, method) for path, methods in app.app.routes.items() for method in methods
              if path.startswith(("/admin/", "/api/"))}
    assert any(path.startswith("/admin/") for path, _ in routes) and len(routes) > 20
    for path, method in routes:
        behaviour = _behaviour(distribution, path.replace("{", "").replace("}", ""))
        assert "CustomOriginConfig" in origins[behaviour["TargetOriginId"]], f"{method} {path} is served by S3"
        assert set(behaviour["AllowedMethods"]) == EVERY_METHOD, path
        assert (behaviour["CachePolicyId"], behaviour["OriginRequestPolicyId"]) == (
            CACHING_DISABLED, ALL_VIEWER_EXCEPT_HOST), path
        assert behaviour["ViewerProtocolPolicy"] == "https-only", path
    assert "CustomOriginConfig" not in origins[_behaviour(distribution, "/index.html")["TargetOriginId"]]
    assert "CustomOriginConfig" not in origins[_behaviour(distribution, "/administration.html")["TargetOriginId"]]


def _smoke_against(admin_answer: tuple[int, str, str]):
    """infra.smoke's dashboard check against a CloudFront stand-in: the page, /api/summary, and /admin/budgets
    answered as given (status, content type, body); returns the check's line and the requests it made."""
    import io

    import httpx

    from infra import smoke

    seen = []

    def cloudfront(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.headers.get("authorization")))
        if request.url.path == "/":
            return httpx.Response(200, headers={"content-type": "text/html"}, text="<html></html>")
        if request.url.path == "/api/summary":
            return httpx.Response(200, json={"calls": 0})
        status, content_type, body = admin_answer
        return httpx.Response(status, headers={"content-type": content_type}, text=body)

    out = io.StringIO()
    target = smoke.Target("https://api.example", "https://d1.cloudfront.net", "/", "admin-secret")
    run = smoke.Smoke(target, "gpt-4o-mini", 1, 1, out=out)
    run.http = httpx.Client(transport=httpx.MockTransport(cloudfront))
    run.check("health (dashboard)", run.dashboard)
    return out.getvalue(), seen


def test_smoke_checks_the_admin_api_through_the_dashboards_origin():
    line, seen = _smoke_against((200, "application/json", '{"budgets": []}'))
    assert line.startswith("ok   health (dashboard)") and "/admin/budgets" in line, line
    assert ("GET", "/admin/budgets", "Bearer admin-secret") in seen and "admin-secret" not in line
    # S3 answering /admin (CloudFront without the behaviour): the check fails and says where
    line, _ = _smoke_against((403, "application/xml", "<Error><Code>AccessDenied</Code></Error>"))
    assert line.startswith("FAIL health (dashboard): GET /admin/budgets answered 403"), line
    # admin_source_cidrs refuses CloudFront's addresses by design: said, not failed
    line, _ = _smoke_against((403, "application/json", '{"Message": "User: anonymous is not authorized to perform: '
                                                       'execute-api:Invoke on resource: arn:aws:execute-api:x"}'))
    assert line.startswith("ok") and "admin_source_cidrs" in line, line


def test_each_functions_memory_is_a_stage_setting(config):
    """The proxy's from `proxy_memory_mb` (512 unless the stage says otherwise), the Chalice functions' from their
    `lambda_memory_size`, each in the stage's block: a stage resized by measurement changes only its config."""
    import dataclasses

    from infra.template import FUNCTIONS, finish
    from tests.unit.test_managed_instances import chalice_like

    dev = stages.load("dev")
    assert dev.deploy.proxy_memory_mb == 512
    assert finish(chalice_like(), dev)["Resources"]["ProxyFunction"]["Properties"]["MemorySize"] == 512
    raw = json.loads(config.read_text())
    raw["stages"]["dev"]["tollgate"] = {"proxy_memory_mb": 1024}
    config.write_text(json.dumps(raw))
    resized = stages.load("dev")
    assert resized.deploy.proxy_memory_mb == 1024
    assert finish(chalice_like(), resized)["Resources"]["ProxyFunction"]["Properties"]["MemorySize"] == 1024
    assert dataclasses.replace(resized.deploy, proxy_memory_mb=512) == dev.deploy  # nothing else moved
    for function in set(FUNCTIONS.values()) - {"proxy"}:
        assert isinstance(dev.function_config(function).get("lambda_memory_size"), int), function
