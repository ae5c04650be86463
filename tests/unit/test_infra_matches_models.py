"""The CloudFormation tables in infra/ describe the same keys, index, stream and TTL as the pynamodb models."""
import json

from chalicelib.models import CallRecord
from tests.conftest import ROOT


def test_calls_table_in_infra_matches_the_model():
    resources = json.loads((ROOT / "infra" / "resources.json").read_text())["Resources"]
    table = resources["CallsTable"]["Properties"]
    model = CallRecord._get_schema()
    assert table["KeySchema"] == [{"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]}
                                  for k in model["key_schema"]]
    [index] = table["GlobalSecondaryIndexes"]
    [model_index] = model["global_secondary_indexes"]
    assert index["IndexName"] == model_index["index_name"] and index["KeySchema"] == model_index["key_schema"]
    assert table["StreamSpecification"]["StreamViewType"] == CallRecord.Meta.stream_view_type
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
