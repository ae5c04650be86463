"""Least privilege by action: each function's IAM grants, per resource, as its code uses them.

CODE is what each function's own code asks of AWS. It is not written from reading the code alone:
tests/integration/test_least_privilege.py runs every entry point in moto (each route, event handler and
the proxy, down the branches that reach AWS), records each request as the IAM action and resource it
needs, and fails unless the record equals CODE, both ways. EVENT_SOURCES is what Lambda itself does with
the function's role (read the stream, poll the queue, send to the on-failure destination), which no code
of ours requests. `policy()` renders both, with the function's own log group and, when the stage traces,
X-Ray, as the one inline policy of the function's role.

Resources are named by their logical id in the template: `CallsTable`, `CallsTable/index/by_day`,
`CallsTable/stream`, `AggregatesTable?pk=signal#auth_failures` (only the items of one partition key:
an IAM `dynamodb:LeadingKeys` condition; `?pk=hard#*`, of every partition key with that prefix), `ArchiveBucket/calls/*` (objects under a prefix),
`ssm:<parameter name>`, `function:<name>` (a function of the stage, by name), `kms:aws/ssm` (decrypting
SecureStrings, only through SSM), and `AlertsKey` (the alerts topic's own KMS key: publishing to an encrypted topic
needs a data key from it, with the publisher's permissions).
"""
from __future__ import annotations

import re
from typing import Any

SLACK_PARAMETER = "ssm:${SlackWebhookParameterName}"  # may be empty: granted only when the stage names one
EXPORT_FUNCTION = "function:export_calls"  # a function by its name after `tollgate-<stage>-` (it invokes itself)
MERGE_FUNCTION = "function:merge_group"  # merge_details starts one per lane group with a chunk due
HAS_SLACK = "HasSlackWebhook"

_ALERTING = {  # queueing and delivering messages: the evaluator, the digests, and the admin jobs that run them
    "DeliveriesTable": ("dynamodb:PutItem", "dynamodb:UpdateItem"),
    "DeliveriesTable/index/by_status": ("dynamodb:Query",),
    "AlertsTopic": ("sns:Publish",),
    "AlertsKey": ("kms:Decrypt", "kms:GenerateDataKey"),  # the topic is encrypted with it
    SLACK_PARAMETER: ("ssm:GetParameter",),
    "kms:aws/ssm": ("kms:Decrypt",),
}

