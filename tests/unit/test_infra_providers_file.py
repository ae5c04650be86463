"""A stage's providers file in AWS: packaged under chalicelib/, read by the proxy, each provider routed to the proxy
with its key in SSM; a bad file or a path the zip does not carry stops the package."""
import copy
import json

import pytest

from infra import template
from infra.stages import DeploySettings, Stage, StageError
from tests.conftest import ROOT

RESOURCES = json.loads((ROOT / "infra" / "resources.json").read_text())["Resources"]


def _template():
    groq = copy.deepcopy(_groq_route())
    return {"Resources": {
        "ProxyFunction": {"Properties": {"Environment": {"Variables": {}}}},
        "ProxyFunctionRole": {"Properties": {"Policies": [{"PolicyDocument": {"Statement": []}}]}},
        "RestAPI": {"Properties": {"DefinitionBody": {"paths": {"/groq/{proxy+}": groq}}}}}}


def _groq_route():
    """The proxy's Groq route as infra/resources.json declares it (in the API's definition Chalice merges it into)."""
    def find(value):
        if isinstance(value, dict):
            if "/groq/{proxy+}" in value:
                return value["/groq/{proxy+}"]
            for inner in value.values():
                if (found := find(inner)) is not None:
                    return found
        return None
    return find(RESOURCES)


def _stage(providers_file):
    return Stage("dev", {"environment_variables": {"TOLLGATE_STAGE": "dev", "TOLLGATE_PROVIDERS_FILE": providers_file}},
                 DeploySettings())


@pytest.fixture
def root(tmp_path, monkeypatch):
    (tmp_path / "chalicelib").mkdir()
    monkeypatch.setattr(template, "ROOT", tmp_path)
    return tmp_path


def test_each_file_provider_is_routed_to_the_proxy_with_its_key_in_ssm(root):
    (root / "chalicelib" / "providers.json").write_text(json.dumps({"providers": [
        {"name": "together", "base_url": "https://api.together.xyz/v1", "price_provider": "together"}]}))
    built = _template()
    template._file_providers(built, _stage("chalicelib/providers.json"))
    resources = built["Resources"]
    env = resources["ProxyFunction"]["Properties"]["Environment"]["Variables"]
    assert env["TOLLGATE_PROVIDERS_FILE"] == "chalicelib/providers.json"  # the proxy runs in the zip's root
    assert env["TOLLGATE_TOGETHER_API_KEY_PARAMETER"] == {"Fn::Sub": "/tollgate/${Stage}/together-api-key"}
    paths = resources["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    route = paths["/together/{proxy+}"]
    assert set(route) == set(paths["/groq/{proxy+}"]) == {"get", "post"}
    assert route["post"]["x-amazon-apigateway-integration"] == paths["/groq/{proxy+}"]["post"]["x-amazon-apigateway-integration"]
    [grant] = resources["ProxyFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert grant["Action"] == ["ssm:GetParameter"] and grant["Resource"] == [{"Fn::Sub": (
        "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/tollgate/${Stage}/together-api-key")}]


@pytest.mark.parametrize("path", ["/etc/providers.json", "providers.json", "chalicelib/../providers.json"])
def test_a_providers_file_the_zip_does_not_carry_stops_the_package(root, path):
    with pytest.raises(StageError, match="under chalicelib/"):
        template._file_providers(_template(), _stage(path))


def test_a_bad_providers_file_stops_the_package(root):
    (root / "chalicelib" / "providers.json").write_text(json.dumps({"providers": [
        {"name": "openai", "base_url": "https://example.com/v1"}]}))
    with pytest.raises(StageError, match="taken by the gateway"):
        template._file_providers(_template(), _stage("chalicelib/providers.json"))


def test_no_providers_file_changes_nothing():
    built = _template()
    template._file_providers(built, Stage("dev", {"environment_variables": {}}, DeploySettings()))
    assert built == _template()
