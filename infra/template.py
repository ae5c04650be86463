"""The packaged template's last step: what depends on the stage, or repeats per function, added in code.

`chalice package` writes the functions, their events and the REST API; infra/resources.json, merged in, the
tables, queues, buckets, the proxy function and the dashboard's CloudFront. `finish()` then gives every
function (the nine of Chalice and the proxy) a fixed name, its own log group with the stage's retention,
its role's one least-privilege policy (infra/permissions.py), tracing as the stage says, how Lambda retries it
when invoked asynchronously, and alarms (infra/alarms.py); the proxy its concurrency cap; the REST API one stage
(with throttling, access logs, a count of its own 429s and tracing) that alone may invoke the functions, and
/admin's networks; the archive bucket its lifecycle; the dashboard's CloudFront its request logs and, when the
stage names one, its own domain; and, only for a stage with `"proxy_compute": "managed-instances"`, the proxy's
capacity provider.
"""
from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

from . import alarms, permissions
from .stages import ManagedInstances, Stage, StageError

# Logical id → the name after `tollgate-<stage>-` (Chalice's own names for its functions).
FUNCTIONS = {
    "APIHandler": "api_handler", "RollupCalls": "rollup_calls", "RollupDetails": "rollup_details",
    "ReplaySpill": "replay_spill",
    "EvaluateEveryMinute": "evaluate_every_minute", "DailyDigest": "daily_digest", "WeeklyReport": "weekly_report",
    "ProxyFunction": "proxy", "ExportCalls": "export_calls", "MergeDetails": "merge_details",
    "MergeGroup": "merge_group",
}
ROLES = {"APIHandler": "ApiHandlerRole", "ProxyFunction": "ProxyFunctionRole"}  # others: `<Function>Role`
ROOT = Path(__file__).resolve().parent.parent  # what the zip holds is under it (a stage's providers file)

ACCESS_LOG_FORMAT = (  # one JSON line per request; never a header (keys travel in headers)
    '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","time":"$context.requestTime",'
    '"method":"$context.httpMethod","path":"$context.path","resource":"$context.resourcePath",'
    '"status":"$context.status","bytes":"$context.responseLength","latencyMs":"$context.responseLatency",'
    '"integrationLatencyMs":"$context.integrationLatency","integrationStatus":"$context.integrationStatus",'
    '"error":"$context.error.message","responseType":"$context.error.responseType"}')
API_LOGS_ROLE_POLICY = "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
# API Gateway's own throttling (its THROTTLED gateway response, a 429). Not every 429: a hard budget refuses with
# 429, and a provider's rate limit passes through as one; neither is the gateway's brake.
THROTTLED_FILTER = '{ $.responseType = "THROTTLED" }'
LOGGING_ROLE_TAG = "tollgate:api-logging-role"  # on the stage: makes it wait for the account's logging role

# Asynchronous invocations (EventBridge schedules, the API starting an export): Lambda retries a failed one twice
# by default. A scheduled run retried would overlap the next one, so none is; one not started within its period
# (throttled, say) is dropped rather than run late: the evaluator's next minute is due. A digest or report is
# still worth sending within the hour.
SCHEDULED_EVENT_AGE_SECONDS = 3600

# CloudFront delivers standard logs (to S3) only to buckets in the Regions enabled by default: every Region
# launched since 2019 is opt-in and gets none (CloudFront Developer Guide, standard logging, choosing a bucket).
# Logging v2 is no way out: its delivery resources must be created in us-east-1, and the stack is regional.
CLOUDFRONT_LOG_REGIONS = ("us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1",
                          "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-north-1", "ap-south-1",
                          "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1", "ap-southeast-2")
# With the default *.cloudfront.net certificate CloudFront fixes the viewer security policy at TLSv1; a
# distribution on its own domain (stage setting) can require TLS 1.2.
VIEWER_TLS_POLICY = "TLSv1.2_2021"

