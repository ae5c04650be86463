"""Attribution headers and key formats: pure parsing, no AWS."""
import pytest

from chalicelib.errors import InvalidRequest
from chalicelib.gateway.attribution import attribution_of, parse_tags
from chalicelib.ledger.auth import Principal, _key_id_of, bearer_or_api_key, hash_secret, new_secret


def test_tags_parse_and_reject_garbage():
    assert parse_tags("team=search, env=prod,") == {"team": "search", "env": "prod"}
    assert parse_tags(None) == {} and parse_tags("") == {}
    for bad in ("novalue", "=x", ",".join(f"k{i}=v" for i in range(21)), "k=" + "v" * 300):
        with pytest.raises(InvalidRequest):
            parse_tags(bad)


def test_header_user_overrides_the_keys_user():
    principal = Principal(kind="gateway", key_id="k", account="acme", user="service")
    assert attribution_of({}, principal).user == "service"
    got = attribution_of({"x-tollgate-user": "alice", "x-tollgate-session": "s1",
                          "x-tollgate-operation": "summarise", "x-tollgate-tags": "a=b"}, principal)
    assert (got.user, got.session, got.operation, got.tags) == ("alice", "s1", "summarise", {"a": "b"})
    with pytest.raises(InvalidRequest):
        attribution_of({"x-tollgate-user": "u" * 300}, principal)


def test_secrets_carry_their_key_id_and_hash_deterministically():
    key_id, secret = new_secret("gateway")
    assert secret.startswith(f"tg-{key_id}_") and _key_id_of(secret, "gateway") == key_id
    assert _key_id_of(secret, "dashboard") is None and _key_id_of("tg-nounderscore", "gateway") is None
    assert hash_secret(secret) == hash_secret(secret) != hash_secret(secret + "x")
    assert new_secret("gateway")[1] != secret


def test_key_comes_from_bearer_or_x_api_key():
    assert bearer_or_api_key({"authorization": "Bearer tg-a_b"}) == "tg-a_b"
    assert bearer_or_api_key({"authorization": "bearer  tg-a_b "}) == "tg-a_b"
    assert bearer_or_api_key({"x-api-key": "tg-a_b"}) == "tg-a_b"
    assert bearer_or_api_key({"authorization": "Basic xyz"}) is None


def test_header_values_are_read_as_the_utf8_their_sender_wrote():
    from chalicelib import caller_names
    from chalicelib.errors import InvalidRequest

    assert caller_names.from_header("us\u00c3\u00a9r") == "usér"  # UTF-8 bytes, handed over decoded as Latin-1
    assert caller_names.from_header("plain") == "plain"
    with pytest.raises(InvalidRequest, match="not valid UTF-8"):
        caller_names.from_header("\u00ff\u00fe")
    assert caller_names.problem("a\u0085b") == "contains control characters"  # C1 controls too
