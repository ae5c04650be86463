"""Tollgate's command line: run admin jobs through the admin API, with progress, locally or in AWS.

    python cli.py recalculate --from 2026-11-01 --to 2026-11-20
    python cli.py reconcile --day 2026-11-20 [--fix]
    python cli.py reprice --start 2026-11-01 --end 2026-11-20 [--provider anthropic] [--model claude-sonnet-4-0]

`--url` (or TOLLGATE_URL; default the local stack) and `--admin-key` (or TOLLGATE_ADMIN_KEY).
Recalculation and re-pricing run one day per request, so each stays far inside API Gateway's time limit.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from datetime import date, timedelta
from decimal import Decimal

import httpx

BAR_WIDTH = 30
LOCAL_ADMIN_KEY = "tollgate-local-admin"


def _post(client: httpx.Client, job: str, body: dict) -> dict:
    response = client.post(f"/admin/jobs/{job}", json=body)
    payload = response.json()
    if response.status_code != 200:
        raise SystemExit(f"{job} failed ({response.status_code}): {payload.get('error', {}).get('message', payload)}")
    return payload


def progress(done: int, total: int, label: str) -> None:
    filled = BAR_WIDTH * done // total
    sys.stderr.write(f"\r[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {done}/{total} {label}")
    sys.stderr.flush()
    if done == total:
        sys.stderr.write("\n")


def recalculate(client: httpx.Client, first: date, last: date) -> dict:
    if last < first:
        raise SystemExit("--to is before --from")
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    totals = {"job": "recalculate", "from": days[0].isoformat(), "to": days[-1].isoformat(), "days": 0,
              "calls": 0, "items": 0}
    for done, day in enumerate(days, start=1):
        result = _post(client, "recalculate", {"from": day.isoformat(), "to": day.isoformat()})
        for name in ("days", "calls", "items"):
            totals[name] += result[name]
        progress(done, len(days), f"{day.isoformat()} ({totals['calls']} calls)")
    return totals


def reprice(client: httpx.Client, first: date, last: date, provider: str | None, model: str | None) -> dict:
    if last < first:
        raise SystemExit("--end is before --start")
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    totals = {"job": "reprice", "start": days[0].isoformat(), "end": days[-1].isoformat(), "days": 0, "calls": 0,
              "calls_repriced": 0, "cost_before_usd": Decimal(0), "cost_after_usd": Decimal(0), "conflicts": 0}
    filters = {k: v for k, v in (("provider", provider), ("model", model)) if v}
    for done, day in enumerate(days, start=1):
        result = _post(client, "reprice", {"start": day.isoformat(), "end": day.isoformat(), **filters})
        for name in ("days", "calls", "calls_repriced", "conflicts"):
            totals[name] += result[name]
        for name in ("cost_before_usd", "cost_after_usd"):
            totals[name] += Decimal(result[name])
        progress(done, len(days), f"{day.isoformat()} ({totals['calls_repriced']} of {totals['calls']} re-priced)")
    return totals | {name: format(totals[name].normalize(), "f") for name in ("cost_before_usd", "cost_after_usd")}


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    # --url and --admin-key go before or after the job's name: `tollgate reprice --url …` works as well
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--url", default=argparse.SUPPRESS, help="the gateway (TOLLGATE_URL; the local stack)")
    where.add_argument("--admin-key", default=argparse.SUPPRESS, help="TOLLGATE_ADMIN_KEY; the local default")
    parser = argparse.ArgumentParser(prog="tollgate", description=__doc__.split("\n")[0], parents=[where])
    jobs = parser.add_subparsers(dest="job", required=True)
    add_job = functools.partial(jobs.add_parser, parents=[where])
    rebuild = add_job("recalculate", help="rebuild aggregates of closed UTC days from the call log")
    rebuild.add_argument("--from", dest="first", type=date.fromisoformat, required=True)
    rebuild.add_argument("--to", dest="last", type=date.fromisoformat)
    check = add_job("reconcile", help="compare a day's aggregates with the call log")
    check.add_argument("--day", type=date.fromisoformat, default=date.today() - timedelta(days=1))
    check.add_argument("--fix", action="store_true", help="rebuild the day if it drifted")
    again = add_job("reprice", help="price logged calls again with today's prices and overrides")
    again.add_argument("--start", type=date.fromisoformat, required=True)
    again.add_argument("--end", type=date.fromisoformat)
    again.add_argument("--provider")
    again.add_argument("--model")
    args = parser.parse_args(argv)
    args.url = getattr(args, "url", None) or os.environ.get("TOLLGATE_URL") \
        or f"http://127.0.0.1:{os.environ.get('TOLLGATE_PORT', '8000')}"
    args.admin_key = getattr(args, "admin_key", None) or os.environ.get("TOLLGATE_ADMIN_KEY", LOCAL_ADMIN_KEY)
    return args


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    with httpx.Client(base_url=args.url, timeout=120,
                      headers={"Authorization": f"Bearer {args.admin_key}"}) as client:
        if args.job == "recalculate":
            result = recalculate(client, args.first, args.last or args.first)
        elif args.job == "reprice":
            result = reprice(client, args.start, args.end or args.start, args.provider, args.model)
        else:
            result = _post(client, "reconcile", {"day": args.day.isoformat(), "fix": args.fix})
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
