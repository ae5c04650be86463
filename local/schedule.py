"""The app's own schedules, run locally: each `@app.schedule` handler of app.py, called when its Rate or
Cron says it is due, so the local stack never re-encodes when the digests or the evaluator run.

A Cron is due when a time it names has passed since the last run; on the first run, since midnight UTC,
so a stack started at 10:00 sends that day's 08:00 digest (the handlers queue it once per day anyway).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def _matches(field: Any, value: int, names: tuple[str, ...] = ()) -> bool:
    """One Cron field: `*`, `?`, a number, a name, or a comma list of them (what app.py uses)."""
    text = str(field).upper()
    if text in ("*", "?"):
        return True
    return any((names.index(part) if part in names else int(part)) == value for part in text.split(","))


def fires_at(cron: Any, at: datetime) -> bool:
    return (_matches(cron.minutes, at.minute) and _matches(cron.hours, at.hour)
            and _matches(cron.day_of_month, at.day) and _matches(cron.month, at.month)
            and _matches(cron.day_of_week, at.weekday(), DAYS) and _matches(cron.year, at.year))


def last_fire(cron: Any, now: datetime, since: datetime) -> datetime | None:
    """The latest minute in (since, now] that `cron` names, or None."""
    at = now.replace(second=0, microsecond=0)
    while at > since:
        if fires_at(cron, at):
            return at
        at -= timedelta(minutes=1)
    return None


def _event(now: datetime) -> dict[str, Any]:
    """A scheduled event as EventBridge delivers it (Chalice reads every one of these keys)."""
    return {"version": "0", "id": "local", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "000000000000", "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": "local",
            "resources": [], "detail": {}}


class Scheduler:
    """Runs app.py's scheduled handlers that are due, each on its own: one failing never stops the others."""

    def __init__(self, app_module: Any, started: datetime) -> None:
        """`app_module` is app.py: its Chalice app lists the schedules, and the module holds their handlers."""
        self.sources = [s for s in app_module.app.event_sources if type(s).__name__ == "ScheduledEventConfig"]
        self.handlers = {s.name: getattr(app_module, s.name) for s in self.sources}
        self.last_run: dict[str, datetime] = {s.name: started.replace(hour=0, minute=0, second=0, microsecond=0) for s in self.sources}

    def due(self, now: datetime) -> list[str]:
        names = []
        for source in self.sources:
            expression = source.schedule_expression
            if type(expression).__name__ == "Rate" or last_fire(expression, now, self.last_run[source.name]):
                names.append(source.name)
        return names

    def run(self, now: datetime) -> dict[str, Any]:
        """Each due handler's result, or the exception it raised."""
        outcomes: dict[str, Any] = {}
        for name in self.due(now):
            try:
                outcomes[name] = self.handlers[name](_event(now), None)
            except Exception as exc:  # reported by the caller, retried next run
                outcomes[name] = exc
                continue
            self.last_run[name] = now
        return outcomes
