"""Fallbacks, the pure part: which targets a failed call tries next, which failures move it on, and the admin's
rule checked. No AWS: the rules are stored and cached by the ledger (chalicelib/ledger/fallback_rules.py).

Only the matched rule's own targets are tried (rules do not chain), so no set of rules can loop.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

from chalicelib.errors import InvalidRequest
from chalicelib.ledger import DEFAULT_ON, FallbackRule, Target

NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
PROVIDER = re.compile(r"[a-z0-9-]{1,64}")
MODEL_MAX = 256
TARGETS_MAX = 5
ANY_MODEL = "*"
FAULTS = ("timeout", "unreachable")  # no status: not reached, or no first byte in time
RETRY_STATUSES = frozenset({408, 409, 429, *range(500, 600)})
OPENAI_FAMILY = frozenset({"openai", "openrouter", "groq", "azure"})  # and every providers-file provider
ANTHROPIC_FAMILY = frozenset({"anthropic", "bedrock"})  # Bedrock's Anthropic models speak Messages
OWN_FAMILY = frozenset({"gemini"})


def wire_family(provider: str) -> str:
    """The wire format a provider's callers speak; a name that is no built-in is a providers-file provider,
    OpenAI-compatible by definition (CONTRACT §2)."""
    if provider in ANTHROPIC_FAMILY:
        return "anthropic"
    if provider in OWN_FAMILY:
        return provider
    return "openai"


def same_wire_family(a: str, b: str) -> bool:
    """Whether a call sent to provider `a` can go to provider `b` with only its model rewritten."""
    return wire_family(a) == wire_family(b)


def is_bedrock_anthropic(model: str) -> bool:
    """`anthropic.claude-…` or a cross-region profile such as `us.anthropic.claude-…`."""
    return model.startswith("anthropic.") or bool(re.match(r"[a-z]{2,4}\.anthropic\.", model))


# --- the proxy's questions ------------------------------------------------------------------------------------

def rule_for(rules: Iterable[FallbackRule], provider: str, model: str | None) -> FallbackRule | None:
    """The rule for a call: one naming its model exactly, else one for any model of its provider; by name."""
    candidates = sorted((r for r in rules if r.match.provider == provider), key=lambda r: r.name)
    exact = [r for r in candidates if model is not None and r.match.model == model]
    return (exact or [r for r in candidates if r.match.model == ANY_MODEL] or [None])[0]


def targets_for(rules: Iterable[FallbackRule], provider: str, model: str | None) -> list[Target]:
    """What to try, in order: the call's own provider and model, then its rule's targets (none: itself only)."""
    first = Target(provider, model or "")
    rule = rule_for(rules, provider, model)
    return [first, *(rule.targets if rule else ())]


def retryable(status_or_fault: int | str, rule: FallbackRule | None) -> bool:
    """Whether an attempt that answered this status (or met this fault: "timeout", "unreachable") before any byte
    reached the caller moves the call to the next target."""
    if isinstance(status_or_fault, bool):
        return False
    return status_or_fault in (rule.on if rule is not None else DEFAULT_ON)


# --- the admin's rule -----------------------------------------------------------------------------------------

def parse_rule(name: str, body: Any) -> FallbackRule:
    """A rule from `PUT /admin/fallbacks/{name}`, or a 400 that names the field at fault."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidRequest("the rule's name may hold letters, digits, '-', '_' and '.' (1 to 64)")
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object: {\"match\": {\"provider\", \"model\"}, \"targets\": [...]}")
    _only(body, ("match", "targets", "on"), "body")
    match = _target(body.get("match"), "`match`", wildcard=True)
    targets = body.get("targets")
    if not isinstance(targets, list) or not 1 <= len(targets) <= TARGETS_MAX:
        raise InvalidRequest(f"`targets` must be a list of 1 to {TARGETS_MAX} {{\"provider\", \"model\"}}")
    parsed = [_target(t, f"`targets[{n}]`") for n, t in enumerate(targets)]
    for n, target in enumerate(parsed):
        where = f"`targets[{n}]`"
        if target == match or target in parsed[:n]:
            raise InvalidRequest(f"{where} repeats the match or an earlier target")
        if not same_wire_family(match.provider, target.provider):
            raise InvalidRequest(f"{where}: {target.provider} does not speak {match.provider}'s wire format (the "
                                 "OpenAI family among themselves, Anthropic with Bedrock's Anthropic models)")
        if wire_family(match.provider) == "anthropic" and match.provider != target.provider:
            bedrock = target if target.provider == "bedrock" else match
            if bedrock.model != ANY_MODEL and not is_bedrock_anthropic(bedrock.model):
                raise InvalidRequest(f"{where}: only Bedrock's Anthropic models (anthropic.… or us.anthropic.…) "
                                     "speak Anthropic's Messages format")
    return FallbackRule(name, match, tuple(parsed), _on(body.get("on", list(DEFAULT_ON))))


def _only(value: dict, allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(str(k)[:64] for k in value if k not in allowed)
    if unknown:
        raise InvalidRequest(f"{where} has unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")


def _target(value: Any, where: str, wildcard: bool = False) -> Target:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where} must be an object {{\"provider\", \"model\"}}")
    _only(value, ("provider", "model"), where)
    provider, model = value.get("provider"), value.get("model")
    if not isinstance(provider, str) or not PROVIDER.fullmatch(provider):
        raise InvalidRequest(f"{where}.provider must be a provider name: lowercase letters, digits and '-' (1 to 64)")
    if not isinstance(model, str) or not 1 <= len(model) <= MODEL_MAX or not _clean_unicode(model):
        raise InvalidRequest(f"{where}.model must be 1 to {MODEL_MAX} characters of valid Unicode, no control "
                             "characters")
    if model == ANY_MODEL and not wildcard:
        raise InvalidRequest(f"{where}.model must name a model: `*` (any model) is for `match` only")
    return Target(provider, model)


def _clean_unicode(text: str) -> bool:
    """Encodable as UTF-8 (a lone surrogate such as "\\ud800" is not) and free of control characters."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in text)


def _on(value: Any) -> tuple[int | str, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= 16:
        raise InvalidRequest("`on` must be a list of 1 to 16 statuses (429, 5xx, 408, 409) or faults "
                             "(\"timeout\", \"unreachable\")")
    found: list[int | str] = []
    for entry in value:
        ok = (entry in FAULTS) if isinstance(entry, str) else (
            isinstance(entry, int) and not isinstance(entry, bool) and entry in RETRY_STATUSES)
        if not ok:
            raise InvalidRequest(f"`on` holds {str(entry)[:32]!r}: each entry is a status 429, 408, 409 or 500-599, "
                                 "or \"timeout\" or \"unreachable\"")
        if entry not in found:
            found.append(entry)
    return tuple(found)
