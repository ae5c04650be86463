"""`make deploy` checks first: everything a deploy needs from the account, each missing one a line with its fix.

Stage config, credentials, region (never a silent default), the code bucket (it exists and is in the
stack's region), the stage's SSM secrets (by name only: no secret is read), Lambda concurrency for the
reservations the stage asks for, API Gateway's logging role. On success prints shell assignments that
infra/deploy.sh evaluates: the region, whether the API Gateway logging role must be created, and the
dashboard URL an earlier deploy of the stack reported.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import dataclass, field

from infra import stages

ADMIN_KEY = "/tollgate/{stage}/admin-key"
PROVIDER_KEYS = ("openai", "anthropic", "openrouter", "groq", "gemini", "azure")  # Bedrock: the role
UNRESERVED_MINIMUM = 100  # Lambda refuses a reservation that leaves an account fewer unreserved than this
CONCURRENCY_QUOTA = "L-B99A9384"


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)  # each stops the deploy
    notes: list[str] = field(default_factory=list)  # worth knowing, not blocking
    values: dict[str, str] = field(default_factory=dict)  # for deploy.sh

    def problem(self, text: str) -> None:
        self.problems.append(text)


def region_of(session, environ: dict[str, str]) -> str | None:
    """The region the AWS CLI would use: AWS_REGION, AWS_DEFAULT_REGION, then the profile's."""
    return environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or session.region_name or None


