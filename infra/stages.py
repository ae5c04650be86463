"""Stages: one deployment each (`tollgate-<stage>`), described by its block in `.chalice/config.json`.

Chalice reads its own keys there (environment, memory, timeouts, `xray`, per-function
`reserved_concurrency`); the `tollgate` key holds the deploy settings Chalice has no name for, each
with a default. `python -m infra.stages add prod` creates a stage from `dev`, with the parameter names
and TOLLGATE_STAGE renamed: that is the only step a new stage needs.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".chalice" / "config.json"
TEMPLATE_STAGE = "dev"
LOCAL_STAGES = ("local",)  # tests and `make run`: never deployed
# Bucket names are global, so the dashboard's carries the Region: `tollgate-<stage>-dashboard-<region>-<12-digit
# account>` is at most 63 characters with Regions of up to 15 (us-isof-south-1; commercial ones have 14 at most),
# which leaves 15 for the stage. Function names (`tollgate-<stage>-evaluate_every_minute`, at most 64) fit easily.
STAGE_NAME = re.compile(r"[a-z][a-z0-9-]{0,13}[a-z0-9]|[a-z]")
CREATE_COMMAND = ".venv/bin/python -m infra.stages add {stage}"


class StageError(Exception):
    """A stage that cannot be packaged; the message is one line and names the command that fixes it."""


PROXY_COMPUTE = ("lambda", "managed-instances")  # where the streaming proxy runs; the first is the default
SUBNET_ID = re.compile(r"subnet-[0-9a-z]+")
DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
# CloudFront takes certificates from ACM in us-east-1 only
CERTIFICATE_ARN = re.compile(r"arn:aws[a-z-]*:acm:us-east-1:\d{12}:certificate/[0-9a-f-]+")
SECURITY_GROUP_ID = re.compile(r"sg-[0-9a-z]+")


@dataclass(frozen=True)
class ManagedInstances:
    """The proxy on Lambda Managed Instances (`"proxy_compute": "managed-instances"`; docs/OPERATIONS.md):
    EC2 capacity Lambda runs in the stage's own subnets, one execution environment serving many calls."""

    subnet_ids: tuple[str, ...]  # where the instances run: they must reach the providers and AWS (NAT or endpoints)
    security_group_ids: tuple[str, ...]  # egress to 443 is all the proxy needs
    instance_types: tuple[str, ...] = ("m7g.large",)  # arm64, as the function; the cost in OPERATIONS.md is for this
    max_vcpu_count: int = 12  # ceiling of the whole fleet, and so of its bill (the floor is 3 instances)
    max_concurrency: int = 64  # calls one execution environment serves at once (PerExecutionEnvironmentMaxConcurrency)


@dataclass(frozen=True)
class DeploySettings:
    """What a stage may change about its deployment (`"tollgate": {...}` in its config block)."""

    log_retention_days: int = 30  # every function's log group, the API access log and the dashboard's request logs
    archive_retention_days: int = 365  # raw calls in the archive bucket, from when they leave the call log
    throttle_rate_per_second: float = 100.0  # API Gateway method throttling: each method's steady rate ...
    throttle_burst: int = 200  # ... and burst (every method of the stage gets both on its own)
    # the proxy's reserved concurrency: its ceiling, so long streams cannot take the account's whole concurrency
    # (the rollup and the jobs share what is left); None: no ceiling. A reservation, counted by `make deploy`.
    proxy_reserved_concurrency: int | None = 100
    admin_source_cidrs: tuple[str, ...] = ()  # /admin from these networks only (a resource policy); (): any
    dashboard_domain: str | None = None  # the dashboard on a domain of its own, with ...
    dashboard_certificate_arn: str | None = None  # ... this ACM certificate (us-east-1): TLS 1.2 at least
    alarm_email: str | None = None  # informational: `make deploy` reminds you to subscribe it
    proxy_compute: str = "lambda"  # PROXY_COMPUTE: Lambda's per-request billing, or Lambda Managed Instances
    # the proxy function's memory (MB; CPU comes in proportion): sized by `make bench` (docs/BENCHMARKS.md, memory);
    # the Chalice functions' are their `lambda_memory_size` in the same stage block. Managed Instances ignore it.
    proxy_memory_mb: int = 512
    managed_instances: ManagedInstances | None = None  # its settings; needed only by "managed-instances"


# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)


