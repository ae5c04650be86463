"""AWS for the deploy rehearsal: a moto server, with what its CloudFormation lacks filled in from moto itself.

`python -m tests.aws_standin PORT CERT` serves every AWS API `make deploy` calls on https://localhost:PORT
(`AWS_ENDPOINT_URL`, with `AWS_CA_BUNDLE` trusting CERT; moto reads a template URL as path-style only on
"localhost"). TLS, as AWS: the buckets deny any request without it. moto 5.2's CloudFormation
skips some resource types and half-does others; each gap below is closed by creating the resource through
moto's own API for that service, so the stack holds what AWS would:
- AWS::CloudWatch::Alarm: PutMetricAlarm with the resolved properties (the names match the API's);
- AWS::CloudFront::Distribution and ::OriginAccessControl: CreateDistribution (origins and default
  behaviour only: enough for the stack's outputs and `create-invalidation`; every other property is checked
  on the template in tests/integration/test_package.py) and CreateOriginAccessControl;
- AWS::ApiGateway::RestApi: moto ignores `Body`, so a deployment fails with "no methods"; its Swagger
  paths are imported as resources, methods and integrations;
- AWS::ApiGateway::Stage and AWS::S3::BucketPolicy: CreateStage (UpdateStage moves it to a new deployment)
  and PutBucketPolicy;
- Lambda's GetAccountSettings, which moto lacks: the default quota of 1,000, less what functions reserve;
- an executed change set (`aws cloudformation deploy`) gives the stack its template, parameters and outputs;
- a table's update (UpdateTable: deletion protection), which moto's tables do not take from a stack;
- a parameter that flips a condition updates the resources using it (moto follows only direct `Ref`s);
- a public layer of another account (the Web Adapter's), which moto cannot look up;
- `aws:SecureTransport` in policy conditions, which moto leaves unset (every request here is over TLS);
- `RetainExceptOnCreate`: moto keeps only `Retain` resources when a stack is deleted; a stack that finished
  its creation keeps these too, as CloudFormation does.
Types that no moto API can hold are kept as recorded placeholders (`RECORDED`): the rehearsal names them.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any

# CloudFormation resource types moto has no API for: created as placeholders, their properties checked on
# the template (tests/integration/test_package.py).
RECORDED = ("AWS::ApiGateway::Account", "AWS::Lambda::EventInvokeConfig", "AWS::Logs::MetricFilter",
            "AWS::Logs::DeliverySource", "AWS::Logs::DeliveryDestination", "AWS::Logs::Delivery")


def _client(service: str, region: str):
    import boto3

    return boto3.client(service, region_name=region, endpoint_url=ENDPOINT, aws_access_key_id="standin",
                        aws_secret_access_key="standin")  # moto's default account, as the caller's fake keys


ENDPOINT = ""


def _id(resolved: Any) -> str:
    """What a `Ref` gives: moto resolves some (an API Gateway deployment) to its model instead of the id."""
    return resolved if isinstance(resolved, str) else resolved.id


def _models():
    """CloudFormation models for the types moto lacks; defining them registers them with moto."""
    from moto.core.common_models import CloudFormationModel

    class Recorded(CloudFormationModel):
        """A resource moto cannot hold: its resolved properties, kept in memory."""

        created: list[tuple[str, dict]] = []

        def __init__(self, name: str, properties: dict):
            self.physical_resource_id, self.properties = name, properties

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
            cls.created.append((kwargs.get("ResourceType", ""), cloudformation_json.get("Properties", {})))
            return cls(resource_name, cloudformation_json.get("Properties", {}))

        @classmethod
        def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json, account_id,
                                            region_name):
            return cls(original_resource.physical_resource_id, cloudformation_json.get("Properties", {}))

        @classmethod
        def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
            pass

        def is_created(self) -> bool:
            return True

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return True

        def get_cfn_attribute(self, attribute_name: str) -> str:
            return f"{self.physical_resource_id}-{attribute_name}"

    def recorded(kind: str) -> type:
        # moto finds models among CloudFormationModel's direct subclasses
        return type(kind.replace("::", ""), (Recorded, CloudFormationModel),
                    {"cloudformation_type": staticmethod(lambda: kind)})

    class Alarm(Recorded, CloudFormationModel):
        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::CloudWatch::Alarm"

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
            properties = cloudformation_json["Properties"]
            _client("cloudwatch", region_name).put_metric_alarm(**properties)
            return cls(properties["AlarmName"], properties)

        @classmethod
        def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json, account_id,
                                            region_name):
            return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

        @classmethod
        def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
            _client("cloudwatch", region_name).delete_alarms(AlarmNames=[resource_name])

    class OriginAccessControl(Recorded, CloudFormationModel):
        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::CloudFront::OriginAccessControl"

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
            config = cloudformation_json["Properties"]["OriginAccessControlConfig"]
            made = _client("cloudfront", region_name).create_origin_access_control(OriginAccessControlConfig=config)
            return cls(made["OriginAccessControl"]["Id"], cloudformation_json["Properties"])

    class Distribution(Recorded, CloudFormationModel):
        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::CloudFront::Distribution"

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
            config = cloudformation_json["Properties"]["DistributionConfig"]
            origins = [{"Id": o["Id"], "DomainName": o["DomainName"], "OriginPath": o.get("OriginPath", ""),
                        "CustomOriginConfig": {"HTTPPort": 80, "HTTPSPort": 443, "OriginProtocolPolicy": "https-only"}}
                       for o in config["Origins"]]
            behaviour = config["DefaultCacheBehavior"]
            made = _client("cloudfront", region_name).create_distribution(DistributionConfig={
                "CallerReference": f"{kwargs.get('StackId', '')}/{resource_name}/{time.time_ns()}",
                "Comment": config.get("Comment", ""), "Enabled": config["Enabled"],
                "Origins": {"Quantity": len(origins), "Items": origins},
                "DefaultCacheBehavior": {"TargetOriginId": behaviour["TargetOriginId"],
                                         "ViewerProtocolPolicy": behaviour["ViewerProtocolPolicy"],
                                         "CachePolicyId": behaviour.get("CachePolicyId", "")}})
            distribution = cls(made["Distribution"]["Id"], cloudformation_json["Properties"])
            distribution.domain_name = made["Distribution"]["DomainName"]
            return distribution

        @classmethod
        def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json, account_id,
                                            region_name):
            original_resource.properties = cloudformation_json["Properties"]
            return original_resource

        def get_cfn_attribute(self, attribute_name: str) -> str:
            return {"DomainName": self.domain_name, "Id": self.physical_resource_id}[attribute_name]

    class Stage(Recorded, CloudFormationModel):
        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::ApiGateway::Stage"

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
            properties = cloudformation_json["Properties"]
            _client("apigateway", region_name).create_stage(
                restApiId=_id(properties["RestApiId"]), stageName=properties["StageName"],
                deploymentId=_id(properties["DeploymentId"]), variables=properties.get("Variables", {}),
                tracingEnabled=bool(properties.get("TracingEnabled")))
            return cls(properties["StageName"], properties)

        @classmethod
        def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json, account_id,
                                            region_name):
            properties = cloudformation_json["Properties"]
            _client("apigateway", region_name).update_stage(
                restApiId=_id(properties["RestApiId"]), stageName=properties["StageName"], patchOperations=[
                    {"op": "replace", "path": "/deploymentId", "value": _id(properties["DeploymentId"])}])
            return cls(properties["StageName"], properties)

    class BucketPolicy(Recorded, CloudFormationModel):
        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::S3::BucketPolicy"

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
            properties = cloudformation_json["Properties"]
            _client("s3", region_name).put_bucket_policy(Bucket=properties["Bucket"],
                                                         Policy=json.dumps(properties["PolicyDocument"]))
            return cls(properties["Bucket"], properties)

        @classmethod
        def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json, account_id,
                                            region_name):
            return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    for kind in RECORDED:
        recorded(kind)
    return Alarm, OriginAccessControl, Distribution, Stage, BucketPolicy


def _import_rest_api_body() -> None:
    """moto's RestApi takes no `Body`: import its Swagger paths (resources, methods, Lambda integrations)."""
    from moto.apigateway import models

    create = models.RestAPI.create_from_cloudformation_json.__func__

    def with_body(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        api = create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        backend = models.apigateway_backends[account_id][region_name]
        for path, operations in sorted(cloudformation_json["Properties"].get("Body", {}).get("paths", {}).items()):
            parent = api.default
            for part in filter(None, path.split("/")):
                child = next((r for r in api.resources.values() if r.parent_id == parent.id and r.path_part == part),
                             None)
                parent = child or backend.create_resource(api.id, parent.id, part)
            for verb, operation in operations.items():
                if verb == "x-amazon-apigateway-any-method":
                    verb = "ANY"
                backend.put_method(api.id, parent.id, verb.upper(), "NONE")
                integration = operation.get("x-amazon-apigateway-integration", {})
                if integration:
                    backend.put_integration(api.id, parent.id, verb.upper(), integration.get("type", "").upper(),
                                            integration.get("uri", ""), integration.get("httpMethod", "POST"))
        return api

    models.RestAPI.create_from_cloudformation_json = classmethod(with_body)


def _retain_except_on_create() -> None:
    """A completed stack keeps `RetainExceptOnCreate` resources when deleted, as `Retain` ones."""
    from moto.cloudformation.parsing import ResourceMap

    delete = ResourceMap.delete

    def keeping(self) -> None:
        for resource in self._resource_json_map.values():
            if resource.get("DeletionPolicy") == "RetainExceptOnCreate":
                resource["DeletionPolicy"] = "Retain"
        delete(self)

    ResourceMap.delete = keeping


def _change_sets_update_the_stack() -> None:
    """An executed change set leaves moto's stack with its old template, parameters and outputs (`aws
    cloudformation deploy` works through change sets): take the change set's, as CloudFormation does."""
    from moto.cloudformation.models import CloudFormationBackend

    execute = CloudFormationBackend.execute_change_set

    def executing(self, change_set_name: str, stack_name: str | None = None) -> None:
        execute(self, change_set_name, stack_name)
        change_set = self.change_sets.get(change_set_name) or next(
            c for c in self.change_sets.values() if c.change_set_name == change_set_name)
        stack = self.stacks[change_set.stack_id]
        stack.template_dict, stack.parameters = change_set.template_dict, change_set.parameters
        stack.output_map = stack._create_output_map()

    CloudFormationBackend.execute_change_set = executing


def _conditions_of(node: Any) -> set[str]:
    """The conditions a template fragment uses (`Fn::If`, a resource's `Condition`)."""
    if isinstance(node, list):
        return set().union(*map(_conditions_of, node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = {node["Fn::If"][0]} if isinstance(node.get("Fn::If"), list) else set()
    found |= {node["Condition"]} if isinstance(node.get("Condition"), str) else set()
    return found | _conditions_of(list(node.values()))


def _updates_follow_conditions() -> None:
    """A parameter that changes a condition updates the resources using it; moto looks only at direct `Ref`s."""
    from moto.cloudformation.parsing import ResourceMap, get_references_from_template

    diff = ResourceMap.build_resource_diff

    def with_conditions(self, other_template: dict, parameters: dict | None = None) -> dict:
        actions = diff(self, other_template, parameters)
        changed = {p for p in parameters or {} if self.input_parameters.get(p) != parameters[p]}
        touched = {name for name, condition in other_template.get("Conditions", {}).items()
                   if changed & set(get_references_from_template(condition))}
        actions["Modify"] += [name for name, resource in other_template["Resources"].items()
                              if name in self._resource_json_map and name not in actions["Modify"]
                              and touched & _conditions_of(resource)]
        return actions

    ResourceMap.build_resource_diff = with_conditions


def _table_updates() -> None:
    """moto's tables take no update from a stack: the settings a template may change in place go through
    UpdateTable (deletion protection, which `make deploy` turns on with its second pass)."""
    from moto.dynamodb.models.table import Table

    def update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        protected = bool(cloudformation_json["Properties"].get("DeletionProtectionEnabled", False))
        _client("dynamodb", region_name).update_table(TableName=original_resource.name,
                                                      DeletionProtectionEnabled=protected)
        return original_resource

    Table.update_from_cloudformation_json = classmethod(update)


def _public_layers() -> None:
    """A layer of another account (the Web Adapter's, AWS's public layer) is taken as published: moto knows only
    its caller's own layers. Whether that version exists in the region only AWS can show (`make smoke` does)."""
    from types import SimpleNamespace

    from moto.awslambda.models import LambdaBackend

    own = LambdaBackend.layers_versions_by_arn

    def any_account(self, layer_version_arn: str):
        if layer_version_arn.split(":")[4] != self.account_id:
            return SimpleNamespace(arn=layer_version_arn, code_size=0)
        return own(self, layer_version_arn)

    LambdaBackend.layers_versions_by_arn = any_account


ACCOUNT_CONCURRENCY = 1000  # Lambda's default quota of concurrent executions per account and region


def _lambda_account_settings() -> None:
    """GetAccountSettings (preflight's concurrency check), which moto's Lambda lacks: the default quota, less
    what functions reserve."""
    from moto.awslambda import responses, urls

    def get_account_settings(self):
        functions = list(self.backend.list_functions())
        unreserved = ACCOUNT_CONCURRENCY - sum(int(f.reserved_concurrency or 0) for f in functions)
        return 200, {}, json.dumps({
            "AccountLimit": {"TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000, "CodeSizeZipped": 52428800,
                             "ConcurrentExecutions": ACCOUNT_CONCURRENCY, "UnreservedConcurrentExecutions": unreserved},
            "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": len(functions)}})

    responses.LambdaResponse.get_account_settings = get_account_settings
    urls.url_paths[r"{0}/(?P<api_version>[^/]+)/account-settings/?$"] = responses.LambdaResponse.dispatch


def _requests_are_over_tls() -> None:
    """Bucket policies that deny requests without TLS, as AWS reads them. moto knows no `aws:SecureTransport`,
    evaluates no `Bool`, and takes a statement whose condition fails as a deny whatever its effect; here every
    request is over TLS, `Bool` compares as AWS does, and a statement whose condition fails does not apply."""
    from moto.iam import access_control, policy_conditions

    applies = access_control.IAMPolicyStatement.is_action_permitted

    def over_tls(self, action: str, resource: str = "*", principal: str | None = None,
                 incoming_condition_values: dict | None = None):
        values = {**(incoming_condition_values or {}), "aws:SecureTransport": "true"}
        if self._statement.get("Condition") and not self._check_conditions(values):
            return access_control.PermissionResult.NEUTRAL
        return applies(self, action, resource, principal, values)

    def boolean(expected: list[str] | str, actual: str) -> bool:
        return actual.lower() in [v.lower() for v in ([expected] if isinstance(expected, str) else expected)]

    access_control.IAMPolicyStatement.is_action_permitted = over_tls
    policy_conditions.CONDITION_OPERATIONS["Bool"] = boolean


def serve(port: int, certificate: str) -> None:
    """Serve on https://localhost:port with `certificate` (werkzeug's devcert pair: `<certificate>.crt/.key`),
    the bundle clients trust through AWS_CA_BUNDLE."""
    global ENDPOINT
    from moto.cloudformation import parsing
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    ENDPOINT = f"https://localhost:{port}"
    _models()
    _import_rest_api_body()
    _retain_except_on_create()
    _lambda_account_settings()
    _change_sets_update_the_stack()
    _public_layers()
    _table_updates()
    _updates_follow_conditions()
    _requests_are_over_tls()
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
    server = make_server("127.0.0.1", port, DomainDispatcherApplication(create_backend_app), threaded=True,
                         ssl_context=(f"{certificate}.crt", f"{certificate}.key"))
    print(f"aws stand-in on {ENDPOINT}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    import os
    import signal

    from tests.aws_standin import serve as serve_named  # moto files models by their module's dotted name

    os.environ["AWS_CA_BUNDLE"] = f"{sys.argv[2]}.crt"  # its own calls to itself (the resources moto lacks)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve_named(int(sys.argv[1]), sys.argv[2])