# S3 prices (us-east-1, per GB-month and per 1,000 lifecycle transitions), to decide which archive objects
# are worth moving to Glacier Instant Retrieval. It bills at least 128 KB and 90 days per object.
STANDARD_GB_MONTH, GLACIER_IR_GB_MONTH, GLACIER_IR_TRANSITION_PER_1000 = 0.023, 0.004, 0.02
GLACIER_IR_MIN_KB, GLACIER_IR_MIN_DAYS = 128, 90
ARCHIVE_TRANSITION_DAYS = 30  # raw calls are looked at, if ever, soon after they leave the call log
ARCHIVE_NONCURRENT_DAYS = 30  # an overwritten or deleted archive object can be restored this long
STAGED_KEEP_DAYS = 3  # the detail tier's staged batches (chalicelib/rollup/merge.py), merged within minutes


# Lambda Managed Instances (docs/OPERATIONS.md): the proxy on EC2 capacity Lambda runs in the stage's subnets.
MANAGED_INSTANCES_PYTHON = (3, 13)  # AWS: its Python runtimes are 3.13 and later
MANAGED_INSTANCES_GIB_PER_VCPU = 2  # the smallest memory-to-vCPU ratio it offers ...
MANAGED_INSTANCES_MEMORY_MB = 2048  # ... so one execution environment: 1 vCPU, 2 GiB (the proxy is one process)
OPERATOR_POLICY = "arn:${AWS::Partition}:iam::aws:policy/AWSLambdaManagedEC2ResourceOperator"


def role_of(function: str) -> str:
    return ROLES.get(function, f"{function}Role")


def log_group(function: str, stage: str) -> str:
    return f"/aws/lambda/tollgate-{stage}-{FUNCTIONS[function]}"


def smallest_object_worth_tiering(retention_days: int) -> int | None:
    """Bytes above which moving an archive object to Glacier IR at day 30 costs less than keeping it in
    S3 Standard until it expires; None when it never does (kept too briefly for Glacier IR's 90 days).

    An object of s KB kept M months after the transition costs 0.023·s·M in Standard and
    0.004·max(s, 128)·M (per GB) plus one transition in Glacier IR. Objects under 128 KB pay for 128 KB
    there, so they gain only over a long retention: with one year, from about 105 KB; with seven, 33 KB.
    """
    if retention_days - ARCHIVE_TRANSITION_DAYS < GLACIER_IR_MIN_DAYS:
        return None
    months = (retention_days - ARCHIVE_TRANSITION_DAYS) / 30.4
    transition_gb_months = GLACIER_IR_TRANSITION_PER_1000 / 1000 * 1024 * 1024 / months  # in KB·price units
    under_minimum = (transition_gb_months + GLACIER_IR_GB_MONTH * GLACIER_IR_MIN_KB) / STANDARD_GB_MONTH
    if under_minimum >= GLACIER_IR_MIN_KB:
        under_minimum = max(transition_gb_months / (STANDARD_GB_MONTH - GLACIER_IR_GB_MONTH), GLACIER_IR_MIN_KB)
    return math.ceil(under_minimum * 1024)