@dataclass(frozen=True)
class Stage:
    name: str
    chalice: dict  # the stage's block in .chalice/config.json
    deploy: DeploySettings

    @property
    def tracing(self) -> bool:
        """`"xray": true` in the stage: Chalice traces its functions; infra/ the proxy and the API stage."""
        return bool(self.chalice.get("xray", False))

    def function_config(self, function: str) -> dict:
        return self.chalice.get("lambda_functions", {}).get(function, {})


def read_config() -> dict:
    return json.loads(CONFIG.read_text())


def load(name: str) -> Stage:
    """The stage as configured; StageError (one line, with the fix) if it cannot be deployed."""
    if name in LOCAL_STAGES:
        raise StageError(f"stage {name!r} is the local stack's (make run, make test), not a deployable one: "
                         f"create one with `{CREATE_COMMAND.format(stage='<name>')}`")
    if not STAGE_NAME.fullmatch(name):
        raise StageError(f"stage name {name!r} must be 1-15 lowercase letters, digits or inner hyphens, "
                         "starting with a letter")
    stages = read_config().get("stages", {})
    if name not in stages:
        raise StageError(f"stage {name!r} is not in .chalice/config.json: create it with "
                         f"`{CREATE_COMMAND.format(stage=name)}`")
    block = stages[name]
    raw = block.get("tollgate", {})
    known = {f.name for f in fields(DeploySettings)}
    if unknown := set(raw) - known:
        raise StageError(f"stage {name!r}: unknown deploy settings {sorted(unknown)} under \"tollgate\" in "
                         f".chalice/config.json; known: {sorted(known)}")
    deploy = DeploySettings(**{**raw, "managed_instances": _managed_instances(name, raw.get("managed_instances")),
                               "admin_source_cidrs": _networks(name, raw.get("admin_source_cidrs", []))})
    _check_proxy_and_dashboard(name, deploy)
    if deploy.proxy_compute not in PROXY_COMPUTE:
        raise StageError(f"stage {name!r}: proxy_compute must be one of {list(PROXY_COMPUTE)}")
    if deploy.proxy_compute == "managed-instances" and deploy.managed_instances is None:
        raise StageError(f"stage {name!r}: proxy_compute \"managed-instances\" needs \"managed_instances\": "
                         "{\"subnet_ids\": [...], \"security_group_ids\": [...]} under \"tollgate\" "
                         "(docs/OPERATIONS.md, Lambda Managed Instances)")
    if deploy.log_retention_days not in LOG_RETENTION_DAYS:
        raise StageError(f"stage {name!r}: log_retention_days must be one of {LOG_RETENTION_DAYS}")
    if deploy.archive_retention_days < 1:
        raise StageError(f"stage {name!r}: archive_retention_days must be at least 1")
    if block.get("environment_variables", {}).get("TOLLGATE_STAGE") != name:
        raise StageError(f"stage {name!r}: its TOLLGATE_STAGE in .chalice/config.json must be {name!r} (the table "
                         f"names follow it); `{CREATE_COMMAND.format(stage=name)}` writes a consistent block")
    return Stage(name, block, deploy)


def _networks(name: str, raw: Any) -> tuple[str, ...]:
    """`admin_source_cidrs` as a tuple; StageError (one line) unless it is a list of IPv4 or IPv6 networks."""
    try:
        if not isinstance(raw, list):
            raise ValueError(raw)
        return tuple(str(ipaddress.ip_network(cidr)) for cidr in raw)
    except (TypeError, ValueError):
        raise StageError(f"stage {name!r}: admin_source_cidrs must be a list of networks such as "
                         "[\"203.0.113.0/24\", \"2001:db8::/32\"]") from None


LAMBDA_MEMORY_MB = (128, 10_240)  # what Lambda accepts, in whole MB


def _check_proxy_and_dashboard(name: str, deploy: DeploySettings) -> None:
    """StageError (one line) for a proxy concurrency or memory, or a dashboard domain, that AWS would refuse."""
    memory, (least, most) = deploy.proxy_memory_mb, LAMBDA_MEMORY_MB
    if not isinstance(memory, int) or isinstance(memory, bool) or not least <= memory <= most:
        raise StageError(f"stage {name!r}: proxy_memory_mb must be a whole number of MB from {least} to {most}")
    reserved = deploy.proxy_reserved_concurrency
    if reserved is not None and (not isinstance(reserved, int) or isinstance(reserved, bool) or reserved < 1):
        raise StageError(f"stage {name!r}: proxy_reserved_concurrency must be a whole number of at least 1, or null "
                         "(no ceiling)")
    domain, certificate = deploy.dashboard_domain, deploy.dashboard_certificate_arn
    if (domain is None) != (certificate is None):
        raise StageError(f"stage {name!r}: dashboard_domain and dashboard_certificate_arn go together (the "
                         "certificate must cover the domain)")
    if domain is not None and not (isinstance(domain, str) and DOMAIN.fullmatch(domain)):
        raise StageError(f"stage {name!r}: dashboard_domain must be a domain name such as dash.example.com")
    if certificate is not None and not (isinstance(certificate, str) and CERTIFICATE_ARN.fullmatch(certificate)):
        raise StageError(f"stage {name!r}: dashboard_certificate_arn must be an ACM certificate in us-east-1 (the "
                         "only Region CloudFront takes certificates from): arn:aws:acm:us-east-1:<account>:certificate/<id>")


