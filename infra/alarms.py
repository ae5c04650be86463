"""CloudWatch alarms: every way Tollgate can lose or delay data, each to the alerts topic (docs/OPERATIONS.md: Alarms).

One alarm per signal, named `tollgate-<stage>-<logical id>`; the alarm table in docs/OPERATIONS.md says what each means
and what to do, and a test keeps the two in step.
"""
from __future__ import annotations

from typing import Any

NEAR_TIMEOUT = 0.9  # a run that takes this share of its function's timeout is about to be cut
ITERATOR_AGE_MS = 60_000  # the rollup is a minute behind the call log ...
ITERATOR_AGE_MINUTES = 5  # ... for this long
DETAIL_ITERATOR_AGE_MS = 600_000  # the detail's batches gather for up to 5 minutes: twice that is behind
SPILL_AGE_SECONDS = 300
API_5XX_RATE = 0.05
API_5XX_MIN_REQUESTS = 20  # below this many requests in 5 minutes a rate says little
NAMESPACE = "Tollgate"  # our own metrics (the functions', and the API's 429s counted from its access log)
CALL_LOG_LOST_QUERY = f"SELECT SUM(CallLogLost) FROM {NAMESPACE}"  # every dimension set the metric is emitted with
AUDIT_WRITE_FAILED_QUERY = f"SELECT SUM(AuditWriteFailed) FROM {NAMESPACE}"
# API Gateway's own throttling, counted by a metric filter on the access log (infra/template.py); a metric filter
# takes its dimensions from the log line only, so the stage is in the name
API_THROTTLED_METRIC = {"Fn::Sub": "ApiThrottled-${Stage}"}


def _alarm(name: str, description: str, **properties: Any) -> dict[str, Any]:
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmName": {"Fn::Sub": f"tollgate-${{Stage}}-{name}"}, "AlarmDescription": description,
        "AlarmActions": [{"Ref": "AlertsTopic"}], "OKActions": [{"Ref": "AlertsTopic"}],
        "TreatMissingData": "notBreaching", **properties}}


def _metric(namespace: str, metric: Any, dimensions: dict[str, Any], statistic: str, period: int) -> dict[str, Any]:
    found = {"Namespace": namespace, "MetricName": metric, "Statistic": statistic, "Period": period}
    if dimensions:
        found["Dimensions"] = [{"Name": k, "Value": v} for k, v in dimensions.items()]
    return found


def _at_least(threshold: float, periods: int = 1) -> dict[str, Any]:
    return {"ComparisonOperator": "GreaterThanOrEqualToThreshold", "Threshold": threshold,
            "EvaluationPeriods": periods, "DatapointsToAlarm": periods}


def _stat(metric: dict[str, Any], query_id: str) -> dict[str, Any]:
    return {"Id": query_id, "ReturnData": False, "MetricStat": {
        "Metric": {"Namespace": metric["Namespace"], "MetricName": metric["MetricName"],
                   "Dimensions": metric["Dimensions"]},
        "Period": metric["Period"], "Stat": metric["Statistic"]}}


def function_alarms(function: str, timeout_seconds: int) -> dict[str, dict[str, Any]]:
    fn = {"FunctionName": {"Ref": function}}
    return {
        f"{function}ErrorsAlarm": _alarm(
            f"{function}ErrorsAlarm", f"{function} failed an invocation (an exception or a timeout)",
            **_metric("AWS/Lambda", "Errors", fn, "Sum", 300), **_at_least(1)),
        f"{function}ThrottlesAlarm": _alarm(
            f"{function}ThrottlesAlarm", f"{function} was throttled: concurrency ran out",
            **_metric("AWS/Lambda", "Throttles", fn, "Sum", 300), **_at_least(1)),
        f"{function}NearTimeoutAlarm": _alarm(
            f"{function}NearTimeoutAlarm",
            f"{function} ran for {NEAR_TIMEOUT:.0%} of its {timeout_seconds} s timeout: the next one may be cut",
            **_metric("AWS/Lambda", "Duration", fn, "Maximum", 60),
            **_at_least(round(timeout_seconds * 1000 * NEAR_TIMEOUT))),
    }


