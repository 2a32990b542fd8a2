"""`faregate backoffice serve` that freezes at a chosen BATCH, for the failover test to kill there.

    python -m tests.frontend_proc MARKER NTH PHASE -- backoffice serve --db ... --port 0 ...

The real command (provisioning.cli.main) runs unchanged, except that the NTH BATCH frame any
gate sends it (with or without the group commit) stops the server where PHASE says:

    before   the BATCH arrived and nothing of it is stored (a front end killed mid-batch)
    after    its records are committed and its ACK is made but not sent (killed between
             commit and acknowledgement: the gate still holds what the database holds)

There it appends one line "held BATCH seq FIRST..LAST PHASE" to the file MARKER and sleeps
(the whole event loop, as a process stuck in a write would), until the test SIGKILLs it.
"""

import sys
import time

from host_sim.backoffice import sync_server
from protocol import messages as m
from protocol import records


def hold(marker: str, nth: int, phase: str) -> None:
    original = sync_server.HostSession._on_event
    seen = [0]

    def on_event(self, ev, out):  # type: ignore[no-untyped-def]
        if ev.TYPE != m.BATCH:
            return original(self, ev, out)
        seen[0] += 1
        if seen[0] != nth:
            return original(self, ev, out)
        first = records.decode(ev.records[0]).seq
        last = records.decode(ev.records[-1]).seq
        if phase == "after":
            original(self, ev, out)
        with open(marker, "a") as f:
            f.write("held BATCH seq %d..%d %s\n" % (first, last, phase))
        while True:
            time.sleep(3600)

    queue_batch = sync_server.HostSession._queue_batch

    def queued(self, ev):  # type: ignore[no-untyped-def]
        """The same hold on the group commit's path (serve's default)."""
        seen[0] += 1
        if seen[0] != nth:
            return queue_batch(self, ev)
        first = records.decode(ev.records[0]).seq
        last = records.decode(ev.records[-1]).seq
        if phase == "after":
            queue_batch(self, ev).result(30)  # committed; its ACK is never sent
        with open(marker, "a") as f:
            f.write("held BATCH seq %d..%d %s\n" % (first, last, phase))
        while True:
            time.sleep(3600)

    sync_server.HostSession._on_event = on_event  # type: ignore[method-assign]
    sync_server.HostSession._queue_batch = queued  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    marker, nth, phase, sep, *rest = argv
    if sep != "--" or phase not in ("before", "after"):
        raise SystemExit(__doc__)
    hold(marker, int(nth), phase)
    from provisioning.cli.main import main as faregate

    return faregate(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
