"""The local stack keeps what it needs, not every call (issue #25, item 11): what grows with each call is bounded.
Counted, never timed: the number of requests the built-in mock upstream remembers after many real HTTP calls."""
import httpx

from local.mock_upstream import MockUpstream
from local.stack import MOCK_UPSTREAM_KEY, RecentRequests

CALLS = 60


def test_the_stacks_mock_upstream_remembers_only_its_newest_requests():
    kept = 25
    mock = MockUpstream(expected_key=MOCK_UPSTREAM_KEY, requests=RecentRequests(kept))
    url = mock.start()
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MOCK_UPSTREAM_KEY}"}) as http:
            for n in range(CALLS):
                answer = http.post("/v1/chat/completions",
                                   json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"hi {n}"}]})
                assert answer.status_code == 200, answer.text
    finally:
        mock.stop()
    assert len(mock.requests) == kept  # not CALLS: the log no longer grows with every call
    assert [seen.body["messages"][0]["content"] for seen in mock.requests] == [
        f"hi {n}" for n in range(CALLS - kept, CALLS)]  # the newest, in order


def test_the_local_stack_gives_its_mock_the_bounded_log(monkeypatch, tmp_path):
    """`make run`'s own mock (tests' mocks keep every request, to inspect them) is made with the bounded log."""
    import local.mock_upstream
    import local.stack

    made = []
    monkeypatch.setattr(local.mock_upstream.MockUpstream, "start", lambda self, host="127.0.0.1": made.append(self)
                        or "http://127.0.0.1:9")
    monkeypatch.setattr(local.stack.os, "environ", dict(local.stack.os.environ))  # _configure_env writes env
    stack = local.stack.Stack({"TOLLGATE_DATA_DIR": str(tmp_path)})  # no upstream URL: the mock serves them all
    stack._configure_env("http://127.0.0.1:1")
    [mock] = made
    assert isinstance(mock.requests, RecentRequests) and mock.requests.kept == local.stack.MOCK_REQUESTS_KEPT


def test_each_snapshot_gives_mallocs_free_pages_back(monkeypatch, tmp_path):
    """The snapshot's scan and every request since leave freed memory in glibc's arenas (one per thread moto
    serves a request on): after each snapshot `malloc_trim` returns it, so the idle stack's RSS stays flat."""
    import local.heap
    import local.persist
    import local.stack

    trims, snapshots = [], []
    monkeypatch.setattr(local.persist, "snapshot", lambda *args: snapshots.append(args) or 0)
    monkeypatch.setattr(local.heap, "release_free_memory", lambda: trims.append(1) or True)
    stack = local.stack.Stack({"TOLLGATE_DATA_DIR": str(tmp_path)})
    stack.dynamodb, stack.tables = None, []
    for _ in range(3):
        stack.save()
    assert (len(snapshots), len(trims)) == (3, 3)


def test_a_snapshot_holds_one_item_at_a_time_not_the_whole_table(aws_env, tmp_path):
    """Every 10 s the stack snapshots its tables. Scanned whole through HTTP and boto3 and dumped as one string, a
    snapshot held the table three times over, and those peaks made the stack's RSS grow ~20 KB a call more than
    the data it holds (bench/memory.py). Written item by item from moto, it holds a few items at once, and the file
    is what a Scan reads, so a restart restores it."""
    import json
    import tracemalloc

    import boto3

    from local import persist

    client, table = boto3.client("dynamodb"), "tollgate-dev-audit"
    key = {k["AttributeName"]: k["AttributeName"] for k in client.describe_table(TableName=table)["Table"]["KeySchema"]}
    items = [{**{name: {"S": f"{name}-{n:04d}"} for name in key}, "note": {"S": "x" * 2000}, "n": {"N": str(n)},
              "tags": {"M": {"a": {"S": "b"}, "c": {"N": "1.50"}}}} for n in range(300)]
    for item in items:
        client.put_item(TableName=table, Item=item)
    tracemalloc.start()
    try:
        persist.snapshot(client, [table], tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    written = (tmp_path / f"{table}.json").read_text()
    scanned = client.scan(TableName=table)["Items"]
    assert sorted(map(json.dumps, json.loads(written))) == sorted(map(json.dumps, scanned))
    assert peak < len(written) / 10, (peak, len(written))  # ~650 KB of items; the Scan's way held ~3× that
