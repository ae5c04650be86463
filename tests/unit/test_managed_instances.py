"""The proxy on Lambda Managed Instances, a stage option (docs/OPERATIONS.md): off by default and then nothing
of it in the template; on, a capacity provider of its own that the proxy function is attached to, lint-clean
for cfn-lint as written and after the SAM transform, and packaged for real (every function runs python3.13, which
Managed Instances runs); refused, before any work, for a proxy built for a Python it does not run."""
import copy
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra import package, stages, template
from infra.stages import ManagedInstances, StageError
from infra.template import FUNCTIONS, finish, on_managed_instances, role_of
from tests.conftest import ROOT

RESOURCES = ROOT / "infra" / "resources.json"
SUBNETS, GROUPS = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"], ["sg-0123456789abcdef0"]
ON = {"proxy_compute": "managed-instances", "managed_instances": {"subnet_ids": SUBNETS, "security_group_ids": GROUPS}}
# what the option changes on the proxy; its reserved concurrency goes: its own instances are its ceiling
PROXY_CHANGES = {"MemorySize", "CapacityProviderConfig", "PublishToLatestPublished", "ReservedConcurrentExecutions"}


@pytest.fixture
def config(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    path.write_text(stages.CONFIG.read_text())
    monkeypatch.setattr(stages, "CONFIG", path)
    return path


def with_dev_settings(config: Path, settings: dict) -> None:
    raw = json.loads(config.read_text())
    raw["stages"]["dev"]["tollgate"] = {**raw["stages"]["dev"]["tollgate"], **settings}
    config.write_text(json.dumps(raw))


def on_managed_instances_stage() -> stages.Stage:
    dev = stages.load("dev")
    return dataclasses.replace(dev, deploy=dataclasses.replace(
        dev.deploy, proxy_compute="managed-instances", managed_instances=ManagedInstances(tuple(SUBNETS), tuple(GROUPS))))


def chalice_like(proxy_runtime: str = "python3.13") -> dict:
    """infra/resources.json with what `chalice package` adds and finish() reads: its six functions, their roles,
    the API's stage, title and Swagger version (enough for finish(), not a deployable template)."""
    merged = json.loads(RESOURCES.read_text())
    resources = merged["Resources"]
    for function in FUNCTIONS:
        resource = resources.setdefault(function, {})
        resource.setdefault("Type", "AWS::Serverless::Function")
        properties = resource.setdefault("Properties", {})
        properties.setdefault("Timeout", 60)
        properties.setdefault("Role", {"Fn::GetAtt": [role_of(function), "Arn"]})
        resources.setdefault(role_of(function), {"Type": "AWS::IAM::Role", "Properties": {}})
    resources["ProxyFunction"]["Properties"]["Runtime"] = proxy_runtime
    api = resources["RestAPI"]
    api["Type"] = "AWS::Serverless::Api"
    api["Properties"]["StageName"] = "api"
    api["Properties"]["DefinitionBody"].setdefault("info", {})
    api["Properties"]["DefinitionBody"].setdefault("swagger", "2.0")
    return merged


def proxy_alone() -> dict:
    """A deployable SAM template of the proxy function and what its environment names, as infra/resources.json
    writes them; CodeUri as `aws cloudformation package` leaves it."""
    merged = json.loads(RESOURCES.read_text())
    names = ("ProxyFunction", "ProxyFunctionRole", "SpillQueue", "SpillDeadLetterQueue")
    built = {"AWSTemplateFormatVersion": "2010-09-09", "Transform": "AWS::Serverless-2016-10-31",
             "Parameters": {"Stage": {"Type": "String", "Default": "dev", "AllowedValues": ["dev"]}},
             "Resources": {name: copy.deepcopy(merged["Resources"][name]) for name in names}}
    built["Resources"]["ProxyFunction"]["Properties"]["CodeUri"] = "s3://tollgate-code/dev/deployment.zip"
    return built


def cfn_lint(template_path: Path, *checks: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), *checks, "--", str(template_path)],
                          capture_output=True, text=True, timeout=300)


