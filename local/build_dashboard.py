"""Build the static dashboard into dist/dashboard: its source, Chart.js from node_modules, and config.json.

`python -m local.build_dashboard [--api-url URL] [--out DIR]`; `make deploy` passes the API's URL,
the local stack serves the API on the same origin and leaves it empty.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "dashboard"
CHART = ROOT / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"
DEFAULT_OUT = ROOT / "dist" / "dashboard"


def build(out: Path = DEFAULT_OUT, api_url: str = "") -> Path:
    if not CHART.exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=ROOT, check=True)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(SOURCE, out)
    (out / "vendor").mkdir()
    shutil.copy(CHART, out / "vendor" / CHART.name)
    (out / "config.json").write_text(json.dumps({"api_url": api_url}) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--api-url", default="")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    print(f"dashboard built in {build(args.out, args.api_url)}")


if __name__ == "__main__":
    main()
