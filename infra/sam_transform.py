"""`make deploy`'s SAM transform, run here instead of in CloudFormation: the stack gets plain CloudFormation.

CloudFormation would run the same aws-sam-translator on the packaged template. Running it here means what
we deploy is what we can read, lint and rehearse: the deploy rehearsal (tests/e2e/test_deploy_rehearsal.py)
deploys exactly this file to a CloudFormation (moto's) that has no SAM transform of its own.

    python -m infra.sam_transform packaged.json transformed.json --region eu-west-1 --account 123456789012 --stack tollgate-dev
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

PARTITIONS = {"cn-": ("aws-cn", "amazonaws.com.cn"), "us-gov-": ("aws-us-gov", "amazonaws.com")}


class NoManagedPolicies:
    """SAM looks up AWS managed policies named in a function's `Policies`; ours name none (every role's
    policy is written out in infra/permissions.py), so no IAM call is needed."""

    def load(self) -> dict[str, str]:
        return {}


def transform(packaged: dict[str, Any], region: str, account: str, stack: str) -> dict[str, Any]:
    """The packaged SAM template (code already in S3) as plain CloudFormation, for `region` and `account`."""
    from samtranslator.translator.transform import transform as sam

    partition, suffix = next((p for prefix, p in PARTITIONS.items() if region.startswith(prefix)),
                             ("aws", "amazonaws.com"))
    pseudo = {"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": partition,
              "AWS::StackName": stack, "AWS::URLSuffix": suffix, "AWS::NotificationARNs": []}
    return sam(packaged, pseudo, NoManagedPolicies())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("packaged", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--region", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--stack", required=True)
    args = parser.parse_args()
    done = transform(json.loads(args.packaged.read_text()), args.region, args.account, args.stack)
    args.out.write_text(json.dumps(done, indent=1) + "\n")


if __name__ == "__main__":
    main()