def archive_lifecycle(retention_days: int) -> dict[str, Any]:
    """Raw calls (`calls/`) expire after the retention; noncurrent versions (overwritten, deleted, expired)
    after ARCHIVE_NONCURRENT_DAYS; objects large enough to gain move to Glacier IR at day 30. Export files
    (`exports/`) go after export_format.KEEP_DAYS, for good (no version kept), as do uploads a job left unfinished.
    The detail tier's staged batches (`rollup/pending/`) go after STAGED_KEEP_DAYS: merged within minutes, they are
    kept a few days for a person looking into a merge.

    Expiring and tiering are separate rules: S3 applies a rule only to the objects that match all its filters, so
    a size filter on the expiring rule would keep every small archive object for ever."""
    rules: list[dict[str, Any]] = [
        {"Id": "expire-archived-calls", "Status": "Enabled", "Prefix": "calls/", "ExpirationInDays": retention_days,
         "NoncurrentVersionExpiration": {"NoncurrentDays": ARCHIVE_NONCURRENT_DAYS}},
        {"Id": "remove-expired-delete-markers", "Status": "Enabled", "Prefix": "calls/",
         "ExpiredObjectDeleteMarker": True},
        *export_lifecycle(), *staging_lifecycle()]
    configuration: dict[str, Any] = {"Rules": rules}
    threshold = smallest_object_worth_tiering(retention_days)
    if threshold is not None:
        rules.insert(1, {"Id": "tier-large-archived-calls", "Status": "Enabled", "Prefix": "calls/",
                         "ObjectSizeGreaterThan": threshold,
                         "Transitions": [{"StorageClass": "GLACIER_IR", "TransitionInDays": ARCHIVE_TRANSITION_DAYS}]})
        # S3 skips objects under 128 KB unless told otherwise; the size filter above decides instead
        configuration["TransitionDefaultMinimumObjectSize"] = "varies_by_storage_class"
    return configuration


