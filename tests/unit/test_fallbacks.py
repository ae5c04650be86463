"""Fallback rules, the pure part: which targets a failed call tries next, which failures move it on, and the
admin's rule checked (CONTRACT §2, §3)."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.errors import InvalidRequest
from chalicelib.gateway.fallbacks import parse_rule, retryable, rule_for, same_wire_family, targets_for
from chalicelib.ledger.fallback_rules import DEFAULT_ON, FallbackRule, Target

OPENAI_RULE = {"match": {"provider": "openai", "model": "gpt-4o-mini"},
               "targets": [{"provider": "openrouter", "model": "openai/gpt-4o-mini"}]}
BEDROCK = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


def rule(name="r", provider="openai", model="gpt-4o-mini", targets=(("openrouter", "openai/gpt-4o-mini"),), on=None):
    return FallbackRule(name, Target(provider, model), tuple(Target(*t) for t in targets), on or DEFAULT_ON)


@pytest.mark.parametrize("a, b, same", [
    ("openai", "openrouter", True), ("openai", "groq", True), ("azure", "openai", True),
    ("openai", "local", True),  # a providers-file provider is OpenAI-compatible
    ("anthropic", "bedrock", True), ("bedrock", "anthropic", True),
    ("openai", "anthropic", False), ("openrouter", "bedrock", False), ("gemini", "openai", False),
    ("gemini", "gemini", True), ("local", "anthropic", False),
])
def test_the_wire_families(a, b, same):
    assert same_wire_family(a, b) is same


def test_a_rule_parses_and_defaults_its_triggers():
    parsed = parse_rule("openai-mini", OPENAI_RULE)
    assert parsed == rule("openai-mini")
    assert parsed.on == (429, 500, 502, 503, 504, "timeout", "unreachable")


def test_anthropic_falls_back_to_bedrocks_anthropic_models_only():
    body = {"match": {"provider": "anthropic", "model": "claude-sonnet-4-5"},
            "targets": [{"provider": "bedrock", "model": BEDROCK}]}
    assert parse_rule("sonnet", body).targets == (Target("bedrock", BEDROCK),)
    body["targets"] = [{"provider": "bedrock", "model": "meta.llama3-70b-instruct-v1:0"}]
    with pytest.raises(InvalidRequest, match="Bedrock's Anthropic models"):
        parse_rule("sonnet", body)


@pytest.mark.parametrize("name, body, says", [
    ("x" * 65, OPENAI_RULE, "name"),
    ("a/b", OPENAI_RULE, "name"),
    ("r", [], "JSON object"),
    ("r", {**OPENAI_RULE, "extra": 1}, "unknown field"),
    ("r", {**OPENAI_RULE, "match": {"provider": "OpenAI", "model": "m"}}, "provider name"),
    ("r", {**OPENAI_RULE, "match": {"provider": "openai"}}, "model must be"),
    ("r", {**OPENAI_RULE, "match": {"provider": "openai", "model": "m" * 257}}, "1 to 256"),
    ("r", {**OPENAI_RULE, "match": {"provider": "openai", "model": "\ud800"}}, "valid Unicode"),
    ("r", {**OPENAI_RULE, "match": {"provider": "openai", "model": "a\nb"}}, "control"),
    ("r", {**OPENAI_RULE, "targets": []}, "1 to 5"),
    ("r", {**OPENAI_RULE, "targets": [{"provider": "openrouter", "model": f"m{n}"} for n in range(6)]}, "1 to 5"),
    ("r", {**OPENAI_RULE, "targets": [{"provider": "anthropic", "model": "claude-haiku-4-5"}]}, "wire format"),
    ("r", {**OPENAI_RULE, "targets": [{"provider": "openai", "model": "gpt-4o-mini"}]}, "repeats"),
    ("r", {**OPENAI_RULE, "targets": [OPENAI_RULE["targets"][0]] * 2}, "repeats"),
    ("r", {**OPENAI_RULE, "targets": [{"provider": "openrouter", "model": "*"}]}, "for `match` only"),
    ("r", {**OPENAI_RULE, "on": [404]}, "`on`"),
    ("r", {**OPENAI_RULE, "on": [True]}, "`on`"),
    ("r", {**OPENAI_RULE, "on": ["slow"]}, "`on`"),
    ("r", {**OPENAI_RULE, "on": []}, "`on`"),
])
def test_a_bad_rule_is_a_400_that_says_why(name, body, says):
    with pytest.raises(InvalidRequest, match=says):
        parse_rule(name, body)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=300),
                    lambda inner: st.lists(inner, max_size=7) | st.dictionaries(st.text(max_size=10), inner,
                                                                                  max_size=4), max_leaves=20))
def test_any_body_is_a_rule_or_a_400(body):
    try:
        parsed = parse_rule("r", body)
    except InvalidRequest:
        return
    assert 1 <= len(parsed.targets) <= 5 and all(same_wire_family(parsed.match.provider, t.provider)
                                                 for t in parsed.targets)


def test_targets_are_the_call_then_its_rules_targets_in_order():
    rules = [rule(targets=(("openrouter", "openai/gpt-4o-mini"), ("groq", "llama-3.1-8b-instant")))]
    assert targets_for(rules, "openai", "gpt-4o-mini") == [
        Target("openai", "gpt-4o-mini"), Target("openrouter", "openai/gpt-4o-mini"),
        Target("groq", "llama-3.1-8b-instant")]
    assert targets_for(rules, "openai", "gpt-4o") == [Target("openai", "gpt-4o")]  # no rule: itself only
    assert targets_for(rules, "openrouter", "gpt-4o-mini") == [Target("openrouter", "gpt-4o-mini")]


def test_an_exact_model_beats_any_model_and_names_break_ties():
    rules = [rule("b-any", model="*", targets=(("groq", "x"),)), rule("c"), rule("a", targets=(("azure", "y"),))]
    assert rule_for(rules, "openai", "gpt-4o-mini").name == "a"
    assert rule_for(rules, "openai", "gpt-4.1").name == "b-any"
    assert rule_for(rules, "anthropic", "gpt-4o-mini") is None


@pytest.mark.parametrize("failure, moves_on", [
    (429, True), (500, True), (502, True), (503, True), (504, True), ("timeout", True), ("unreachable", True),
    (400, False), (401, False), (404, False), (501, False), (True, False),
])
def test_the_default_triggers(failure, moves_on):
    assert retryable(failure, None) is moves_on
    assert retryable(failure, rule()) is moves_on


def test_a_rule_chooses_its_own_triggers():
    only_quota = rule(on=(429,))
    assert retryable(429, only_quota) and not retryable(503, only_quota) and not retryable("timeout", only_quota)