def test_the_option_is_off_unless_a_stage_turns_it_on(config):
    assert stages.PROXY_COMPUTE[0] == "lambda" == stages.DeploySettings().proxy_compute
    assert stages.load("dev").deploy.proxy_compute == "lambda" and stages.load("dev").deploy.managed_instances is None
    with_dev_settings(config, ON)
    on = stages.load("dev").deploy
    assert on.proxy_compute == "managed-instances"
    assert on.managed_instances == ManagedInstances(tuple(SUBNETS), tuple(GROUPS), ("m7g.large",), 12, 64)


@pytest.mark.parametrize("settings, message", [
    ({"proxy_compute": "fargate"}, "proxy_compute must be one of ['lambda', 'managed-instances']"),
    ({"proxy_compute": "managed-instances"}, "needs \"managed_instances\""),
    ({**ON, "managed_instances": {"subnet_ids": [], "security_group_ids": GROUPS}}, "subnet_ids must be a list of 1 to 16"),
    ({**ON, "managed_instances": {"subnet_ids": ["10.0.0.0/24"], "security_group_ids": GROUPS}}, "subnet_ids"),
    ({**ON, "managed_instances": {"subnet_ids": SUBNETS}}, "security_group_ids must be a list of 1 to 5"),
    ({**ON, "managed_instances": {**ON["managed_instances"], "min_instances": 0}}, "takes only"),
    ({**ON, "managed_instances": {**ON["managed_instances"], "max_vcpu_count": 1}}, "max_vcpu_count must be"),
    ({**ON, "managed_instances": {**ON["managed_instances"], "max_concurrency": 2000}}, "max_concurrency must be"),
])
def test_managed_instances_settings_that_aws_would_refuse_stop_in_one_line(config, settings, message):
    with_dev_settings(config, settings)
    with pytest.raises(StageError) as caught:
        stages.load("dev")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_default_template_has_no_capacity_provider_and_the_option_only_adds_one():
    """Off: no capacity provider and the proxy as infra/resources.json writes it. On: the same template plus the
    provider and its operator role, and the proxy attached to it: nothing else differs."""
    default = finish(chalice_like("python3.13"), stages.load("dev"))
    kinds = {r["Type"] for r in default["Resources"].values()}
    assert "AWS::Lambda::CapacityProvider" not in kinds and "AWS::Serverless::CapacityProvider" not in kinds
    proxy = default["Resources"]["ProxyFunction"]["Properties"]
    assert not (PROXY_CHANGES - {"MemorySize", "ReservedConcurrentExecutions"}) & set(proxy)
    assert proxy["MemorySize"] == 512 and proxy["ReservedConcurrentExecutions"] == 100

    on = finish(chalice_like("python3.13"), on_managed_instances_stage())
    assert set(on["Resources"]) - set(default["Resources"]) == {"ProxyCapacityProvider", "ProxyCapacityProviderRole"}
    assert {n for n in default["Resources"] if on["Resources"][n] != default["Resources"][n]} == {"ProxyFunction"}
    changed = on["Resources"]["ProxyFunction"]["Properties"]
    assert {k for k in {*changed, *proxy} if changed.get(k) != proxy.get(k)} == PROXY_CHANGES
    assert changed["CapacityProviderConfig"] == {"Arn": {"Fn::GetAtt": ["ProxyCapacityProvider", "Arn"]},
                                                 "PerExecutionEnvironmentMaxConcurrency": 64,
                                                 "ExecutionEnvironmentMemoryGiBPerVCpu": 2}
    assert changed["MemorySize"] == 2048 and changed["PublishToLatestPublished"] is True
    assert "ReservedConcurrentExecutions" not in changed
    provider = on["Resources"]["ProxyCapacityProvider"]["Properties"]
    assert provider["VpcConfig"] == {"SubnetIds": SUBNETS, "SecurityGroupIds": GROUPS}
    assert provider["InstanceRequirements"] == {"Architectures": ["arm64"], "AllowedInstanceTypes": ["m7g.large"]}
    assert provider["CapacityProviderScalingConfig"] == {"ScalingMode": "Auto", "MaxVCpuCount": 12}
    assert provider["PermissionsConfig"] == {"CapacityProviderOperatorRoleArn": {
        "Fn::GetAtt": ["ProxyCapacityProviderRole", "Arn"]}}
    operator = on["Resources"]["ProxyCapacityProviderRole"]["Properties"]
    assert operator["ManagedPolicyArns"] == [{"Fn::Sub": template.OPERATOR_POLICY}] and "Policies" not in operator
    # API Gateway still invokes the unqualified ARN, which Managed Instances serves from $LATEST.PUBLISHED
    paths = on["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    assert "${ProxyFunction.Arn}/response-streaming-invocations" in json.dumps(paths)


def test_a_stage_with_the_option_packages_for_real(config, tmp_path):
    """Every function runs python3.13 (the package refuses to be built by another Python), so the option is not
    refused: `make package` writes the capacity provider and the attached proxy."""
    with_dev_settings(config, ON)
    out = package.package("dev", tmp_path / "out")
    built = json.loads((out / "sam.json").read_text())["Resources"]
    assert {built[f]["Properties"]["Runtime"] for f in FUNCTIONS} == {"python3.13"}
    assert built["ProxyCapacityProvider"]["Type"] == "AWS::Lambda::CapacityProvider"
    assert built["ProxyFunction"]["Properties"]["CapacityProviderConfig"]["Arn"] == {
        "Fn::GetAtt": ["ProxyCapacityProvider", "Arn"]}


def test_the_option_is_refused_for_a_proxy_built_for_python_3_11():
    """Managed Instances runs Python 3.13 and later; the zip's compiled wheels are for the runtime it is built for."""
    with pytest.raises(StageError) as caught:
        template.check_proxy_compute(on_managed_instances_stage(), "python3.11")
    assert str(caught.value) == (
        "stage 'dev': proxy_compute \"managed-instances\" needs the proxy on Python 3.13 or later, and this package "
        "builds it for python3.11 (compiled wheels included): set \"proxy_compute\": \"lambda\" "
        "(docs/OPERATIONS.md, Lambda Managed Instances)")
    with pytest.raises(StageError, match="needs the proxy on Python 3.13"):
        finish(chalice_like("python3.11"), on_managed_instances_stage())
    template.check_proxy_compute(on_managed_instances_stage(), "python3.14")  # a later Python passes
    template.check_proxy_compute(dataclasses.replace(stages.load("dev"), deploy=stages.DeploySettings()), "python3.11")


def test_the_capacity_provider_and_the_attached_proxy_are_lint_clean(tmp_path):
    """cfn-lint with `-c I`, as the packaged template is checked, on the proxy with the option; then again on the
    SAM transform's output, where cfn-lint also checks the function's CapacityProviderConfig values (1–1600
    calls, 2–8 GiB per vCPU) and its Timeout against the 900 s of functions without one."""
    from infra.sam_transform import transform

    sam = proxy_alone()
    assert sam["Resources"]["ProxyFunction"]["Properties"]["Runtime"] == "python3.13"
    on_managed_instances(sam, on_managed_instances_stage().deploy.managed_instances)
    assert {r["Type"] for r in sam["Resources"].values()} >= {"AWS::Lambda::CapacityProvider", "AWS::IAM::Role"}
    (tmp_path / "sam.json").write_text(json.dumps(sam, indent=2))
    lint = cfn_lint(tmp_path / "sam.json", "-c", "I")
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout[-3000:]

    transformed = transform(copy.deepcopy(sam), "us-east-1", "123456789012", "tollgate-dev")
    function = transformed["Resources"]["ProxyFunction"]
    assert function["Type"] == "AWS::Lambda::Function"
    assert function["Properties"]["CapacityProviderConfig"] == {"LambdaManagedInstancesCapacityProviderConfig": {
        "CapacityProviderArn": {"Fn::GetAtt": ["ProxyCapacityProvider", "Arn"]},
        "PerExecutionEnvironmentMaxConcurrency": 64, "ExecutionEnvironmentMemoryGiBPerVCpu": 2}}
    (tmp_path / "transformed.json").write_text(json.dumps(transformed, indent=2))
    lint = cfn_lint(tmp_path / "transformed.json", "-c", "I")  # the layer's ARN names its partition: I3042 too
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout[-3000:]
