"""A request's query parameters as the reports and the audit read them: built at the HTTP edge
(chalice_http.query_of), so no module below it knows which web framework the values came from."""
from __future__ import annotations

from chalicelib.errors import InvalidRequest


class Query(dict[str, str]):
    """Query parameters, each already a bounded, clean name; typed reads give a 400 that names the field."""

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """A bounded integer parameter, or a 400 that names it and its range."""
        raw = self.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise InvalidRequest(f"`{name}` must be an integer between {low} and {high}") from None
        if not low <= value <= high:
            raise InvalidRequest(f"`{name}` must be an integer between {low} and {high}")
        return value
