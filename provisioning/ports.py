"""Which serial port is the gate on? `--port`, else FAREGATE_PORT, else auto-detection that
refuses to guess.

Candidates are USB serial adapters (pyserial's list_ports: ports with a USB vendor id, or named
ttyUSB*/ttyACM*) plus simulated gates: each `faregate sim device` puts a symlink
`gate-<device_id>-<pid>` to its pty in the simulator directory (FAREGATE_SIM_DIR, default
`/tmp/faregate-sim-<uid>`) and removes it when it stops. A link whose process is gone is stale
and is removed. Exactly one candidate is used; none or several is an error listing them;
given `identify` (a port -> its gate's HELLO identity, or the error that says why none
answered: provisioning.cli.connect.probe), the several-gates error names the gate on each.
`faregate ports` (provisioning/cli/ports.py) lists the candidates the same way.
"""

import os
from collections.abc import Callable, Iterable
from typing import Any

from protocol.errors import EXIT_DEVICE
from provisioning.errors import ProvisioningError

PORT_ENV = "FAREGATE_PORT"
SIM_DIR_ENV = "FAREGATE_SIM_DIR"


class PortChoiceError(ProvisioningError):
    """No gate to talk to, or several and no --port: `candidates` lists them."""

    reason = "port_choice"
    exit_code = EXIT_DEVICE

    def __init__(self, message: str, remedy: str, candidates: list[str]) -> None:
        super().__init__(message, remedy=remedy)
        self.candidates = candidates


def sim_dir() -> str:
    return os.environ.get(SIM_DIR_ENV) or "/tmp/faregate-sim-%d" % os.getuid()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is gone too
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def sim_ports(directory: str | None = None) -> list[str]:
    """Live simulated gates' symlinks; stale ones (their simulator is gone) are removed."""
    directory = directory or sim_dir()
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        path = os.path.join(directory, name)
        parts = name.split("-")
        if not name.startswith("gate-") or not parts[-1].isdigit():
            continue
        if _alive(int(parts[-1])) and os.path.exists(path):
            out.append(path)
        else:
            try:
                os.remove(path)
            except OSError:
                pass
    return out


def usb_ports(lister: Callable[[], Iterable[Any]] | None = None) -> list[str]:
    """USB serial adapters (what a technician's cable shows up as)."""
    if lister is None:
        from serial.tools import list_ports

        lister = list_ports.comports
    out = []
    for p in lister():
        name = os.path.basename(p.device)
        if getattr(p, "vid", None) is not None or name.startswith(("ttyUSB", "ttyACM")):
            out.append(p.device)
    return sorted(out)


def candidates(
    lister: Callable[[], Iterable[Any]] | None = None, directory: str | None = None
) -> list[str]:
    """Every port a gate may be on: USB serial adapters, then live simulated gates."""
    return usb_ports(lister) + sim_ports(directory or sim_dir())


def describe(ident: Any) -> str:
    """One candidate for people: "gate 1017 (blank)", or why nothing answered on it."""
    if isinstance(ident, Exception):
        return "no gate answering (%s)" % getattr(ident, "reason", type(ident).__name__)
    return "gate %d (%s)" % (ident.device_id, ident.state)


def choose(
    port: str | None,
    lister: Callable[[], Iterable[Any]] | None = None,
    directory: str | None = None,
    identify: Callable[[str], Any] | None = None,
) -> str:
    if port:
        return port
    if os.environ.get(PORT_ENV):
        return os.environ[PORT_ENV]
    directory = directory or sim_dir()
    found = candidates(lister, directory)
    if len(found) == 1:
        return found[0]
    if not found:
        raise PortChoiceError(
            "no gate found: no USB serial adapter and no simulated gate (%s)" % directory,
            "plug in the service cable (or start `faregate sim device`), or pass --port",
            [],
        )
    named = ["%s: %s" % (p, describe(identify(p))) for p in found] if identify else found
    raise PortChoiceError(
        "%d possible gates: %s; not guessing" % (len(found), ", ".join(named)),
        "pass --port with one of them (`faregate ports` lists them)",
        found,
    )
