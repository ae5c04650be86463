"""What the evaluator needs that no aggregate holds, read back as the alerting's types: refused authentications,
expensive calls and costly sessions. The ledger keeps them and reads them (chalicelib/ledger/signals.py), noting
calls and sessions when the rollup's listeners say so (listeners.py); here they become the facts the rules decide on.

- 401s: counted by each proxy container per minute; read over the rule's window, older counts deleted.
- Expensive calls and costly sessions: noted from the facts the rollup publishes as it reads the call-log
  stream (chalicelib/rollup/handler.py), so none is missed however many calls there are or however late a
  long call is written. The evaluator takes the notes up (`forget`), leaving a marker so a redelivered record
  is not noted a second time.
"""
from __future__ import annotations

from datetime import datetime

from chalicelib.alerting.rules import AuthFailures, CostlySession, ExpensiveCall
from chalicelib.ledger import keys, signals
from chalicelib.ledger import SignalNote


def auth_failures(now: datetime, minutes: int) -> AuthFailures:
    """401s counted in the last `minutes` (by whole minutes); older counts are deleted as they age out."""
    total, by_prefix = signals.auth_failures(now, minutes)
    return AuthFailures(minutes, total, by_prefix)


def costly_sessions() -> tuple[list[CostlySession], list[SignalNote]]:
    """The noted sessions not yet taken up, and the notes to forget them by."""
    notes = signals.costly_sessions()
    return [CostlySession(n.account or "", n.session or "", n.user, n.cost_usd) for n in notes], notes


def expensive_calls() -> tuple[list[ExpensiveCall], list[SignalNote]]:
    """The noted calls not yet taken up (at most NOTES_PER_RUN, oldest first), and the notes to forget them by."""
    notes = signals.expensive_calls()
    names = keys.names_of({n.key_id for n in notes if n.key_id})
    return [ExpensiveCall(n.call_id or "", n.ts or "", n.account or "", n.key_id or "", n.provider or "", n.model,
                          n.cost_usd, names.get(n.key_id or ""), n.user, n.session) for n in notes], notes


def forget(notes: list[SignalNote], now: datetime) -> None:
    """Notes the evaluator has applied: marked as taken up, then deleted (the ledger's `forget`)."""
    signals.forget(notes, now)