CODE: dict[str, dict[str, tuple[str, ...]]] = {
    # The public proxy: authenticate (keys), enforce hard limits (budgets, read whole and cached), log the
    # call once (a conditional put) or spill it, read the provider keys. Nothing on the audit trail.
    "ProxyFunction": {
        "KeysTable": ("dynamodb:GetItem",),
        "BudgetsTable": ("dynamodb:Scan",),
        "CallsTable": ("dynamodb:PutItem",),
        "SpillQueue": ("sqs:SendMessage",),
        "AggregatesTable?pk=signal#auth_failures": ("dynamodb:UpdateItem",),  # refused keys, counted for alerts
        # hard budgets: a hold on each ledger, deleted when the call is logged; a key's requests per minute
        "AggregatesTable?pk=hard#*": ("dynamodb:UpdateItem",),
        "AggregatesTable?pk=hold#*": ("dynamodb:DeleteItem", "dynamodb:PutItem"),
        "AggregatesTable?pk=rate#*": ("dynamodb:UpdateItem",),
        "AggregatesTable?pk=config#limits": ("dynamodb:Query",),  # accounts' and teams' rate limits, cached
        "AggregatesTable?pk=config#fallbacks": ("dynamodb:Query",),  # the fallback rules, read after a failed try
        "ssm:/tollgate/${Stage}/openai-api-key": ("ssm:GetParameter",),
        "ssm:/tollgate/${Stage}/anthropic-api-key": ("ssm:GetParameter",),
        "ssm:/tollgate/${Stage}/openrouter-api-key": ("ssm:GetParameter",),
        "ssm:/tollgate/${Stage}/groq-api-key": ("ssm:GetParameter",),
        "ssm:/tollgate/${Stage}/gemini-api-key": ("ssm:GetParameter",),
        "ssm:/tollgate/${Stage}/azure-api-key": ("ssm:GetParameter",),
        "kms:aws/ssm": ("kms:Decrypt",),
    },
    # /admin, /api, /health and /openapi.json: key and budget admin, credits, the audit trail (append and
    # read only), the jobs (evaluate, digest, recalculate, reconcile, reprice), per-user export and erasure
    # (call log and archive), alerts by hand, test messages, the reports. No provider key, no spill, and
    # no new call-log record.
    "APIHandler": {
        "KeysTable": ("dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan",
                      "dynamodb:UpdateItem"),
        # erasure deletes, the reprice job updates a call's price (conditionally), /health describes
        "CallsTable": ("dynamodb:DeleteItem", "dynamodb:DescribeTable", "dynamodb:Query", "dynamodb:UpdateItem"),
        "CallsTable/index/by_day": ("dynamodb:Query",),
        "CallsTable/index/by_user": ("dynamodb:Query",),
        "AggregatesTable": ("dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Query"),
        "AggregatesTable/index/by_kind": ("dynamodb:Query",),
        "BudgetsTable": ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan",
                         "dynamodb:UpdateItem"),
        "AlertsTable": ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"),
        "AlertsTable/index/by_state": ("dynamodb:Query",),
        "CreditsTable": ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan",
                         "dynamodb:UpdateItem"),
        "AuditTable": ("dynamodb:PutItem", "dynamodb:Query"),
        "SpillQueue": ("sqs:GetQueueAttributes",),  # /health: the spill backlog
        "SpillDeadLetterQueue": ("sqs:GetQueueAttributes",),  # /health: records in the dead-letter queues
        "RollupDeadLetterQueue": ("sqs:GetQueueAttributes",),
        "ArchiveBucket": ("s3:ListBucket", "s3:ListBucketVersions"),  # erasure: the user's archived calls
        "ArchiveBucket/calls/*": ("s3:DeleteObjectVersion",),
        # fallback rules (their own partition): put, read one, deleted
        "AggregatesTable?pk=config#fallbacks": ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem"),
        # accounts' and teams' rate limits (their own partition): set and deleted (listed: the Query above)
        "AggregatesTable?pk=config#limits": ("dynamodb:DeleteItem", "dynamodb:UpdateItem"),
        # the `evaluate` job reads OpenRouter's remaining credit with its key, as the scheduled evaluation does
        "ssm:/tollgate/${Stage}/openrouter-api-key": ("ssm:GetParameter",),
        # large exports: their records (one partition), the job started, a download link signed for the file
        "AggregatesTable?pk=export#jobs": ("dynamodb:GetItem", "dynamodb:PutItem"),
        EXPORT_FUNCTION: ("lambda:InvokeFunction",),
        "ArchiveBucket/exports/*": ("s3:GetObject",),
        # a hard budget's ledger: its spend and holds shown, its headroom moved when its limit changes, and
        # (the evaluate job) holds whose calls never logged released
        "AggregatesTable?pk=hard#*": ("dynamodb:GetItem", "dynamodb:UpdateItem"),
        "AggregatesTable?pk=hold#*": ("dynamodb:UpdateItem",),
        "ssm:/tollgate/${Stage}/admin-key": ("ssm:GetParameter",),
        **_ALERTING,
    },
    # The stream, summary tier: fold calls into all traffic's aggregates (exactly once: the lanes are read back on a
    # redelivery), quarantine what cannot be folded, note expensive calls, archive what TTL expired.
    "RollupCalls": {
        "AggregatesTable": ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"),
        # an expensive call is noted unless the evaluator has taken it up already (a condition in a transaction)
        "AggregatesTable?pk=signal#expensive_calls_taken": ("dynamodb:ConditionCheckItem",),
        "ArchiveBucket/calls/*": ("s3:PutObject",),
    },
    # The stream, detail tier, where the stage merges it (chalicelib/rollup/merge.py): each batch's calls staged in
    # the archive bucket; what cannot be folded quarantined (the aggregates table's quarantine partition).
    "RollupDetails": {
        "AggregatesTable?pk=quarantine#calls": ("dynamodb:PutItem",),
        "ArchiveBucket/rollup/*": ("s3:PutObject",),
    },
    # Every minute: the lane groups' marks read, what is staged listed once, a merge started per group with a chunk
    # due; a group with nothing staged has its mark moved on.
    "MergeDetails": {
        "AggregatesTable?pk=config#rollup_merge": ("dynamodb:Query", "dynamodb:UpdateItem"),
        "ArchiveBucket": ("s3:ListBucket",),
        MERGE_FUNCTION: ("lambda:InvokeFunction",),
    },
    # One lane group's staged calls folded into every other scope's aggregates and sessions (exactly once: the lanes
    # are read back when a chunk is merged again), its mark moved; re-measure the budgets the chunk touched, note
    # costly sessions.
    "MergeGroup": {
        "AggregatesTable": ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"),
        "AggregatesTable?pk=signal#costly_sessions_taken": ("dynamodb:ConditionCheckItem",),  # a session, once
        "BudgetsTable": ("dynamodb:Scan", "dynamodb:UpdateItem"),
        "ArchiveBucket": ("s3:ListBucket",),
        "ArchiveBucket/rollup/*": ("s3:GetObject",),
    },
    # A large export: the range's calls read day by day into a multipart upload, progress on its record (one
    # partition of the aggregates table), and before the timeout the rest handed to a fresh invocation.
    "ExportCalls": {
        "AggregatesTable?pk=export#jobs": ("dynamodb:UpdateItem",),
        "CallsTable": ("dynamodb:Query",),  # one account's calls
        "CallsTable/index/by_day": ("dynamodb:Query",),  # every account's
        "ArchiveBucket/exports/*": ("s3:PutObject",),  # CreateMultipartUpload, UploadPart, CompleteMultipartUpload
        EXPORT_FUNCTION: ("lambda:InvokeFunction",),
    },
    # Spilled records back into the call log; what can never be written to the spill queue's dead-letter queue.
    "ReplaySpill": {
        "CallsTable": ("dynamodb:PutItem",),
        # a record that spilled with its hard budgets' holds settles them as it is written (one transaction)
        "AggregatesTable?pk=hard#*": ("dynamodb:UpdateItem",),
        "AggregatesTable?pk=hold#*": ("dynamodb:DeleteItem",),
        "SpillQueue": ("sqs:GetQueueAttributes",),  # its redrive policy names the dead-letter queue
        "SpillDeadLetterQueue": ("sqs:GetQueueUrl", "sqs:SendMessage"),
    },
    # Budgets and alert rules over the aggregates and the recent calls; alerts opened and resolved; delivery.
    "EvaluateEveryMinute": {
        "AggregatesTable": ("dynamodb:Query",),
        "SpillDeadLetterQueue": ("sqs:GetQueueAttributes",),  # the `dead_letters` alert
        "RollupDeadLetterQueue": ("sqs:GetQueueAttributes",),
        # the notes it consumes (expensive calls the rollup saw, refused keys) and its marks of what it took
        # up: it may delete or write those partitions, never an aggregate
        "AggregatesTable?pk=signal#expensive_calls": ("dynamodb:DeleteItem",),
        "AggregatesTable?pk=signal#expensive_calls_taken": ("dynamodb:DeleteItem", "dynamodb:PutItem"),
        "AggregatesTable?pk=signal#auth_failures": ("dynamodb:DeleteItem",),
        "AggregatesTable?pk=signal#costly_sessions": ("dynamodb:DeleteItem",),
        "AggregatesTable?pk=signal#costly_sessions_taken": ("dynamodb:PutItem",),
        # OpenRouter's remaining credit, read from its API with its key and cached in its own partition
        "AggregatesTable?pk=config#provider_balances": ("dynamodb:PutItem",),
        "ssm:/tollgate/${Stage}/openrouter-api-key": ("ssm:GetParameter",),
        # holds whose calls never logged: each released once (marked expired, its amount back on the ledger)
        "AggregatesTable?pk=hold#*": ("dynamodb:UpdateItem",),
        # and reconciled; a window budget's minutes that have left its window given back (each item deleted once)
        "AggregatesTable?pk=hard#*": ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:UpdateItem"),
        "AggregatesTable/index/by_kind": ("dynamodb:Query",),
        "BudgetsTable": ("dynamodb:Scan", "dynamodb:UpdateItem"),
        # streaks of errors and providers' 429s/401s, read only after a failure lately
        "CallsTable/index/by_day": ("dynamodb:Query",),
        "CreditsTable": ("dynamodb:Scan",),
        "KeysTable": ("dynamodb:BatchGetItem",),  # the expensive-call alert names the key as people know it
        "AlertsTable": ("dynamodb:PutItem", "dynamodb:UpdateItem"),
        "AlertsTable/index/by_state": ("dynamodb:Query",),
        **_ALERTING,
    },
    "DailyDigest": {
        "AggregatesTable": ("dynamodb:Query",),
        "AggregatesTable/index/by_kind": ("dynamodb:Query",),  # top models and accounts: their own day items
        "BudgetsTable": ("dynamodb:Scan",),
        "KeysTable": ("dynamodb:Scan",),  # when the first key was made: no digest of a day before the install
        **_ALERTING,
    },
    "WeeklyReport": {
        "AggregatesTable": ("dynamodb:Query",),
        "AggregatesTable/index/by_kind": ("dynamodb:Query",),  # error rate by operation
        **_ALERTING,
    },
}

