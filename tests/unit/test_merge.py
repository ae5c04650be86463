"""The detail tier's staging (chalicelib/rollup/merge.py), its pure parts: facts as bytes, names, chunks."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.rollup import merge
from chalicelib.rollup.fold import Fact

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
SPAN = timedelta(minutes=5)


def fact(seq=1, lane="s|acme", **more):
    values = dict(sign=1, lane=lane, seq=seq, ts=T0, account="acme", key_id="k1", provider="openai",
                  model="gpt-4o", operation=None, team=None, is_error=False, error_type=None,
                  tokens=(10, 0, 0, 5, 0), cost_usd=Decimal("0.000123456789012345678901234567890123"), latency_ms=80)
    return Fact(**values | more)


names = st.text(st.characters(codec="utf-8"), max_size=12)


@given(seq=st.integers(0, 10**21), lane=names, user=st.none() | names, cost=st.none() | st.decimals(
    allow_nan=False, allow_infinity=False, places=20), attempts=st.lists(st.tuples(names, st.none() | names,
    st.none() | st.integers(0, 10**6)), max_size=3), refused=st.booleans(), was=st.booleans())
def test_a_fact_comes_back_from_its_bytes_as_it_was(seq, lane, user, cost, attempts, refused, was):
    before = fact(seq, lane, sign=-1, cost_usd=Decimal("0.5")) if was else None
    original = fact(seq, lane, user=user, cost_usd=cost, failed_attempts=tuple(attempts), refused=refused,
                    ttft_ms=12, was=before, ts=T0 + timedelta(microseconds=seq % 10**6))
    assert merge.decode(merge.encode([original, original])) == [original, original]


def test_names_sort_by_staging_time_and_say_their_group_and_size():
    facts = [fact(5), fact(6)]
    early, late = merge.object_key(3, T0, facts), merge.object_key(0, T0 + timedelta(milliseconds=1), facts)
    assert early < late
    assert (merge.group_of_key(early), merge._count(early)) == (3, 2)
    assert merge.object_key(3, T0, facts) == early  # the same batch staged again: the same name
    assert merge.object_key(3, T0, [fact(5), fact(7)]) != early


def test_only_names_the_staging_writes_are_merged():
    key = merge.object_key(15, T0, [fact(5)])
    assert merge.is_staged(key)
    for stray in ("notes.txt", "0000000000001-g16-0000001-0123456789abcdef", "1-g01-0000001-0123456789abcdef",
                  "0000000000001-g01-0000001-0123456789ABCDEF", "0000000000001-g01-0000001-0123456789abcdef/x"):
        assert not merge.is_staged(merge.PREFIX + stray), stray


def test_an_account_lands_in_one_group():
    assert len({merge.group_of(f"stream|acct-{i}") for i in range(200)}) == merge.GROUPS
    assert merge.group_of("stream|acme") == merge.group_of("stream|acme")


def keys_at(*offsets, count=10):
    return [merge.object_key(0, T0 + timedelta(seconds=s), [fact(i) for i in range(count)]) for s in offsets]


def test_a_chunk_is_due_once_nothing_running_can_still_stage_into_it():
    keys = keys_at(0, 60, 299, 300, 400)
    closes = T0 + SPAN + merge.GRACE
    assert merge.due_chunks(keys, closes - timedelta(seconds=1), SPAN) == []
    assert merge.due_chunks(keys, closes, SPAN) == [keys[:3]]  # 300 s after the first starts the next chunk
    assert merge.due_chunks(keys, closes + timedelta(seconds=300), SPAN) == [keys[:3], keys[3:]]


def test_a_chunk_holds_at_most_so_many_facts():
    keys = keys_at(0, 1, 2, 3, count=40)
    assert merge.due_chunks(keys, T0 + timedelta(hours=1), SPAN, max_facts=100) == [keys[:2], keys[2:]]
    assert merge.due_chunks(keys[:1], T0 + timedelta(hours=1), SPAN, max_facts=10) == [keys[:1]]  # never empty


def test_a_record_staged_twice_folds_once_in_stream_order():
    a, b, c = fact(3, "s|a"), fact(1, "s|b"), fact(2, "s|a")
    assert merge.in_order([a, b, c, a, b]) == [b, c, a]


def test_the_detail_lags_by_a_chunk_the_grace_and_a_tick_only_when_merging(monkeypatch):
    from chalicelib.settings import get_settings

    for minutes, lag in (("", 0), ("0", 0), ("5", 9), ("600", 64)):
        monkeypatch.setenv("TOLLGATE_ROLLUP_MERGE_MINUTES", minutes)
        get_settings.cache_clear()
        assert merge.lag() == timedelta(minutes=lag)
    get_settings.cache_clear()


def test_the_grace_covers_the_staging_function():
    """An object is named when rollup_details starts and written before it ends: the grace must outlast it."""
    from infra import stages

    timeout = stages.load("dev").function_config("rollup_details")["lambda_timeout"]
    assert timedelta(seconds=timeout) + timedelta(minutes=1) <= merge.GRACE
