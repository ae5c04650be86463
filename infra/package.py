"""`make package`: the CloudFormation template and Lambda zip in dist/package, offline of AWS.

`chalice package` with infra/resources.json merged in, then the zip loses what the Lambda Python
runtime already ships (boto3, botocore and their dependencies, pulled in by pynamodb), which is most
of its size.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "python_dateutil", "urllib3", "six")
TARGET_MB = 15


def provided_by_runtime(name: str) -> bool:
    top = name.split("/", 1)[0]
    stem = top.split("-", 1)[0] if top.endswith((".dist-info", ".data")) else top.removesuffix(".py")
    return stem in RUNTIME_PROVIDED


def slim(zip_path: Path) -> tuple[int, int]:
    """Rewrite the zip without runtime-provided packages; (bytes before, bytes after)."""
    before = zip_path.stat().st_size
    slimmed = zip_path.with_suffix(".slim.zip")
    with zipfile.ZipFile(zip_path) as source, zipfile.ZipFile(slimmed, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            if not provided_by_runtime(item.filename):
                target.writestr(item, source.read(item.filename))
    os.replace(slimmed, zip_path)
    return before, zip_path.stat().st_size


def package(stage: str, out: Path) -> Path:
    if out.exists():
        shutil.rmtree(out)
    chalice = Path(sys.executable).with_name("chalice")
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    subprocess.run([str(chalice), "package", "--stage", stage, "--merge-template", str(ROOT / "infra" / "resources.json"),
                    str(out)], cwd=ROOT, env=env, check=True)
    before, after = slim(out / "deployment.zip")
    print(f"deployment.zip: {before / 1e6:.1f} MB → {after / 1e6:.1f} MB without runtime-provided packages "
          f"(target ≤ {TARGET_MB} MB); template: {out / 'sam.json'}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "package")
    args = parser.parse_args()
    package(args.stage, args.out)


if __name__ == "__main__":
    main()
