"""The two dead-letter queues: call records the spill replay could never write, and stream batches the rollup
gave up on. Anything in either is spend the reports and budgets miss, so /health and an alert say so."""
from __future__ import annotations

from chalicelib import aws
from chalicelib.settings import get_settings

COUNTED = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed")


def queues() -> dict[str, str]:
    """The configured dead-letter queues by component name (`spill_dead_letters`, `rollup_dead_letters`)."""
    settings = get_settings()
    named = {"spill_dead_letters": settings.spill_dead_letter_queue_url,
             "rollup_dead_letters": settings.rollup_dead_letter_queue_url}
    return {name: url for name, url in named.items() if url}


def held(queue_url: str) -> int:
    """Messages in a queue, including those an operator is reading (in flight): one GetQueueAttributes."""
    attributes = aws.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(COUNTED))["Attributes"]
    return sum(int(attributes.get(name, 0)) for name in COUNTED)


def held_by_queue() -> dict[str, int]:
    """Messages held by each configured dead-letter queue (the evaluator's measurement; raises if unreadable)."""
    return {name: held(url) for name, url in queues().items()}
