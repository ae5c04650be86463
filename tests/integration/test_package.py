"""What a Lambda reads at run time is inside the package `chalice package` builds (templates, price overrides).

Builds in a copy of the app with a throwaway policy, so no AWS credentials are needed; pip fetches the
runtime requirements from the package index, as `make deploy` does.
"""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT

RUNTIME_FILES = ["chalicelib/templates/slack_message.json.j2", "chalicelib/templates/message.txt.j2",
                 "chalicelib/price_overrides.json", "app.py"]


def test_runtime_files_are_in_the_lambda_package(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "app.py", project)
    shutil.copy(ROOT / "requirements.txt", project)
    shutil.copytree(ROOT / "chalicelib", project / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / ".chalice", project / ".chalice", ignore=shutil.ignore_patterns("deployments"))
    (project / ".chalice" / "policy-dev.json").write_text(json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*"}]}))
    chalice = Path(sys.executable).with_name("chalice")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run([str(chalice), "package", "--stage", "dev", str(tmp_path / "out")], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    with zipfile.ZipFile(tmp_path / "out" / "deployment.zip") as package:
        names = set(package.namelist())
        assert set(RUNTIME_FILES) <= names
        assert "{{ title" in package.read("chalicelib/templates/message.txt.j2").decode()
    assert not any(name.startswith(("templates/", "local/", "tests/")) for name in names)