_CALL_LOG_STREAM = {
    "CallsTable/stream": ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                          "dynamodb:ListStreams"),
    "RollupDeadLetterQueue": ("sqs:SendMessage",),  # the mapping's on-failure destination
}
EVENT_SOURCES: dict[str, dict[str, tuple[str, ...]]] = {
    "RollupCalls": _CALL_LOG_STREAM,
    "RollupDetails": _CALL_LOG_STREAM,  # the stream's second reader (two per shard at most)
    "ReplaySpill": {
        "SpillQueue": ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"),
    },
    "ExportCalls": {  # an asynchronous invocation that failed for good goes to the alerts topic (its on-failure
        "AlertsTopic": ("sns:Publish",),  # destination, infra/template.py), with the topic's key
        "AlertsKey": ("kms:Decrypt", "kms:GenerateDataKey"),
    },
}

# What a function asks of AWS through its own HTTP client, signed with its role: the proxy's Bedrock calls (SigV4,
# chalicelib/gateway/providers/bedrock.py). No botocore request carries them, so tests/integration/
# test_least_privilege.py cannot record them; tests/integration/test_bedrock.py shows the signature. Converse
# needs InvokeModel, ConverseStream InvokeModelWithResponseStream. Foundation models in any region: a cross-region
# inference profile (`us.…`, `global.…`) sends the call to the model in another region of its geography.
SIGNED_UPSTREAM: dict[str, dict[str, tuple[str, ...]]] = {
    "ProxyFunction": {
        resource: ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")
        for resource in ("bedrock:foundation-model/*", "bedrock:inference-profile/*",
                         "bedrock:application-inference-profile/*")
    },
}


