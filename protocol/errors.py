"""Error roots of faregate, and the exit codes its errors carry.

Every error faregate raises on purpose descends from `FaregateError` and carries a `reason`
(a short stable name a user can look up in docs/; the same names appear in JSON output and
journals), an `exit_code` (below: what the `faregate` command returns when the error ends it)
and a `remedy` (what to do, "" when there is nothing to say). The command prints one line,
`faregate: error: MESSAGE (fix: REMEDY)`, and returns `exit_code`; no layer below the command
maps classes to codes. As in python-can, an error also subclasses the matching built-in where
callers expect one (PortOpenError is an OSError), on CPython only: MicroPython cannot
inherit from two exception types.

    FaregateError                       exit 1 unless the class says otherwise
     +-- FormatError (protocol)         bad data from outside: wrong length, version, checksum
     |    +-- ImageFormatError, RemoteProtocolError (protocol), ListError (firmware)
     |    +-- SettingError (firmware/settings.py)  a setting unknown, missing or out of bounds
     +-- UsageError (protocol)          local misuse: a bug or a misconfiguration; exit 2
     |    +-- LocalProtocolError (protocol), NoBackend (drivers.portable.registry)
     |    +-- Pkcs11UriError (drivers/linux/pkcs11_uri.py) a device_key URL that does not parse
     +-- JournalError (firmware)
     |    +-- JournalFull, JournalUnverified (the journal cannot vouch for its seq)
     +-- SyncError, Refused, ImageRefused (firmware)
     +-- TokenError (drivers/linux/key_pkcs11.py) the device key's PKCS#11 token; exit 3
     |    +-- TokenUnavailable, TokenKeyError
     |    +-- TokenPinError                 the token refused its PIN; exit 4
     +-- SimError (host_sim/errors.py)  exit 2: ScenarioError, TariffError
     +-- ProvisioningError (provisioning/errors.py draws its subtree)  site and key files,
     |                                  ports, the serial link, the gate's answers, flashing
     +-- CliError (provisioning/cli/main.py) a one-line failure of the command itself

Exit codes (the same for every `faregate` subcommand):
    0   success
    1   the job ran and found a failure (a code refused by `verify`, an invariant broken by a
        simulation, a device self-test failing, a gate refusing what was asked)
    2   usage: bad arguments or a bad input file
    3   a device or port problem (not found, several candidates, not answering)
    4   authentication or signature refused
    5   internal error (a bug: please report it with the command line)
    130 interrupted (Ctrl-C); 141 the output's reader went away (`| head`), as for SIGPIPE
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DEVICE = 3
EXIT_AUTH = 4
EXIT_INTERNAL = 5
EXIT_INTERRUPTED = 130
EXIT_SIGPIPE = 141


class FaregateError(Exception):
    """Root of every error faregate raises on purpose."""

    reason = "error"
    exit_code = EXIT_FAILED
    remedy = ""

    def __init__(self, message: str = "", reason: str = "", remedy: str = "", exit_code=None):
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason
        if remedy:
            self.remedy = remedy
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message or self.reason


class FormatError(FaregateError):
    """Bytes or text from outside do not parse: wrong length, version, encoding, checksum."""

    reason = "malformed"


class UsageError(FaregateError):
    """The caller broke a precondition (a bug or a misconfiguration, not bad input)."""

    reason = "usage"
    exit_code = EXIT_USAGE