def export_lifecycle() -> list[dict[str, Any]]:
    """The export files' rules: the file after its export's KEEP_DAYS, its expired version a day later, an
    upload never completed (a failed job's) a day after it began, and the delete markers left behind."""
    from chalicelib.reports.export_format import KEEP_DAYS, PREFIX

    return [{"Id": "expire-exports", "Status": "Enabled", "Prefix": PREFIX, "ExpirationInDays": KEEP_DAYS,
             "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
            {"Id": "remove-expired-export-delete-markers", "Status": "Enabled", "Prefix": PREFIX,
             "ExpiredObjectDeleteMarker": True}]


def staging_lifecycle() -> list[dict[str, Any]]:
    from chalicelib.rollup.merge import PREFIX

    return [{"Id": "expire-staged-rollup-batches", "Status": "Enabled", "Prefix": PREFIX,
             "ExpirationInDays": STAGED_KEEP_DAYS, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
            {"Id": "remove-staged-delete-markers", "Status": "Enabled", "Prefix": PREFIX,
             "ExpiredObjectDeleteMarker": True}]


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {name: r for name, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert set(found) == set(FUNCTIONS), f"functions {sorted(found)} are not infra/template.py's {sorted(FUNCTIONS)}"
    return found


def _finish_function(template: dict[str, Any], function: str, stage: Stage) -> None:
    resources = template["Resources"]
    properties = resources[function]["Properties"]
    properties["FunctionName"] = {"Fn::Sub": f"tollgate-${{Stage}}-{FUNCTIONS[function]}"}
    properties["Tracing"] = "Active" if stage.tracing else "PassThrough"
    group = f"{function}LogGroup"
    resources[group] = {"Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete",
                        "Properties": {"LogGroupName": {"Fn::Sub": log_group(function, "${Stage}")},
                                       "RetentionInDays": stage.deploy.log_retention_days}}
    # the group exists, with its retention, before the function can write a line (it may not create one)
    resources[function]["DependsOn"] = sorted({*_as_list(resources[function].get("DependsOn")), group})
    role = resources[role_of(function)]["Properties"]
    role["Policies"] = [permissions.policy(function, log_group(function, "${Stage}"), stage.tracing)]
    if invoke_config := event_invoke_config(function, properties.get("Events") or {}):
        properties["EventInvokeConfig"] = invoke_config  # SAM's; it becomes an AWS::Lambda::EventInvokeConfig


def scheduled_event_age(schedule: str) -> int:
    """Seconds a scheduled run may wait to start: a run every N minutes is stale once the next is due (Lambda's
    minimum is 60 s); any other, SCHEDULED_EVENT_AGE_SECONDS."""
    if every := re.fullmatch(r"rate\((\d+) minutes?\)", schedule):
        return min(max(60, int(every[1]) * 60), SCHEDULED_EVENT_AGE_SECONDS)
    return SCHEDULED_EVENT_AGE_SECONDS


def event_invoke_config(function: str, events: dict[str, Any]) -> dict[str, Any] | None:
    """How Lambda handles the function's asynchronous invocations, or None for Lambda's defaults. Scheduled
    functions are never retried, nor is a lane group's merge (the next tick starts it); the export job, which the
    API invokes and nobody waits for, sends an invocation that failed for good (after Lambda's retries) to the
    alerts topic (its role may: infra/permissions.py)."""
    schedules = [e["Properties"]["Schedule"] for e in events.values() if e.get("Type") == "Schedule"]
    if schedules:
        return {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": min(map(scheduled_event_age, schedules))}
    if function == "ExportCalls":
        return {"DestinationConfig": {"OnFailure": {"Type": "SNS", "Destination": {"Ref": "AlertsTopic"}}}}
    if function == "MergeGroup":  # merge_details starts it again on the next minute's tick, from the group's mark
        return {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60}
    return None


def _as_list(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]


def _finish_api(template: dict[str, Any], stage: Stage) -> None:
    resources = template["Resources"]
    api = resources["RestAPI"]["Properties"]
    api["Name"] = {"Fn::Sub": "tollgate-${Stage}"}  # the ApiName the 5xx alarm watches
    api["DefinitionBody"]["info"]["title"] = {"Fn::Sub": "tollgate-${Stage}"}
    # Stating the OpenAPI version (the body's own) is what stops SAM adding a second stage named `Stage`, with
    # no throttling, no access log and no alarm
    api["OpenApiVersion"] = api["DefinitionBody"]["swagger"]
    # The stage's access log needs the account's logging role: in a fresh account the stage must wait for
    # ApiGatewayAccount. SAM gives an Api's DependsOn to the RestApi only, and a DependsOn on a resource whose
    # condition is false is refused; a reference under the same condition, in the stage's tags, is neither.
    api["Tags"] = {LOGGING_ROLE_TAG: {"Fn::If": ["CreateApiGatewayLogsRole", {"Ref": "ApiGatewayAccount"}, "existing"]}}
    _restrict_invoke_permissions(resources, api["StageName"])
    _admin_networks(api["DefinitionBody"], stage.deploy.admin_source_cidrs)
    api["TracingEnabled"] = stage.tracing
    api["MethodSettings"] = [{"ResourcePath": "/*", "HttpMethod": "*", "MetricsEnabled": True,
                              "ThrottlingRateLimit": stage.deploy.throttle_rate_per_second,
                              "ThrottlingBurstLimit": stage.deploy.throttle_burst}]
    api["AccessLogSetting"] = {"DestinationArn": {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]},
                               "Format": ACCESS_LOG_FORMAT}
    resources["ApiAccessLogGroup"] = {
        "Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete",
        "Properties": {"LogGroupName": {"Fn::Sub": "/aws/apigateway/tollgate-${Stage}/access"},
                       "RetentionInDays": stage.deploy.log_retention_days}}
    resources["ApiThrottledMetricFilter"] = {  # API Gateway has no metric of its own 429s: counted from the log
        "Type": "AWS::Logs::MetricFilter", "Properties": {
            "FilterName": {"Fn::Sub": "tollgate-${Stage}-api-throttled"}, "LogGroupName": {"Ref": "ApiAccessLogGroup"},
            "FilterPattern": THROTTLED_FILTER, "MetricTransformations": [{
                "MetricNamespace": alarms.NAMESPACE, "MetricName": alarms.API_THROTTLED_METRIC, "MetricValue": "1"}]}}
    # API Gateway writes logs through one role per account and region. `make deploy` creates it only where
    # the account has none yet, and keeps it when the stack goes: another stage's logs may depend on it.
    resources["ApiGatewayLogsRole"] = {
        "Type": "AWS::IAM::Role", "Condition": "CreateApiGatewayLogsRole", "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain", "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
            "ManagedPolicyArns": [{"Fn::Sub": API_LOGS_ROLE_POLICY}]}}
    resources["ApiGatewayAccount"] = {
        "Type": "AWS::ApiGateway::Account", "Condition": "CreateApiGatewayLogsRole", "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {"CloudWatchRoleArn": {"Fn::GetAtt": ["ApiGatewayLogsRole", "Arn"]}}}


def _restrict_invoke_permissions(resources: dict[str, Any], api_stage: str) -> None:
    """API Gateway may invoke the functions through the stage only (`<api>/<stage>/<method>/<path>`), whoever
    wrote the permission (Chalice for its function, infra/resources.json for the proxy)."""
    for permission in resources.values():
        properties = permission.get("Properties", {})
        if permission["Type"] == "AWS::Lambda::Permission" and properties.get("Principal") == "apigateway.amazonaws.com":
            properties["SourceArn"] = {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                                                  f"${{RestAPI}}/{api_stage}/*"}


def _admin_networks(body: dict[str, Any], networks: tuple[str, ...]) -> None:
    """With `admin_source_cidrs`, the REST API's resource policy denies /admin to every other address; the rest of
    the API stays open (a resource policy must allow it: API Gateway denies what it does not allow)."""
    body.pop("x-amazon-apigateway-policy", None)
    if networks:
        body["x-amazon-apigateway-policy"] = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*"},
            {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*/*/admin/*",
             "Condition": {"NotIpAddress": {"aws:SourceIp": list(networks)}}}]}


def _finish_dashboard(template: dict[str, Any], stage: Stage) -> None:
    """CloudFront's /api origin is the API's stage; every request is logged to an S3 bucket of the stack (where
    CloudFront delivers logs: CLOUDFRONT_LOG_REGIONS), kept as long as the stage's logs; and with
    `dashboard_domain` the distribution answers on it with the stage's ACM certificate and TLS 1.2 at least."""
    resources = template["Resources"]
    distribution = resources["DashboardDistribution"]["Properties"]["DistributionConfig"]
    [api_origin] = [o for o in distribution["Origins"] if o["Id"] == "api"]
    api_origin["OriginPath"] = "/" + resources["RestAPI"]["Properties"]["StageName"]
    template["Conditions"]["CloudFrontLogsHere"] = {"Fn::Or": [  # Fn::Or takes at most ten conditions
        {"Fn::Or": [{"Fn::Equals": [{"Ref": "AWS::Region"}, region]} for region in regions]}
        for regions in (CLOUDFRONT_LOG_REGIONS[:9], CLOUDFRONT_LOG_REGIONS[9:])]}
    # Unnamed (no name to collide with on a retry) and kept when the stack goes: logs are records; it empties
    # itself. Standard logging writes with an ACL grant, so the bucket keeps ACLs (not public: access is blocked).
    resources["DashboardLogsBucket"] = {
        "Type": "AWS::S3::Bucket", "Condition": "CloudFrontLogsHere", "DeletionPolicy": "RetainExceptOnCreate",
        "UpdateReplacePolicy": "Retain", "Properties": {
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]},
            "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                               "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
            "LifecycleConfiguration": {"Rules": [{"Id": "expire-request-logs", "Status": "Enabled",
                                                  "ExpirationInDays": stage.deploy.log_retention_days}]}}}
    distribution["Logging"] = {"Fn::If": ["CloudFrontLogsHere", {
        "Bucket": {"Fn::GetAtt": ["DashboardLogsBucket", "DomainName"]}, "Prefix": "dashboard/",
        "IncludeCookies": False}, {"Ref": "AWS::NoValue"}]}
    domain, certificate = stage.deploy.dashboard_domain, stage.deploy.dashboard_certificate_arn
    url = {"Fn::Sub": "https://${DashboardDistribution.DomainName}"}
    distribution.pop("Aliases", None)
    distribution.pop("ViewerCertificate", None)
    if domain and certificate:
        distribution["Aliases"] = [domain]
        distribution["ViewerCertificate"] = {"AcmCertificateArn": certificate, "SslSupportMethod": "sni-only",
                                             "MinimumProtocolVersion": VIEWER_TLS_POLICY}
        url = f"https://{domain}"
    template["Outputs"]["DashboardURL"]["Value"] = url


def check_proxy_compute(stage: Stage, proxy_runtime: str) -> None:
    """StageError (one line) when the stage asks to run the proxy where its runtime cannot go."""
    if stage.deploy.proxy_compute != "managed-instances":
        return
    version = re.fullmatch(r"python(\d+)\.(\d+)", proxy_runtime)
    if version is None or (int(version[1]), int(version[2])) < MANAGED_INSTANCES_PYTHON:
        raise StageError(f"stage {stage.name!r}: proxy_compute \"managed-instances\" needs the proxy on Python "
                         f"{'.'.join(map(str, MANAGED_INSTANCES_PYTHON))} or later, and this package builds it for "
                         f"{proxy_runtime} (compiled wheels included): set \"proxy_compute\": \"lambda\" "
                         "(docs/OPERATIONS.md, Lambda Managed Instances)")


def on_managed_instances(template: dict[str, Any], settings: ManagedInstances) -> dict[str, Any]:
    """The proxy function attached to a capacity provider of its own (in place; also returned).

    The provider launches arm64 instances of `settings.instance_types` in the stage's subnets, through an
    operator role holding AWS's managed policy for it, up to `max_vcpu_count` vCPUs. The function gets
    1 vCPU and 2 GiB per execution environment, each serving up to `max_concurrency` calls (the Web Adapter
    forwards them to the one uvicorn process at once), and republishes `$LATEST.PUBLISHED` on every update:
    an unqualified ARN, as API Gateway's integration uses, invokes that version on Managed Instances.
    """
    resources = template["Resources"]
    resources["ProxyCapacityProviderRole"] = {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
        "ManagedPolicyArns": [{"Fn::Sub": OPERATOR_POLICY}]}}
    resources["ProxyCapacityProvider"] = {
        "Type": "AWS::Lambda::CapacityProvider", "DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete",
        "Properties": {
            "CapacityProviderName": {"Fn::Sub": "tollgate-${Stage}-proxy"},
            "VpcConfig": {"SubnetIds": list(settings.subnet_ids), "SecurityGroupIds": list(settings.security_group_ids)},
            "PermissionsConfig": {"CapacityProviderOperatorRoleArn": {"Fn::GetAtt": ["ProxyCapacityProviderRole", "Arn"]}},
            "InstanceRequirements": {"Architectures": copy.deepcopy(
                resources["ProxyFunction"]["Properties"]["Architectures"]),
                "AllowedInstanceTypes": list(settings.instance_types)},
            "CapacityProviderScalingConfig": {"ScalingMode": "Auto", "MaxVCpuCount": settings.max_vcpu_count}}}
    proxy = resources["ProxyFunction"]["Properties"]
    proxy.pop("ReservedConcurrentExecutions", None)  # its own instances, up to max_vcpu_count, are its ceiling
    proxy["MemorySize"] = MANAGED_INSTANCES_MEMORY_MB
    proxy["CapacityProviderConfig"] = {  # SAM's spelling; it becomes LambdaManagedInstancesCapacityProviderConfig
        "Arn": {"Fn::GetAtt": ["ProxyCapacityProvider", "Arn"]},
        "PerExecutionEnvironmentMaxConcurrency": settings.max_concurrency,
        "ExecutionEnvironmentMemoryGiBPerVCpu": MANAGED_INSTANCES_GIB_PER_VCPU}
    proxy["PublishToLatestPublished"] = True
    return template


def finish(template: dict[str, Any], stage: Stage) -> dict[str, Any]:
    """Complete `chalice package`'s merged template for `stage` (in place; also returned)."""
    check_proxy_compute(stage, template["Resources"]["ProxyFunction"]["Properties"]["Runtime"])
    parameters = template["Parameters"]
    parameters["Stage"] = {**parameters["Stage"], "Default": stage.name, "AllowedValues": [stage.name],
                           "Description": "the stage this template was packaged for (its names are in it)"}
    functions = _functions(template)
    for function in functions:
        _finish_function(template, function, stage)
    _file_providers(template, stage)
    _finish_api(template, stage)
    resources = template["Resources"]
    proxy = resources["ProxyFunction"]["Properties"]
    proxy["MemorySize"] = stage.deploy.proxy_memory_mb  # a stage setting; Managed Instances set their own below
    proxy.pop("ReservedConcurrentExecutions", None)
    if stage.deploy.proxy_reserved_concurrency is not None:  # so long streams cannot take the account's concurrency
        proxy["ReservedConcurrentExecutions"] = stage.deploy.proxy_reserved_concurrency
    archive = resources["ArchiveBucket"]["Properties"]
    archive["LifecycleConfiguration"] = archive_lifecycle(stage.deploy.archive_retention_days)
    _finish_dashboard(template, stage)
    if stage.deploy.alarm_email:
        resources["AlarmEmailSubscription"] = {"Type": "AWS::SNS::Subscription", "Properties": {
            "TopicArn": {"Ref": "AlertsTopic"}, "Protocol": "email", "Endpoint": stage.deploy.alarm_email}}
    tables = sorted(n for n, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table")
    timeouts = {f: int(r["Properties"]["Timeout"]) for f, r in functions.items()}
    resources.update(alarms.alarms(timeouts, tables, resources["RestAPI"]["Properties"]["StageName"]))
    if stage.deploy.proxy_compute == "managed-instances":
        on_managed_instances(template, stage.deploy.managed_instances)
    return template


def _file_providers(template: dict[str, Any], stage: Stage) -> None:
    """A stage's providers file (`TOLLGATE_PROVIDERS_FILE` in its config: a path under chalicelib/, so the zip
    carries it): the proxy reads it, API Gateway sends each provider's calls (`/<name>/{proxy+}`) to the proxy, and
    the proxy may read each one's key from SSM (`/tollgate/<stage>/<name>-api-key`). A bad file stops the package."""
    from chalicelib import provider_registry
    from chalicelib.errors import ConfigurationError

    path = stage.chalice.get("environment_variables", {}).get("TOLLGATE_PROVIDERS_FILE")
    if not path:
        return
    root = ROOT
    if Path(path).is_absolute() or not (root / path).resolve().is_relative_to(root / "chalicelib"):
        raise StageError(f"stage {stage.name!r}: TOLLGATE_PROVIDERS_FILE must be a path under chalicelib/ (the zip "
                         f"carries only that), e.g. chalicelib/providers.json, not {path!r}")
    try:
        declared = provider_registry.read_providers_file(str(root / path))
    except ConfigurationError as exc:
        raise StageError(f"stage {stage.name!r}: {exc}") from None
    resources = template["Resources"]
    proxy = resources["ProxyFunction"]["Properties"]
    proxy["Environment"]["Variables"]["TOLLGATE_PROVIDERS_FILE"] = path
    paths = resources["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    route = paths["/groq/{proxy+}"]  # the proxy's OpenAI-compatible route, as infra/resources.json declares it
    keys = []
    for provider in declared:
        paths[f"/{provider.name}/{{proxy+}}"] = {
            method: {**copy.deepcopy(operation), "summary": f"{provider.name} (providers file), OpenAI-compatible."}
            for method, operation in route.items()}
        parameter = f"/tollgate/${{Stage}}/{provider.name}-api-key"
        proxy["Environment"]["Variables"][f"TOLLGATE_{provider.env_name}_API_KEY_PARAMETER"] = {"Fn::Sub": parameter}
        keys.append({"Fn::Sub": f"arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter{parameter}"})
    role = resources[role_of("ProxyFunction")]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    role.append({"Sid": "ProvidersFileKeys", "Effect": "Allow", "Action": ["ssm:GetParameter"], "Resource": keys})