def arn(resource: str) -> Any:
    """The template expression for a resource as CODE names it."""
    if resource.startswith("bedrock:"):
        kind = resource[len("bedrock:"):]
        account = "" if kind.startswith("foundation-model/") else "${AWS::AccountId}"  # AWS owns the models
        return {"Fn::Sub": f"arn:${{AWS::Partition}}:bedrock:*:{account}:{kind}"}
    if resource == "kms:aws/ssm":
        return "*"  # the account's aws/ssm key cannot be named in a template; the statement's condition narrows it
    resource = resource.partition("?")[0]
    if resource.startswith("function:"):  # by name: a function's role cannot wait for the function's own ARN
        name = resource[len("function:"):]
        return {"Fn::Sub": f"arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:tollgate-${{Stage}}-{name}"}
    if resource.startswith("ssm:"):
        name = resource[len("ssm:"):]
        return {"Fn::Sub": f"arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter{name}"}
    logical, _, rest = resource.partition("/")
    if rest == "stream":
        return {"Fn::GetAtt": [logical, "StreamArn"]}
    if logical.endswith("Topic"):
        return {"Ref": logical}
    if rest:
        return {"Fn::Sub": f"${{{logical}.Arn}}/{rest}"}
    return {"Fn::GetAtt": [logical, "Arn"]}


