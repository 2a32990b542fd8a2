"""What every command that talks to a gate shares: the port and credential options, opening an
authenticated session, and a JSON error event for every failure.

Exit codes (carried by the errors, protocol/errors.py): 2 bad arguments, site file or
credential files; 3 port or gate not found, not answering, unplugged, or the wrong gate; 4 the
gate refused who we are (or its own identity did not check out); 1 the gate refused what we
asked, or a check failed; 130 interrupted (Ctrl-C).

`--baud` sets the line speed of a real serial port (default 115200, what a gate's service
console runs at); a simulated gate's pty takes any.
"""

import argparse
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from protocol import certs
from provisioning.cli.events import Events, run  # noqa: F401  (run: for the commands here)
from provisioning.cli.main import EXIT_AUTH, EXIT_FAILED, CliError

CRED_ENV = "FAREGATE_CRED"


def add_port_args(p: argparse.ArgumentParser, cred: bool = True) -> None:
    p.add_argument(
        "--port",
        default=None,
        help="serial port of the gate (/dev/ttyUSB0, a simulator's pty). Default: "
        "$FAREGATE_PORT, else the one USB serial adapter or simulated gate found; with "
        "none or several, the command stops and lists them",
    )
    add_baud_arg(p)
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


def add_baud_arg(p: argparse.ArgumentParser) -> None:
    from provisioning.transport import DEFAULT_BAUD

    p.add_argument(
        "--baud",
        type=int,
        default=DEFAULT_BAUD,
        help="line speed of the serial port in bit/s (default %(default)s, the gate's)",
    )


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


def open_link(args: argparse.Namespace, port: str, **kw: Any) -> Any:
    """A Transport on `port` with the command's --baud, --timeout and --retries."""
    from provisioning.transport import DEFAULT_BAUD, Transport

    opts = {
        "baudrate": getattr(args, "baud", DEFAULT_BAUD),
        "timeout": args.timeout,
        "retries": args.retries,
    }
    opts.update(kw)
    return Transport(port, **opts)


@contextlib.contextmanager
def session(
    args: argparse.Namespace,
    cred: Any = None,
    claim: bool = False,
    on_hello: Callable[[Any, str], None] | None = None,
) -> Iterator[Any]:
    """Open the port, say HELLO, and (with a credential) authenticate. Yields the client."""
    from provisioning import ports
    from provisioning.console import REMEDIES, ServiceClient

    port = ports.choose(args.port, identify=lambda p: probe(args, p))
    link = open_link(args, port)
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


def probe(args: argparse.Namespace, port: str) -> Any:
    """Who is on `port`: the gate's unauthenticated HELLO answer (provisioning.console
    Identity), or the TransportError that says why nobody answered. One short try."""
    from provisioning.console import ServiceClient
    from provisioning.errors import ProvisioningError

    try:
        link = open_link(args, port, timeout=min(args.timeout, 1.0), retries=0)
    except ProvisioningError as e:
        return e
    try:
        return ServiceClient(link).hello()
    except ProvisioningError as e:
        return e
    finally:
        link.close()


def now() -> int:
    return int(time.time())


def fmt_time(t: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
