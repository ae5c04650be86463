"""The alerting's listeners on the rollup: as the stream handler folds a batch, note each call and session that
passed the rules' thresholds (the ledger keeps the notes: chalicelib/ledger/signals.py), so none is missed however
many calls there are or however late a long call is written. The evaluator reads them (signal_reads.py)."""
from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from chalicelib.alerting.rules import current_rules
from chalicelib.clock import precise
from chalicelib.ledger import note_costly_session, note_expensive_call

if TYPE_CHECKING:
    from chalicelib.rollup import Batch


def note_expensive_calls(batch: Batch) -> int:
    """The rollup's listener: note each call the batch logged that cost more than the rule's threshold.
    Idempotent: a redelivered record overwrites its own note, or finds it taken up."""
    threshold, noted = Decimal(current_rules().expensive_call_usd), 0
    for call in batch.logged:
        cost = call.cost_usd
        if cost is not None and cost.is_finite() and cost > threshold and call.call_id:
            noted += note_expensive_call(call.call_id, precise(call.ts), call.account, call.key_id, call.provider,
                                         call.model, cost, user=call.user, session=call.session)
    return noted


def note_costly_sessions(batch: Batch) -> int:
    """The rollup's listener: sessions whose running total (as the batch just wrote it) passed the rule's
    threshold, noted once each, so a session alerts once, however many calls it goes on to make."""
    threshold = Decimal(current_rules().session_cost_usd)
    return sum(note_costly_session(total.account, total.session, total.user, total.cost_usd)
               for total in batch.sessions if total.cost_usd > threshold)