def grants(function: str) -> dict[str, tuple[str, ...]]:
    """Everything the function's role may do, by resource: its code's needs (through botocore and signed by
    itself) and its event sources'."""
    merged: dict[str, set[str]] = {}
    for source in (CODE[function], EVENT_SOURCES.get(function, {}), SIGNED_UPSTREAM.get(function, {})):
        for resource, actions in source.items():
            merged.setdefault(resource, set()).update(actions)
    return {resource: tuple(sorted(actions)) for resource, actions in sorted(merged.items())}


def _sid(resource: str) -> str:
    """A statement id that names its resource (IAM wants them alphanumeric): `CallsTableIndexByDay`."""
    if resource == "kms:aws/ssm":
        return "DecryptThroughSsmOnly"
    if resource == SLACK_PARAMETER:
        return "SsmSlackWebhookUrl"
    if resource.startswith("bedrock:"):  # BedrockFoundationModels, BedrockInferenceProfiles, …
        resource = resource.removesuffix("/*") + "s"
    if resource.startswith("ssm:"):
        resource = "Ssm/" + resource.rsplit("/", 1)[1]
    words = re.split(r"[^A-Za-z0-9]+", resource.replace("*", "objects"))
    return "".join(word[:1].upper() + word[1:] for word in words if word)


def statements(function: str) -> list[dict[str, Any]]:
    """The function's data statements, one per resource, named after it."""
    ssm = [r for r in grants(function) if r.startswith("ssm:")]
    found: list[dict[str, Any]] = []
    for resource, actions in grants(function).items():
        statement: dict[str, Any] = {"Sid": _sid(resource), "Effect": "Allow", "Action": list(actions),
                                     "Resource": arn(resource)}
        if resource == "kms:aws/ssm":
            statement["Condition"] = {"StringEquals": {"kms:ViaService": {"Fn::Sub": "ssm.${AWS::Region}.amazonaws.com"}}}
        if "?pk=" in resource:
            leading = resource.split("?pk=", 1)[1]  # `hard#*`: every partition key with that prefix
            operator = "ForAllValues:StringLike" if leading.endswith("*") else "ForAllValues:StringEquals"
            statement["Condition"] = {operator: {"dynamodb:LeadingKeys": [leading]}}
        conditional = resource == SLACK_PARAMETER or (resource == "kms:aws/ssm" and ssm == [SLACK_PARAMETER])
        found.append({"Fn::If": [HAS_SLACK, statement, {"Ref": "AWS::NoValue"}]} if conditional else statement)
    return found


def policy(function: str, log_group: str, tracing: bool) -> dict[str, Any]:
    """The role's inline policy: its own log group, its data, and X-Ray when the stage traces."""
    own_logs = {"Sid": "OwnLogGroupOnly", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
                                        f"{log_group}:*"}}
    found = [own_logs, *statements(function)]
    if tracing:  # X-Ray has no resource-level permissions: "*" is the only resource it accepts
        found.append({"Sid": "XRayTraces", "Effect": "Allow",
                      "Action": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"], "Resource": "*"})
    return {"PolicyName": f"{function}-least-privilege",
            "PolicyDocument": {"Version": "2012-10-17", "Statement": found}}
