"""Error roots of the portable core.

Two roots, as in python-tuf: bad data from outside (`FormatError` and its subclasses, raised by
parsers) and local misuse (`UsageError`). Every error carries a `reason`: a short stable name a
user can look up in docs/ (the same names appear in JSON output and journals).
"""


class FaregateError(Exception):
    """Root of every error faregate raises on purpose."""

    reason = "error"

    def __init__(self, message: str = "", reason: str = ""):
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason

    def __str__(self) -> str:
        return self.message or self.reason


class FormatError(FaregateError):
    """Bytes or text from outside do not parse: wrong length, version, encoding, checksum."""

    reason = "malformed"


class UsageError(FaregateError):
    """The caller broke a precondition (a bug or a misconfiguration, not bad input)."""

    reason = "usage"