def _managed_instances(name: str, raw: Any) -> ManagedInstances | None:
    """The stage's `managed_instances` block, checked; StageError (one line) for a value AWS would refuse."""
    if raw is None:
        return None
    known = {f.name for f in fields(ManagedInstances)}
    if not isinstance(raw, dict) or set(raw) - known:
        raise StageError(f"stage {name!r}: \"managed_instances\" takes only {sorted(known)}")
    checks = {"subnet_ids": (SUBNET_ID, 1, 16), "security_group_ids": (SECURITY_GROUP_ID, 1, 5),
              "instance_types": (re.compile(r"[a-z0-9]+\.[a-z0-9]+"), 1, 400)}
    values = dict(raw)
    for key, (pattern, least, most) in checks.items():
        if key not in raw and key == "instance_types":  # optional: ManagedInstances' default
            continue
        ids = raw.get(key)
        if not isinstance(ids, list) or not least <= len(ids) <= most or not all(
                isinstance(i, str) and pattern.fullmatch(i) for i in ids):
            raise StageError(f"stage {name!r}: managed_instances.{key} must be a list of {least} to {most} "
                             f"ids like {pattern.pattern!r}")
        values[key] = tuple(ids)
    for key, least, most in (("max_vcpu_count", 2, 15000), ("max_concurrency", 1, 1600)):
        value = raw.get(key, getattr(ManagedInstances, key))
        if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most:
            raise StageError(f"stage {name!r}: managed_instances.{key} must be a whole number from {least} to {most}")
    return ManagedInstances(**values)


def _renamed(value, source: str, target: str):
    """A copy of a config value with every `/tollgate/<source>/` parameter name and the stage name moved to target."""
    if isinstance(value, dict):
        return {k: _renamed(v, source, target) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, source, target) for v in value]
    if isinstance(value, str):
        return value.replace(f"/tollgate/{source}/", f"/tollgate/{target}/")
    return value


def add(name: str, source: str = TEMPLATE_STAGE) -> dict:
    """Create stage `name` as a copy of `source`; returns its block. Refuses an existing or invalid name."""
    if name in LOCAL_STAGES or not STAGE_NAME.fullmatch(name):
        raise StageError(f"stage name {name!r} must be 1-15 lowercase letters, digits or inner hyphens, "
                         "starting with a letter (and not 'local')")
    config = read_config()
    stages = config.setdefault("stages", {})
    if name in stages:
        raise StageError(f"stage {name!r} already exists in .chalice/config.json")
    if source not in stages:
        raise StageError(f"stage {source!r} to copy from is not in .chalice/config.json")
    block = _renamed(stages[source], source, name)
    block.setdefault("environment_variables", {})["TOLLGATE_STAGE"] = name
    stages[name] = block
    CONFIG.write_text(json.dumps(config, indent=2) + "\n")
    return block


def main() -> None:
    parser = argparse.ArgumentParser(description="Tollgate stages in .chalice/config.json")
    commands = parser.add_subparsers(dest="command", required=True)
    adding = commands.add_parser("add", help="create a stage as a copy of another (dev by default)")
    adding.add_argument("stage")
    adding.add_argument("--from", dest="source", default=TEMPLATE_STAGE)
    commands.add_parser("list", help="the deployable stages")
    args = parser.parse_args()
    try:
        if args.command == "add":
            add(args.stage, args.source)
            print(f"stage {args.stage!r} added to .chalice/config.json (a copy of {args.source!r}); next:\n"
                  f"  put its secrets in SSM under /tollgate/{args.stage}/ (README, Deploy to AWS), then\n"
                  f"  make deploy STAGE={args.stage}")
        else:
            print("\n".join(s for s in read_config().get("stages", {}) if s not in LOCAL_STAGES))
    except StageError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
