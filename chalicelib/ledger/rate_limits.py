"""Rate limits as stored: an account's or a team's requests and tokens per minute (`PUT /admin/limits/{scope}/
{scope_id}`), cached for a few seconds per container like the budgets, and the check every rate limit's body
passes (a key's are on its ApiKey item: key_limits.py). The proxy counts them (chalicelib/gateway/limits.py)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib import aws, caller_names
from chalicelib.clock import iso
from chalicelib.errors import InvalidRequest, NotFound
from chalicelib.ledger.budgets import TableCache
from chalicelib.ledger.models import ScopeLimit

SCOPES = ("account", "team")  # a team is named as its budgets name it: by its name alone, across accounts
LIMITS_PK = "config#limits"  # the aggregates table's partition of rate limits (IAM narrows grants to it)
LIMIT_MAX = 10 ** 12
FIELDS = ("rpm", "tpm")


@dataclass(frozen=True)
class RateLimit:
    """Requests (`rpm`) and tokens (`tpm`, input plus worst-case output) per UTC minute on one scope."""

    scope: str  # key | account | team
    scope_id: str
    rpm: int | None
    tpm: int | None

    def view(self) -> dict[str, Any]:
        return {"scope": self.scope, "scope_id": self.scope_id, "rpm": self.rpm, "tpm": self.tpm}


def parse_limits(body: Any) -> dict[str, int | None]:
    """`{"rpm"?, "tpm"?}` as given: a positive integer sets a limit, null removes it, a field left out is kept; or
    a 400 that names the field at fault."""
    if not isinstance(body, dict) or not body or set(body) - set(FIELDS):
        raise InvalidRequest("body must be a JSON object with `rpm` and/or `tpm` (integers, or null to remove)")
    for name, value in body.items():
        if value is not None and not (type(value) is int and 0 < value < LIMIT_MAX):
            raise InvalidRequest(f"`{name}` must be a positive integer below {LIMIT_MAX:,}, or null to remove it")
    return dict(body)


def set_limits(scope: str, scope_id: str, body: Any, now: datetime) -> dict[str, Any]:
    """Set or clear an account's or a team's limits; one left with neither is deleted. Effective within the cache's
    seconds."""
    _check_scope(scope, scope_id)
    limits = parse_limits(body)
    item = ScopeLimit(LIMITS_PK, f"{scope}#{scope_id}")
    item.update(actions=[ScopeLimit.scope.set(scope), ScopeLimit.scope_id.set(scope_id), ScopeLimit.set_at.set(iso(now)),
                         *(getattr(ScopeLimit, name).remove() if value is None else getattr(ScopeLimit, name).set(value)
                           for name, value in limits.items())])
    limit = limit_of(item)
    if limit.rpm is None and limit.tpm is None:  # nothing left to limit (unless another admin set one meanwhile)
        aws.conditional(lambda: item.delete(condition=ScopeLimit.rpm.does_not_exist() & ScopeLimit.tpm.does_not_exist()))
    limit_cache.clear()
    return limit.view()


def delete(scope: str, scope_id: str) -> dict[str, Any]:
    _check_scope(scope, scope_id)
    if not aws.conditional(lambda: ScopeLimit(LIMITS_PK, f"{scope}#{scope_id}").delete(
            condition=ScopeLimit.pk.exists())):
        raise NotFound(f"no rate limits on {scope} {scope_id!r}")
    limit_cache.clear()
    return {"scope": scope, "scope_id": scope_id, "deleted": True}


def all_limits() -> list[RateLimit]:
    """Every account's and team's limits, by scope and name: one Query."""
    return [limit_of(item) for item in ScopeLimit.query(LIMITS_PK)]


def applying(account: str | None, team: str | None) -> list[RateLimit]:
    """The limits of a caller's account and team, from the cache: no read while it is warm."""
    return [limit for limit in limit_cache.items()
            if (limit.scope, limit.scope_id) in (("account", account), ("team", team))]


def limit_of(item: ScopeLimit) -> RateLimit:
    return RateLimit(item.scope, item.scope_id, as_count(item.rpm), as_count(item.tpm))


def as_count(value: float | None) -> int | None:
    return None if value is None else int(value)


def _check_scope(scope: str, scope_id: str) -> None:
    if scope not in SCOPES:
        raise InvalidRequest(f"`scope` must be one of {', '.join(SCOPES)} (a key's limits: PUT "
                             "/admin/keys/{key_id}/limits)")
    caller_names.check(scope_id, "`scope_id`")


limit_cache = TableCache(all_limits)
