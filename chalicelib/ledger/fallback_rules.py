"""Fallback rules as stored: the rule a FallbackRuleItem holds, and every rule cached for a few seconds per container.

Here, at the bottom, beside the budgets, because the proxy reads them on a failed attempt and must not read a
table per call; the matching (`targets_for`, `retryable`) and the admin's validation are the gateway's
(chalicelib/gateway/fallbacks.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib.clock import iso
from chalicelib.errors import NotFound
from chalicelib.ledger.budgets import TableCache
from chalicelib.ledger.models import FallbackRuleItem, FallbackTarget

RULES_PK = "config#fallbacks"  # the aggregates table's partition of fallback rules (IAM narrows grants to it)
DEFAULT_ON: tuple[int | str, ...] = (429, 500, 502, 503, 504, "timeout", "unreachable")


@dataclass(frozen=True)
class Target:
    provider: str
    model: str


@dataclass(frozen=True)
class FallbackRule:
    name: str
    match: Target  # `model` "*": any model of the provider
    targets: tuple[Target, ...]
    on: tuple[int | str, ...] = DEFAULT_ON

    def view(self) -> dict[str, Any]:
        return {"name": self.name, "match": {"provider": self.match.provider, "model": self.match.model},
                "targets": [{"provider": t.provider, "model": t.model} for t in self.targets], "on": list(self.on)}


def rule_of(item: FallbackRuleItem) -> FallbackRule:
    return FallbackRule(item.day, Target(item.match_provider, item.match_model),
                        tuple(Target(t.provider, t.model) for t in item.targets),
                        tuple(int(o) if o.isdigit() else o for o in item.on))


def all_rules() -> list[FallbackRule]:
    """Every rule, by name: one Query."""
    return [rule_of(item) for item in FallbackRuleItem.query(RULES_PK)]


def one(name: str) -> FallbackRule:
    try:
        return rule_of(FallbackRuleItem.get(RULES_PK, name))
    except DoesNotExist:
        raise NotFound(f"no fallback rule {name!r}") from None


def save(rule: FallbackRule, now: datetime) -> dict[str, Any]:
    """Create or replace a rule (already checked: gateway/fallbacks.parse_rule)."""
    FallbackRuleItem(RULES_PK, rule.name, match_provider=rule.match.provider, match_model=rule.match.model,
                     targets=[FallbackTarget(provider=t.provider, model=t.model) for t in rule.targets],
                     on=[str(o) for o in rule.on], created_at=iso(now)).save()
    fallback_cache.clear()
    return rule.view()


def delete(name: str) -> dict[str, Any]:
    try:
        FallbackRuleItem.get(RULES_PK, name).delete()
    except DoesNotExist:
        raise NotFound(f"no fallback rule {name!r}") from None
    fallback_cache.clear()
    return {"name": name, "deleted": True}


class FallbackCache(TableCache):
    """Every rule, read only when asked: a proxy that reads it only after an attempt failed makes no request on a
    call that did not."""

    def __init__(self) -> None:
        super().__init__(all_rules)

    def rules(self) -> list[FallbackRule]:
        return self.items()


fallback_cache = FallbackCache()
