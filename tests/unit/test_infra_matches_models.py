"""The CloudFormation tables in infra/ describe the same keys, indexes and stream as the pynamodb models."""
import json

import pytest

from chalicelib.ledger.models import CallRecord
from local.tables import ALL_MODELS
from tests.conftest import ROOT

RESOURCES = json.loads((ROOT / "infra" / "resources.json").read_text())["Resources"]


def _table(model):
    suffix = model.Meta.table_name.split("tollgate-dev-", 1)[1]
    [table] = [r["Properties"] for r in RESOURCES.values() if r.get("Type") == "AWS::DynamoDB::Table"
               and r["Properties"]["TableName"] == {"Fn::Sub": f"tollgate-${{Stage}}-{suffix}"}]
    return table


def _keys(schema):
    return sorted((k["AttributeName"], k["KeyType"]) for k in schema)


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_tables_in_infra_match_the_models(model):
    table, schema = _table(model), model._get_schema()
    assert _keys(table["KeySchema"]) == _keys(schema["key_schema"])
    assert {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]} == {
        a["AttributeName"]: a["AttributeType"] for a in schema["attribute_definitions"]}
    indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", [])}
    assert set(indexes) == {i["index_name"] for i in schema.get("global_secondary_indexes", [])}
    for index in schema.get("global_secondary_indexes", []):
        assert _keys(indexes[index["index_name"]]["KeySchema"]) == _keys(index["key_schema"])
        projection = indexes[index["index_name"]]["Projection"]
        assert projection["ProjectionType"] == index["projection"]["ProjectionType"]
        assert sorted(projection.get("NonKeyAttributes", [])) == sorted(index["projection"].get("NonKeyAttributes", []))


def test_call_log_stream_and_ttl():
    table = _table(CallRecord)
    assert table["StreamSpecification"]["StreamViewType"] == CallRecord.Meta.stream_view_type
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_the_stream_mapping_reports_partial_batch_failures_with_bounded_retries():
    """Merged over the functions Chalice generates for app.rollup_calls and app.rollup_details (RollupCalls and
    RollupDetails: the stream's two readers, each folding its tier); only rollup_calls is told the other folds apart."""
    import app

    for function, name in (("RollupCalls", "rollup_calls"), ("RollupDetails", "rollup_details")):
        assert name in app.app.handler_map
        events = RESOURCES[function]["Properties"]["Events"]
        mapping = events[f"{function}DynamodbEventSource"]["Properties"]
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["Stream"] == {"Fn::GetAtt": ["CallsTable", "StreamArn"]}
        assert 0 < mapping["MaximumRetryAttempts"] <= 100 and "OnFailure" in mapping["DestinationConfig"]
    variables = {f: RESOURCES[f]["Properties"]["Environment"]["Variables"] for f in ("RollupCalls", "RollupDetails")}
    assert variables["RollupCalls"]["TOLLGATE_ROLLUP_DETAIL_APART"] == "1"
    assert "TOLLGATE_ROLLUP_DETAIL_APART" not in variables["RollupDetails"]


def test_the_rest_api_sends_the_proxy_paths_to_the_proxy_app_and_chalice_defines_none_of_them():
    """infra/ routes these paths to ProxyFunction, which runs chalicelib.gateway.proxy_app; a path the app does
    not serve would answer 404 from AWS only, and one Chalice also defines would have two implementations."""
    from starlette.routing import Match

    import app
    from chalicelib.gateway.proxy_app import app as proxy_app

    def served(path, method):
        scope = {"type": "http", "path": path, "root_path": "", "method": method.upper()}
        return any(route.matches(scope)[0] == Match.FULL for route in proxy_app.routes)

    paths = RESOURCES["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    unserved = [(path, method) for path, operations in paths.items() for method in operations if not served(path, method)]
    assert paths and not unserved
    assert not set(paths) & set(app.app.routes)
    readiness = RESOURCES["ProxyFunction"]["Properties"]["Environment"]["Variables"]["AWS_LWA_READINESS_CHECK_PATH"]
    assert served(readiness, "get")


def test_every_setting_the_template_gives_the_proxy_is_one_the_settings_read(monkeypatch):
    """A misspelt or renamed variable in infra/ would be ignored silently in AWS and the default used."""
    from chalicelib.settings import from_env

    baseline = from_env()
    variables = RESOURCES["ProxyFunction"]["Properties"]["Environment"]["Variables"]
    for name, value in variables.items():
        if not name.startswith("TOLLGATE_"):
            continue
        probe = str(int(value) + 1) if isinstance(value, str) and value.isdigit() else f"probe-{name.lower()}"
        with monkeypatch.context() as patch:
            patch.setenv(name, probe)
            assert from_env() != baseline, f"ProxyFunction sets {name}, which chalicelib.settings does not read"
