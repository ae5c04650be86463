"""Structured logs (powertools Logger, correlation id = call id) and EMF metrics, one instance each."""
from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="tollgate")
metrics = Metrics(namespace="Tollgate", service="tollgate")

__all__ = ["logger", "metrics", "MetricUnit", "flush_metrics"]


def flush_metrics() -> None:
    """Emit what a request recorded (one EMF blob); nothing when it recorded nothing."""
    metrics.flush_metrics(raise_on_empty_metrics=False)
    metrics.clear_metrics()  # flushing while disabled (local, tests) keeps dimensions otherwise
