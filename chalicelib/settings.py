"""Settings: every knob Tollgate reads, built once from env (and SSM for secrets in AWS)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache

from chalicelib import provider_registry
from chalicelib.errors import ConfigurationError

PROVIDERS = provider_registry.BUILT_IN_NAMES


@dataclass(frozen=True)
class Settings:
    """What the gateway needs to run; secrets are named here, resolved lazily by `secrets`."""

    stage: str = "dev"
    region: str = "us-east-1"
    aws_endpoint: str | None = None  # moto server URL in the local stack; None in AWS
    calls_table: str = "tollgate-dev-calls"
    keys_table: str = "tollgate-dev-keys"
    aggregates_table: str = "tollgate-dev-aggregates"
    budgets_table: str = "tollgate-dev-budgets"
    alerts_table: str = "tollgate-dev-alerts"
    deliveries_table: str = "tollgate-dev-deliveries"
    credits_table: str = "tollgate-dev-credits"
    audit_table: str = "tollgate-dev-audit"
    sns_topic_arn: str | None = None
    slack_webhook_url: str | None = None
    slack_webhook_parameter: str | None = None
    alert_webhook_url: str | None = None
    dashboard_url: str | None = None
    dashboard_origin: str | None = None  # CORS: the only origin allowed to call /api (the S3 site)
    budget_cache_seconds: float = 5.0
    archive_bucket: str = "tollgate-dev-archive"
    spill_queue_name: str = "tollgate-dev-spill"
    spill_queue_url: str | None = None
    spill_dead_letter_queue_url: str | None = None  # what the spill replay could never write (/health, alerts)
    rollup_dead_letter_queue_url: str | None = None  # the stream mapping's on-failure destination (/health, alerts)
    rollup_detail_apart: bool = False  # the rollup's detail tier has its own function (AWS), not rollup_calls'
    rollup_merge_minutes: int = 0  # >0: the detail's batches staged in S3 and merged this many minutes at once
    merge_function: str | None = None  # the Lambda that merges one lane group (AWS); unset: merged in-process
    base_urls: dict[str, str] = field(default_factory=dict)
    provider_keys: dict[str, str] = field(default_factory=dict)  # clear keys from env (local only)
    provider_key_parameters: dict[str, str] = field(default_factory=dict)  # SSM names (AWS)
    admin_key: str | None = None  # from env (local only)
    admin_key_parameter: str | None = None  # SSM SecureString name (AWS)
    call_ttl_days: int = 90
    max_body_bytes: int = 6 * 1024 * 1024  # Lambda's synchronous payload limit
    max_answer_bytes: int = 64 * 1024 * 1024  # a non-streamed answer is held whole (its cost is a header)
    upstream_connect_seconds: float = 5.0
    upstream_read_seconds: float = 120.0  # the longest silence between two pieces of an answer
    upstream_deadline_seconds: float = 870.0  # a whole call, streamed or not: ends before Lambda's 900 s
    key_cache_seconds: float = 5.0
    alert_rules: str | None = None  # JSON overrides of the alert rules' defaults (chalicelib/alerting/rules.py)
    export_inline_bytes: int = 5 * 1024 * 1024  # a larger export is a job (chalicelib/reports/exports.py)
    export_function: str | None = None  # the Lambda that writes large exports (AWS); unset: a thread here
    export_download_url: str | None = None  # the local stack's own download links, not presigned S3 URLs
    bedrock_region: str | None = None  # Bedrock's region when not the stage's
    providers_file: str | None = None  # more OpenAI-compatible providers (chalicelib/provider_registry.py)

    def base_url(self, provider: str) -> str:
        """Where a provider is called: its setting, else its registry default (Bedrock's from its region)."""
        if url := self.base_urls.get(provider):
            return url
        if provider == "bedrock":
            return f"https://bedrock-runtime.{self.bedrock_region or self.region}.amazonaws.com"
        entry = provider_registry.get(provider)
        if entry is None or entry.base_url is None:
            raise ConfigurationError(f"no base URL for provider {provider!r}: set TOLLGATE_{provider.upper()}_BASE_URL")
        return entry.base_url


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or default


def from_env() -> Settings:
    """Read TOLLGATE_* variables; names match CONTRACT §1 and the stage config."""
    stage = _env("TOLLGATE_STAGE", "dev")
    prefix = f"tollgate-{stage}"
    providers_file = _env("TOLLGATE_PROVIDERS_FILE")
    registered = provider_registry.declared(providers_file).values()
    upper = {p.name: p.env_name for p in registered}
    key_env = {p.name: p.api_key_env or f"TOLLGATE_{p.env_name}_API_KEY" for p in registered}
    return Settings(
        stage=stage,
        region=_env("AWS_REGION", _env("AWS_DEFAULT_REGION", "us-east-1")),
        aws_endpoint=_env("TOLLGATE_AWS_ENDPOINT"),
        calls_table=_env("TOLLGATE_CALLS_TABLE", f"{prefix}-calls"),
        keys_table=_env("TOLLGATE_KEYS_TABLE", f"{prefix}-keys"),
        aggregates_table=_env("TOLLGATE_AGGREGATES_TABLE", f"{prefix}-aggregates"),
        budgets_table=_env("TOLLGATE_BUDGETS_TABLE", f"{prefix}-budgets"),
        alerts_table=_env("TOLLGATE_ALERTS_TABLE", f"{prefix}-alerts"),
        deliveries_table=_env("TOLLGATE_DELIVERIES_TABLE", f"{prefix}-deliveries"),
        credits_table=_env("TOLLGATE_CREDITS_TABLE", f"{prefix}-credits"),
        audit_table=_env("TOLLGATE_AUDIT_TABLE", f"{prefix}-audit"),
        sns_topic_arn=_env("TOLLGATE_SNS_TOPIC_ARN"),
        slack_webhook_url=_env("TOLLGATE_SLACK_WEBHOOK_URL"),
        slack_webhook_parameter=_env("TOLLGATE_SLACK_WEBHOOK_URL_PARAMETER"),
        alert_webhook_url=_env("TOLLGATE_ALERT_WEBHOOK_URL"),
        dashboard_url=_env("TOLLGATE_DASHBOARD_URL"),
        dashboard_origin=_env("TOLLGATE_DASHBOARD_ORIGIN"),
        budget_cache_seconds=float(_env("TOLLGATE_BUDGET_CACHE_SECONDS", "5")),
        archive_bucket=_env("TOLLGATE_ARCHIVE_BUCKET", f"{prefix}-archive"),
        spill_queue_name=_env("TOLLGATE_SPILL_QUEUE_NAME", f"{prefix}-spill"),
        spill_queue_url=_env("TOLLGATE_SPILL_QUEUE_URL"),
        spill_dead_letter_queue_url=_env("TOLLGATE_SPILL_DLQ_URL"),
        rollup_dead_letter_queue_url=_env("TOLLGATE_ROLLUP_DLQ_URL"),
        rollup_detail_apart=_env("TOLLGATE_ROLLUP_DETAIL_APART", "") == "1",
        rollup_merge_minutes=min(60, max(0, int(_env("TOLLGATE_ROLLUP_MERGE_MINUTES", "0")))),
        merge_function=_env("TOLLGATE_MERGE_FUNCTION"),
        base_urls={p: u.rstrip("/") for p in upper if (u := _env(f"TOLLGATE_{upper[p]}_BASE_URL"))},
        provider_keys={p: k for p in upper if (k := _env(key_env[p]))},
        provider_key_parameters={
            p: n for p in upper if (n := _env(f"TOLLGATE_{upper[p]}_API_KEY_PARAMETER"))
        },
        bedrock_region=_env("TOLLGATE_BEDROCK_REGION"),
        providers_file=providers_file,
        admin_key=_env("TOLLGATE_ADMIN_KEY"),
        admin_key_parameter=_env("TOLLGATE_ADMIN_KEY_PARAMETER"),
        call_ttl_days=int(_env("TOLLGATE_CALL_TTL_DAYS", "90")),
        max_body_bytes=int(_env("TOLLGATE_MAX_BODY_BYTES", str(6 * 1024 * 1024))),
        max_answer_bytes=int(_env("TOLLGATE_MAX_ANSWER_BYTES", str(64 * 1024 * 1024))),
        upstream_connect_seconds=float(_env("TOLLGATE_UPSTREAM_CONNECT_SECONDS", "5")),
        upstream_read_seconds=float(_env("TOLLGATE_UPSTREAM_READ_SECONDS", "120")),
        upstream_deadline_seconds=float(_env("TOLLGATE_UPSTREAM_DEADLINE_SECONDS", "870")),
        key_cache_seconds=float(_env("TOLLGATE_KEY_CACHE_SECONDS", "5")),
        alert_rules=_env("TOLLGATE_ALERT_RULES"),
        export_inline_bytes=int(_env("TOLLGATE_EXPORT_INLINE_BYTES", str(5 * 1024 * 1024))),
        export_function=_env("TOLLGATE_EXPORT_FUNCTION"),
        export_download_url=_env("TOLLGATE_EXPORT_DOWNLOAD_URL"),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return from_env()
