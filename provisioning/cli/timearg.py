"""Times on the command line: unix seconds or ISO 8601 (UTC unless an offset is given)."""

import datetime
import time

from provisioning.cli.main import EXIT_USAGE, CliError


def parse_time(text: str | None) -> int:
    """'1767254400', '2026-01-01T08:00:00Z' or '2026-01-01 08:00' -> unix seconds."""
    if text is None or text == "now":
        return int(time.time())
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        dt = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise CliError(
            "cannot read the time %r" % text,
            "give unix seconds (1767254400) or ISO 8601 (2026-01-01T08:00:00Z)",
            EXIT_USAGE,
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.UTC)
    return int(dt.timestamp())


def iso(t: int) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
