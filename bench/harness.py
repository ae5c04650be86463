"""What the in-process benchmarks share: a fake AWS environment, and a meter of AWS requests that also
separates moto's own time (standing in for DynamoDB) from ours."""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator


def fake_aws_env() -> None:
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_REGION": "us-east-1", "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
                       "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "ERROR"})
    for name in ("TOLLGATE_AWS_ENDPOINT", "AWS_PROFILE"):
        os.environ.pop(name, None)
    from local.moto_tuning import tune_moto

    tune_moto()


@dataclass
class AwsMeter:
    """AWS operations sent, the bytes of their answers, and the wall and CPU seconds moto spent
    answering them (in this thread)."""

    operations: list[str] = field(default_factory=list)
    answer_bytes: int = 0
    moto_wall: float = 0.0
    moto_cpu: float = 0.0

    def reset(self) -> None:
        self.operations.clear()
        self.answer_bytes = 0
        self.moto_wall = self.moto_cpu = 0.0


@contextmanager
def metering() -> Iterator[AwsMeter]:
    import botocore.endpoint
    from moto.core.botocore_stubber import BotocoreStubber

    meter = AwsMeter()
    make_request, answer = botocore.endpoint.Endpoint.make_request, BotocoreStubber.__call__

    def counting(self, operation_model, request_dict):
        meter.operations.append(operation_model.name)
        return make_request(self, operation_model, request_dict)

    def timed(self, *args, **kwargs):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            response = answer(self, *args, **kwargs)
            meter.answer_bytes += len(response.content) if response is not None else 0
            return response
        finally:
            meter.moto_wall += time.perf_counter() - wall
            meter.moto_cpu += time.thread_time() - cpu

    botocore.endpoint.Endpoint.make_request, BotocoreStubber.__call__ = counting, timed
    try:
        yield meter
    finally:
        botocore.endpoint.Endpoint.make_request, BotocoreStubber.__call__ = make_request, answer


