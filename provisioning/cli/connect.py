"""What every command that talks to a gate shares: the port and credential options, opening an
authenticated session, and turning every failure into one CliError line with its remedy.

Exit codes (provisioning.cli.main): 2 bad arguments, site file or credential files; 3 port or gate
not found, not answering, unplugged, or the wrong gate; 4 the gate refused who we are (or
its own identity did not check out); 1 the gate refused what we asked, or a check failed.
"""

import argparse
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from protocol import certs, reasons
from provisioning.cli.events import Events
from provisioning.cli.main import EXIT_AUTH, EXIT_DEVICE, EXIT_FAILED, EXIT_USAGE, CliError

CRED_ENV = "FAREGATE_CRED"

# refusal reason -> what the technician should do
REMEDIES = {
    "svc_not_provisioned": "provision it first: faregate provision --site SITE.toml",
    "svc_claimed": "this gate belongs to another operator: only that operator can reset it",
    "svc_bad_credential": "use a credential issued by this gate's operator (faregate keys "
    "technician)",
    "svc_credential_expired": "ask the operator for a new credential (`faregate device "
    "identify` shows the gate's clock)",
    "svc_revoked": "this credential is revoked: ask the operator for a new one",
    "svc_forbidden": "this credential's role does not allow it: use one with role full",
    "svc_bad_signature": "technician.key does not match the credential, or the line is noisy: "
    "run the command again",
    "svc_unauthenticated": "run the command again (it opens a new session)",
    "svc_replayed": "run the command again (it opens a new session)",
    "svc_unsynced": "sync the gate first, or export the passages: "
    "faregate device reset --export FILE --force",
    "svc_export_mismatch": "run the reset again: it exports the passages anew",
    "svc_storage": "the gate's storage failed: run `faregate device selftest`, then replace it",
}


def add_port_args(p: argparse.ArgumentParser, cred: bool = True) -> None:
    p.add_argument(
        "--port",
        default=None,
        help="serial port of the gate (/dev/ttyUSB0, a simulator's pty). Default: "
        "$FAREGATE_PORT, else the one USB serial adapter or simulated gate found; with "
        "none or several, the command stops and lists them",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=2.0,
        help="seconds to wait for each answer before retrying (default 2)",
    )
    p.add_argument(
        "--retries", type=int, default=2, help="retries after a silent timeout (default 2)"
    )
    if cred:
        p.add_argument(
            "--cred",
            default=None,
            help="technician credential directory (from `faregate keys technician`); "
            "default $%s, else ~/.faregate/technician" % CRED_ENV,
        )
    p.add_argument("--json", action="store_true", help="print JSON lines (events) instead of text")


def cred_dir(args: argparse.Namespace) -> str:
    return (
        args.cred
        or os.environ.get(CRED_ENV)
        or os.path.join(os.path.expanduser("~"), ".faregate", "technician")
    )


def load_credential(args: argparse.Namespace, now: int) -> Any:
    from provisioning.operator_keys import Credential

    cred = Credential(cred_dir(args))
    cred.check_time(now)
    return cred


def translate(e: BaseException) -> CliError | None:
    """The CliError for a failure of the transport, the gate, a key file or a site file."""
    from provisioning.console import DeviceMisbehaves, DeviceRefused
    from provisioning.operator_keys import CredentialExpired, KeyFileError
    from provisioning.ports import PortChoiceError
    from provisioning.site import SiteErrors
    from provisioning.transport import TransportError

    if isinstance(e, CliError):
        return e
    if isinstance(e, PortChoiceError | TransportError):
        return CliError(e.message, e.remedy, EXIT_DEVICE)
    if isinstance(e, DeviceRefused):
        remedy = REMEDIES.get(e.reason) or reasons.REASONS.get(e.reason, ("", "", ""))[2]
        code = EXIT_AUTH if e.is_auth else EXIT_FAILED
        return CliError("gate refused %s: %s: %s" % (e.command, e.reason, e.message), remedy, code)
    if isinstance(e, DeviceMisbehaves):
        return CliError(str(e), "this is not a genuine gate of ours, or it is damaged", EXIT_AUTH)
    if isinstance(e, CredentialExpired):
        return CliError(e.message, e.remedy, EXIT_AUTH)
    if isinstance(e, KeyFileError):
        return CliError(e.message, e.remedy, EXIT_USAGE)
    if isinstance(e, SiteErrors):
        first = e.errors[0]
        more = " (and %d more above)" % (len(e.errors) - 1) if len(e.errors) > 1 else ""
        return CliError(str(first) + more, first.remedy or "correct the site file", EXIT_USAGE)
    return None


def run(events: Events, fn: Callable[[], int]) -> int:
    """Run a command body; report any failure as one error line (and a JSON error event)."""
    from provisioning.site import SiteErrors

    try:
        return fn()
    except Exception as e:
        err = translate(e)
        if err is None:
            raise
        if isinstance(e, SiteErrors) and len(e.errors) > 1:
            import sys

            for site_err in e.errors[:-1]:
                line = CliError(str(site_err), site_err.remedy, EXIT_USAGE).line()
                print(line, file=sys.stderr)
        events.error(err.message, err.remedy, err.exit_code)
        raise err from None


@contextlib.contextmanager
def session(
    args: argparse.Namespace,
    cred: Any = None,
    claim: bool = False,
    on_hello: Callable[[Any, str], None] | None = None,
) -> Iterator[Any]:
    """Open the port, say HELLO, and (with a credential) authenticate. Yields the client."""
    from provisioning import ports
    from provisioning.console import ServiceClient
    from provisioning.transport import Transport

    port = ports.choose(args.port)
    link = Transport(port, timeout=args.timeout, retries=args.retries)
    try:
        client = ServiceClient(link)
        ident = client.hello()
        if on_hello:
            on_hello(ident, port)
        if cred is not None:
            if ident.state == "blank" and not claim:
                raise CliError(
                    "gate %d on %s is blank (never provisioned)" % (ident.device_id, port),
                    "provision it first: faregate provision --site SITE.toml",
                    EXIT_FAILED,
                )
            if ident.anchor_id and ident.anchor_id != certs.key_id(cred.anchor):
                raise CliError(
                    "gate %d belongs to operator root %08x; your credential is for %08x"
                    % (ident.device_id, ident.anchor_id, certs.key_id(cred.anchor)),
                    REMEDIES["svc_claimed"],
                    EXIT_AUTH,
                )
            client.authenticate(cred.signer, cred.raw, cred.anchor, claim)
        yield client
    finally:
        link.close()


def now() -> int:
    return int(time.time())


def fmt_time(t: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