def queue_alarms() -> dict[str, dict[str, Any]]:
    def queue(name: str) -> dict[str, Any]:
        return {"QueueName": {"Fn::GetAtt": [name, "QueueName"]}}

    found = {
        "SpillQueueAgeAlarm": _alarm(
            "SpillQueueAgeAlarm", "A spilled call record has waited over 5 minutes to be written to the call log",
            **_metric("AWS/SQS", "ApproximateAgeOfOldestMessage", queue("SpillQueue"), "Maximum", 300),
            **_at_least(SPILL_AGE_SECONDS)),
    }
    for dead, what in (("SpillDeadLetterQueue", "a spilled call record that could not be written"),
                       ("RollupDeadLetterQueue", "a stream batch the rollup gave up on (metadata only)")):
        found[f"{dead}Alarm"] = _alarm(
            f"{dead}Alarm", f"{dead} holds {what}",
            **_metric("AWS/SQS", "ApproximateNumberOfMessagesVisible", queue(dead), "Maximum", 300), **_at_least(1))
    return found


def data_alarms(tables: list[str], api_stage: str) -> dict[str, dict[str, Any]]:
    found = {
        "CallLogLostAlarm": _alarm(
            "CallLogLostAlarm", "A call record reached neither the call log nor the spill queue: only the log has it",
            Metrics=[{"Id": "lost", "Expression": CALL_LOG_LOST_QUERY, "Period": 60, "ReturnData": True}],
            **_at_least(1)),
        "AuditWriteFailedAlarm": _alarm(
            "AuditWriteFailedAlarm", "An admin action was answered but its audit entry could not be stored: only "
                                     "the API function's log has it",
            Metrics=[{"Id": "unaudited", "Expression": AUDIT_WRITE_FAILED_QUERY, "Period": 300, "ReturnData": True}],
            **_at_least(1)),
        "RollupIteratorAgeAlarm": _alarm(
            "RollupIteratorAgeAlarm", "The rollup has been over a minute behind the call log for 5 minutes",
            **_metric("AWS/Lambda", "IteratorAge", {"FunctionName": {"Ref": "RollupCalls"}}, "Maximum", 60),
            **_at_least(ITERATOR_AGE_MS, ITERATOR_AGE_MINUTES)),
        "RollupDetailsIteratorAgeAlarm": _alarm(
            "RollupDetailsIteratorAgeAlarm", "The rollup's detail has been over ten minutes behind the call log for "
                                             "5 minutes",
            **_metric("AWS/Lambda", "IteratorAge", {"FunctionName": {"Ref": "RollupDetails"}}, "Maximum", 60),
            **_at_least(DETAIL_ITERATOR_AGE_MS, ITERATOR_AGE_MINUTES)),
    }
    api = {"ApiName": {"Fn::Sub": "tollgate-${Stage}"}, "Stage": api_stage}
    found["Api5XXAlarm"] = _alarm(
        "Api5XXAlarm", f"Over {API_5XX_RATE:.0%} of API requests answered 5xx in 5 minutes "
                       "(gateway errors and upstream 5xx passed through)",
        Metrics=[_stat(_metric("AWS/ApiGateway", "5XXError", api, "Sum", 300), "errors"),
                 _stat(_metric("AWS/ApiGateway", "Count", api, "Sum", 300), "requests"),
                 {"Id": "rate", "ReturnData": True, "Label": "5xx share",
                  "Expression": f"IF(requests >= {API_5XX_MIN_REQUESTS}, errors / requests, 0)"}],
        **_at_least(API_5XX_RATE))
    found["ApiThrottledAlarm"] = _alarm(
        "ApiThrottledAlarm", "API Gateway refused requests with 429: a method's throttling (rate, burst) or the "
                             "account's was reached",
        **_metric(NAMESPACE, API_THROTTLED_METRIC, {}, "Sum", 300), **_at_least(1))
    for table in tables:
        name = {"TableName": {"Ref": table}}
        found[f"{table}ThrottlesAlarm"] = _alarm(
            f"{table}ThrottlesAlarm", f"DynamoDB throttled requests to {table}",
            Metrics=[_stat(_metric("AWS/DynamoDB", "ReadThrottleEvents", name, "Sum", 300), "reads"),
                     _stat(_metric("AWS/DynamoDB", "WriteThrottleEvents", name, "Sum", 300), "writes"),
                     {"Id": "throttled", "ReturnData": True, "Label": "throttled requests",
                      "Expression": "FILL(reads, 0) + FILL(writes, 0)"}],
            **_at_least(1))
    return found


def alarms(functions: dict[str, int], tables: list[str], api_stage: str) -> dict[str, dict[str, Any]]:
    """Every alarm: `functions` maps each function's logical id to its timeout in seconds."""
    found: dict[str, dict[str, Any]] = {}
    for function, timeout in functions.items():
        found |= function_alarms(function, timeout)
    return found | queue_alarms() | data_alarms(tables, api_stage)
