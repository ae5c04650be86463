"""`make package`: the CloudFormation template and Lambda zip in dist/package, offline of AWS.

`chalice package` with infra/resources.json merged in, completed for the stage by infra/template.py
(names, log groups, least-privilege roles, alarms, API settings); then the zip loses what the Lambda Python
runtime already ships (boto3, botocore and their dependencies, pulled in by pynamodb), which is most
of its size, and gains compiled bytecode, which Lambda cannot write for itself. The same zip serves
the Chalice functions and the streaming proxy, whose handler is a shell script (executable in the zip).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import py_compile
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from chalicelib.gateway.price_overrides import load_overrides
from infra import stages, template

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "python_dateutil", "urllib3", "six")
TARGET_MB = 15
EXECUTABLE = (stat.S_IFREG | 0o755) << 16  # a zip entry's external_attr for a regular file, rwxr-xr-x


def check_interpreter(version: tuple[int, int], runtime: str) -> None:
    """StageError (one line) unless this Python is the functions' runtime: `chalice package` names the Chalice
    functions' runtime after the interpreter running it and fetches wheels for that Python, while the proxy's
    runtime is written in infra/resources.json. Built by another Python, the zip and the runtimes disagree."""
    running = f"python{version[0]}.{version[1]}"
    if running != runtime:
        raise stages.StageError(
            f"this is Python {version[0]}.{version[1]} and the functions run {runtime}: build with Python "
            f"{runtime.removeprefix('python')} (`make clean` then `make package` recreates .venv with it)")


def provided_by_runtime(name: str) -> bool:
    top = name.split("/", 1)[0]
    stem = top.split("-", 1)[0] if top.endswith((".dist-info", ".data")) else top.removesuffix(".py")
    return stem in RUNTIME_PROVIDED


def bytecode(name: str, source: bytes) -> tuple[str, bytes]:
    """(path, contents) of the .pyc for a source file in the zip.

    Lambda's /var/task is read-only, so Python cannot cache what it compiles there: without shipped
    bytecode every cold start compiles every module it imports. Hash-based and unchecked, so the
    zip's timestamps do not matter.
    """
    with tempfile.TemporaryDirectory() as scratch:
        source_file, compiled = Path(scratch) / "module.py", Path(scratch) / "module.pyc"
        source_file.write_bytes(source)
        py_compile.compile(str(source_file), cfile=str(compiled), dfile=f"/var/task/{name}", doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        return importlib.util.cache_from_source(name), compiled.read_bytes()


def is_startup_script(name: str) -> bool:
    """A Lambda handler that the Web Adapter execs (chalicelib/gateway/run_proxy.sh): it must be executable."""
    return name.startswith("chalicelib/") and name.endswith(".sh")


def slim(zip_path: Path) -> tuple[int, int]:
    """Rewrite the zip without runtime-provided packages, with fresh bytecode and the message templates;
    (bytes before, bytes after).

    Startup scripts get mode 0755 whatever the checkout gave them (`core.fileMode=false`, a copy
    that dropped modes): the adapter's bootstrap execs the handler, and a script without `x` fails
    every cold start with "permission denied".
    """
    before = zip_path.stat().st_size
    slimmed = zip_path.with_suffix(".slim.zip")
    with zipfile.ZipFile(zip_path) as source, zipfile.ZipFile(slimmed, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            if provided_by_runtime(item.filename) or "__pycache__/" in item.filename:
                continue
            data = source.read(item.filename)
            if is_startup_script(item.filename):
                item.external_attr = EXECUTABLE
            target.writestr(item, data)
            if item.filename.endswith(".py"):
                cached, compiled = bytecode(item.filename, data)
                target.writestr(zipfile.ZipInfo(cached, item.date_time), compiled, zipfile.ZIP_DEFLATED)
        for path in sorted((ROOT / "templates").glob("*.j2")):  # the message templates: chalice packs only code
            target.write(path, f"templates/{path.name}")
    os.replace(slimmed, zip_path)
    return before, zip_path.stat().st_size


def unpack_like_lambda(zip_path: Path, dest: Path) -> list[Path]:
    """The zip unpacked as a Lambda sees it, runnable here: the sys.path to import `app` with under `python -S`.

    Only what the zip holds plus what the runtime provides is importable, so a runtime dependency
    missing from requirements.txt fails here as it would in Lambda. Compiled packages were built for
    arm64; each is swapped for this machine's build of the same package. File modes come from the
    zip, as Lambda applies them (zipfile's extractall drops them), so the startup script runs only
    if it is executable in the zip.
    """
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    code, runtime = dest / "code", dest / "runtime"
    runtime.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(code)
        for item in archive.infolist():
            if not item.is_dir() and (mode := stat.S_IMODE(item.external_attr >> 16)):
                (code / item.filename).chmod(mode)
        compiled = {n.split("/", 1)[0] for n in archive.namelist() if n.endswith(".so")}
    for top in compiled:
        shutil.rmtree(code / top)
        (code / top).symlink_to(site / top)
    for entry in site.iterdir():
        if provided_by_runtime(entry.name):
            (runtime / entry.name).symlink_to(entry)
    return [code, runtime]


def package(stage: str, out: Path) -> Path:
    """Package `stage` into `out` (sam.json, deployment.zip); StageError, before any work, for a stage that
    cannot be packaged."""
    configured = stages.load(stage)
    merged = json.loads((ROOT / "infra" / "resources.json").read_text())
    runtime = merged["Resources"]["ProxyFunction"]["Properties"]["Runtime"]
    check_interpreter(sys.version_info[:2], runtime)
    template.check_proxy_compute(configured, runtime)
    load_overrides()  # a price overrides file that does not load stops the package here, saying where and why
    if out.exists():
        shutil.rmtree(out)
    chalice = Path(sys.executable).with_name("chalice")
    # chalice needs some region to run; the template names none (it deploys to the region it is given)
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    subprocess.run([str(chalice), "package", "--stage", stage, "--merge-template", str(ROOT / "infra" / "resources.json"),
                    str(out)], cwd=ROOT, env=env, check=True)
    sam = out / "sam.json"
    sam.write_text(json.dumps(template.finish(json.loads(sam.read_text()), configured), indent=2) + "\n")
    before, after = slim(out / "deployment.zip")
    print(f"deployment.zip: {before / 1e6:.1f} MB → {after / 1e6:.1f} MB without runtime-provided packages "
          f"(target ≤ {TARGET_MB} MB); template: {out / 'sam.json'}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "package")
    args = parser.parse_args()
    try:
        package(args.stage, args.out)
    except stages.StageError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