def check(stage_name: str, bucket: str | None, session=None, environ: dict[str, str] | None = None) -> Findings:
    """Every check, in the order a person would fix them; later checks are skipped when one they need failed."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    environ = os.environ if environ is None else environ
    found = Findings()
    try:
        stage = stages.load(stage_name)
    except stages.StageError as exc:
        found.problem(str(exc))
        return found
    session = session or boto3.Session()
    region = region_of(session, environ)
    if not region:
        found.problem("no AWS region: `export AWS_REGION=eu-west-1` (or `aws configure set region eu-west-1`), "
                      "the region the stack goes to")
        return found
    found.values["REGION"] = region
    try:
        identity = session.client("sts", region_name=region).get_caller_identity()
    except (NoCredentialsError, ClientError, BotoCoreError) as exc:
        found.problem(f"no usable AWS credentials ({type(exc).__name__}): `aws configure` or "
                      "`aws sso login --profile <profile>` then `export AWS_PROFILE=<profile>`")
        return found
    account = identity["Account"]
    found.values["ACCOUNT"] = account
    _check_bucket(found, session, region, account, bucket)
    _check_secrets(found, session, region, stage, environ)
    _check_concurrency(found, session, region, stage)
    _check_api_logging(found, session, region)
    _previous_outputs(found, session, region, f"tollgate-{stage.name}")
    return found


def _code(exc) -> str:
    return exc.response.get("Error", {}).get("Code", "") if hasattr(exc, "response") else type(exc).__name__


def _check_bucket(found: Findings, session, region: str, account: str, bucket: str | None) -> None:
    from botocore.exceptions import ClientError

    make = (f"`aws s3 mb s3://tollgate-artifacts-{account}-{region} --region {region}` and "
            f"`export TOLLGATE_DEPLOY_BUCKET=tollgate-artifacts-{account}-{region}`")
    if not bucket:
        found.problem(f"TOLLGATE_DEPLOY_BUCKET is not set (an S3 bucket for code packages): {make}")
        return
    s3 = session.client("s3", region_name=region)
    try:
        location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
    except ClientError as exc:
        if _code(exc) in ("NoSuchBucket", "404"):
            found.problem(f"code bucket {bucket!r} does not exist: {make}")
        else:
            found.problem(f"code bucket {bucket!r} cannot be read with these credentials ({_code(exc)}): use a "
                          f"bucket of this account, or create one: {make}")
        return
    location = {"EU": "eu-west-1"}.get(location, location)
    if location != region:
        found.problem(f"code bucket {bucket!r} is in {location}, the stack goes to {region} (Lambda reads code from "
                      f"its own region only): {make}")


def _check_secrets(found: Findings, session, region: str, stage: stages.Stage, environ: dict[str, str]) -> None:
    """The stage's SecureStrings exist: by name only, never decrypted here."""
    ssm = session.client("ssm", region_name=region)
    wanted = {ADMIN_KEY.format(stage=stage.name): True}
    wanted |= {f"/tollgate/{stage.name}/{p}-api-key": False for p in PROVIDER_KEYS}
    slack = environ.get("TOLLGATE_SLACK_WEBHOOK_PARAMETER")
    if slack:
        wanted[slack] = True
    names = list(wanted)
    existing: dict[str, str] = {}
    for start in range(0, len(names), 10):
        pages = ssm.get_paginator("describe_parameters").paginate(
            ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": names[start:start + 10]}])
        for page in pages:
            existing |= {p["Name"]: p["Type"] for p in page["Parameters"]}
    for name, required in wanted.items():
        put = f"`aws ssm put-parameter --region {region} --type SecureString --name {name} --value …`"
        if name not in existing:
            text = f"SSM parameter {name} is missing: {put}"
            if required:
                found.problem(text)
            else:
                found.notes.append(text + " (calls to that provider fail until it is set)")
        elif existing[name] != "SecureString":
            found.problem(f"SSM parameter {name} is a {existing[name]}, not a SecureString: delete it and {put}")


def _check_concurrency(found: Findings, session, region: str, stage: stages.Stage) -> None:
    from botocore.exceptions import ClientError

    wanted = {name: config["reserved_concurrency"] for name, config in stage.chalice.get("lambda_functions", {}).items()
              if config.get("reserved_concurrency") is not None}
    if stage.deploy.proxy_reserved_concurrency is not None and stage.deploy.proxy_compute == "lambda":
        wanted["proxy"] = stage.deploy.proxy_reserved_concurrency  # the proxy's ceiling is a reservation too
    if not wanted:
        return
    client = session.client("lambda", region_name=region)
    limits = client.get_account_settings()["AccountLimit"]
    held = 0  # what this stage's functions reserve already (a redeploy frees it first)
    for name in wanted:
        try:
            held += client.get_function_concurrency(FunctionName=f"tollgate-{stage.name}-{name}").get(
                "ReservedConcurrentExecutions") or 0
        except ClientError:
            pass
    left = limits["UnreservedConcurrentExecutions"] + held - sum(wanted.values())
    if left < UNRESERVED_MINIMUM:
        found.problem(
            f"the account's Lambda concurrency ({limits['ConcurrentExecutions']}) cannot reserve "
            f"{sum(wanted.values())} for {sorted(wanted)} and keep {UNRESERVED_MINIMUM} unreserved: ask for more "
            f"(`aws service-quotas request-service-quota-increase --region {region} --service-code lambda "
            f"--quota-code {CONCURRENCY_QUOTA} --desired-value 1000`) or lower `proxy_reserved_concurrency` under "
            f"\"tollgate\" (null: no ceiling) or `reserved_concurrency` of those functions in .chalice/config.json "
            f"(stage {stage.name})")


def _check_api_logging(found: Findings, session, region: str) -> None:
    """The account's API Gateway logging role: the stack creates one only where there is none."""
    role = session.client("apigateway", region_name=region).get_account().get("cloudwatchRoleArn")
    found.values["API_GATEWAY_ACCOUNT_ROLE"] = "existing" if role else "create"


def _previous_outputs(found: Findings, session, region: str, stack: str) -> None:
    from botocore.exceptions import ClientError

    try:
        described = session.client("cloudformation", region_name=region).describe_stacks(StackName=stack)
    except ClientError:
        found.values["DASHBOARD_URL"] = ""  # a first deploy: deploy.sh passes it on a second, short update
        return
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0].get("Outputs", [])}
    found.values["DASHBOARD_URL"] = outputs.get("DashboardURL", "")
    found.values["STACK_STATUS"] = described["Stacks"][0]["StackStatus"]
    if found.values["STACK_STATUS"].endswith(("_FAILED", "ROLLBACK_COMPLETE")) and \
            found.values["STACK_STATUS"] != "UPDATE_ROLLBACK_COMPLETE":
        found.problem(f"stack {stack} is {found.values['STACK_STATUS']}: see why with `aws cloudformation "
                      f"describe-stack-events --stack-name {stack} --region {region}`; a stack that never "
                      f"completed its creation must be deleted first (its tables are kept: see docs/OPERATIONS.md, Tear down)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", required=True)
    args = parser.parse_args()
    found = check(args.stage, os.environ.get("TOLLGATE_DEPLOY_BUCKET"))
    for note in found.notes:
        print(f"note: {note}", file=sys.stderr)
    for problem in found.problems:
        print(f"error: {problem}", file=sys.stderr)
    if found.problems:
        sys.exit(2)
    print("\n".join(f"{name}={shlex.quote(value)}" for name, value in found.values.items()))


if __name__ == "__main__":
    main()
