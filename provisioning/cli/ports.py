"""`faregate ports`: the gates this laptop can see, with their device ids.

Every candidate port (USB serial adapters, then simulated gates: provisioning/ports.py) is
asked who it is with the service console's HELLO, which needs no credential and changes nothing
on the gate (mpremote's `connect list`, esptool's chip id per port). A port where nobody
answers is listed with why (busy, not a faregate console, silent). Pass one of the ports to any
command with --port; with one gate in the list, commands find it by themselves.
"""

import argparse
from typing import Any

from provisioning.cli.main import EXIT_DEVICE, EXIT_TAIL

EXIT_HELP = (
    "Exit codes: 0 at least one gate answered, 3 none did (none found, or none answering), "
    "5 a bug (report it), %s." % EXIT_TAIL
)


def register(sub: Any) -> None:
    from provisioning.cli.connect import add_baud_arg

    p = sub.add_parser(
        "ports",
        help="list the gates this laptop can see (port, device id, state, firmware)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXIT_HELP,
    )
    add_baud_arg(p)
    p.add_argument(
        "--timeout", type=float, default=1.0, help="seconds to wait for each port (default 1)"
    )
    p.add_argument("--json", action="store_true", help="print JSON lines (events) instead of text")
    p.set_defaults(func=cmd_ports, retries=0)


def row(port: str, ident: Any) -> dict[str, Any]:
    """One port as values: the gate's identity, or `error` (reason, message) when none."""
    if isinstance(ident, Exception):
        return {
            "port": port,
            "device_id": None,
            "state": None,
            "model": None,
            "firmware": None,
            "name": None,
            "error": {"reason": getattr(ident, "reason", ""), "message": str(ident)},
        }
    d = ident.as_dict()
    return {
        "port": port,
        "device_id": d["device_id"],
        "state": d["state"],
        "model": d["model"],
        "firmware": d["firmware"],
        "name": d["name"] or None,
        "error": None,
    }


def cmd_ports(args: argparse.Namespace) -> int:
    from provisioning import ports
    from provisioning.cli import connect
    from provisioning.cli.events import Events

    events = Events.for_args(args)

    def go() -> int:
        rows = [row(p, connect.probe(args, p)) for p in ports.candidates()]
        gates = [r for r in rows if r["device_id"] is not None]
        # the port last: its length varies, the other columns line up
        table = [["gate", "state", "model", "firmware", "name", "port"]]
        for r in rows:
            if events.as_json:
                events.emit(dict(r, event="port"))
            elif r["error"]:
                why = "no gate answering (%s)" % r["error"]["reason"]
                table.append(["-", why, "", "", "", r["port"]])
            else:
                table.append(
                    [
                        str(r["device_id"]),
                        r["state"],
                        r["model"] or "-",
                        r["firmware"] or "-",
                        r["name"] or "-",
                        r["port"],
                    ]
                )
        if len(table) > 1:
            widths = [max(len(t[i]) for t in table if t[0] != "-") for i in range(5)]
            for t in table:
                if t[0] == "-":
                    events.say("-     %s  %s" % (t[1], t[5]))
                else:
                    events.say(
                        "  ".join(c.ljust(w) for c, w in zip(t, widths, strict=False)) + "  " + t[5]
                    )
        if not gates:
            events.result(
                False,
                "no gate found: %d port(s) checked, none answering as a faregate gate" % len(rows),
                exit_code=EXIT_DEVICE,
                ports=len(rows),
                gates=0,
            )
            return EXIT_DEVICE
        events.result(
            True,
            "%d gate(s) on %d port(s)" % (len(gates), len(rows)),
            ports=len(rows),
            gates=len(gates),
            device_ids=[r["device_id"] for r in gates],
        )
        return 0

    return connect.run(events, go)
