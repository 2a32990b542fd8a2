"""Times on the command line: unix seconds or ISO 8601 (UTC unless an offset is given)."""

import datetime
import time

from provisioning.cli.main import EXIT_USAGE, CliError


def parse_time(text: str | None, option: str = "") -> int:
    """'1767254400', '2026-01-01T08:00:00Z' or '2026-01-01 08:00' -> unix seconds. `option`
    (e.g. "--as-of") names what was given in the error. For argparse: type=time_arg."""
    if text is None or text == "now":
        return int(time.time())
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        dt = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise CliError(
            "%s%r is not a UTC time" % (option + " " if option else "", text),
            "give unix seconds (1767254400) or ISO 8601 (2026-01-01T08:00:00Z)",
            EXIT_USAGE,
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.UTC)
    return int(dt.timestamp())


def iso(t: int) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def time_arg(text: str) -> int:
    """An argparse `type`: a time option given as unix seconds or ISO 8601 (a bad one is a
    usage error, exit 2, like any bad option)."""
    import argparse

    try:
        return parse_time(text)
    except CliError as e:
        raise argparse.ArgumentTypeError("%s (%s)" % (e.message, e.remedy)) from None
