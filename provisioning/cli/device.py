"""`faregate device ...`: look after one gate over its service port.

identify    who is on the port (no credential needed)
status      state, what is missing, clock, key, certificate, config, lists, unsynced passages,
            the firmware running (version, slot) and the last update
selftest    storage, clock, crypto, scanner (hold up the test card), barrier, sensors
logs        the gate's service log: sessions, changes, refused commands
set-time    set the gate's clock from this laptop (or --time); beyond clock.set_bound_s of
            the gate's anchored time only with the operator root's signature (--root-key)
journal     inspect the passage journal for damage, or repair it (docs/technician-guide.md,
            "A damaged journal"); inspect exits 1 when it finds damage
reset       factory reset; refused while unsynced passages exist, unless they are
            exported first: --export FILE --force. A gate that is not blank is wiped only once
            confirmed: typing its device id at the prompt, or --yes (needed when there is no
            terminal to ask on: scripts, CI, pipes)
test-card   write the QR test card the self-test reads (PNG; no gate needed)
"""

import argparse
import hashlib
import os
from typing import Any

from provisioning.cli.kit import Group, write_file
from provisioning.cli.main import EXIT_FAILED, EXIT_TAIL, EXIT_USAGE, CliError

EXIT_HELP = (
    "Exit codes: 0 ok, 1 the gate refused the request or a check failed, 2 bad arguments or "
    "credential files (or a reset not confirmed), 3 port or gate problem (not found, not "
    "answering, unplugged), 4 the gate refused the credential, 5 a bug (report it), %s." % EXIT_TAIL
)


def register(sub: Any) -> None:
    from provisioning.cli.connect import add_port_args

    g = Group(
        sub,
        "device",
        "status, self-test, logs, clock and reset of one gate over its service port",
        __doc__,
        epilog=EXIT_HELP,
        common=add_port_args,
    )

    def cmd(name: str, help_: str, func: Any, cred: bool = True) -> argparse.ArgumentParser:
        c = g.add(name, help_, func, help_ + ".", common=cred)
        if not cred:
            add_port_args(c, cred=False)
        return c

    cmd("identify", "say which gate is on the port and its state", cmd_identify, cred=False)
    cmd("status", "show the gate's state and what it still misses", cmd_status)
    c = cmd("selftest", "run the gate's self-test (hold the test card to the reader)", cmd_selftest)
    c.add_argument(
        "--scan-timeout", type=float, default=15, help="seconds the gate waits for the card"
    )
    c = cmd("logs", "print the gate's service log", cmd_logs)
    c.add_argument("--since", type=int, default=1, help="first entry number (default 1)")
    c = cmd("journal", "inspect or repair the gate's passage journal", cmd_journal)
    c.add_argument(
        "action",
        choices=["inspect", "repair"],
        help="inspect: what the journal found when the gate booted (mended copies, lost "
        "records, the acknowledged position); repair: rewrite the damaged segments, lost "
        "records as holes, and journal a journal_repaired event",
    )
    c.add_argument(
        "--seq-floor",
        type=int,
        default=0,
        metavar="SEQ",
        help="repair only: the back office's high seq for this gate (`faregate backoffice "
        "queues`, stored_up_to), needed when the gate cannot vouch for its seq (journal "
        "unverified); new records start after it",
    )
    c = cmd("set-time", "set the gate's clock", cmd_set_time)
    c.add_argument(
        "--time",
        default=None,
        help="ISO 8601 (2026-03-01T08:00:00Z; UTC unless an offset is given) or unix seconds "
        "(default: this laptop's clock)",
    )
    c.add_argument(
        "--root-key",
        default=None,
        metavar="FILE",
        help="operator root private key (operator/root.key; passphrase in FAREGATE_PASSPHRASE) "
        "to sign this time: needed to move the clock further than the gate's clock.set_bound_s "
        "(default 300 s) from its anchored time",
    )
    c = cmd(
        "reset", "factory reset the gate (keeps its device id and journal numbering)", cmd_reset
    )
    c.add_argument(
        "--export",
        default=None,
        metavar="FILE",
        help="first save the unsynced passages to FILE (64-byte records, for the back office)",
    )
    c.add_argument(
        "--force",
        action="store_true",
        help="reset even though unsynced passages exist (needs --export)",
    )
    c.add_argument(
        "--yes",
        action="store_true",
        help="do not ask to type the gate's device id first (required without a terminal)",
    )
    c = g.add(
        "root",
        "install root metadata (a rotation or a binding) or a release on the gate",
        cmd_root,
        "Install FILE on the gate: root metadata (`faregate keys root-init`, `root-rotate` then "
        "`root-sign`) binds a claimed gate to its operator's root in the warehouse (version 1: "
        "a factory reset keeps it, a foreign claim is refused claim_foreign) or rotates it (the "
        "next version: signed by a threshold of the old root keys and of its own; refused "
        "root_threshold, root_rollback, root_expired); a release (`faregate keys release`) lets "
        "the next factory reset forget the binding (refused release_refused). Needs the "
        "provision role.",
    )
    c.add_argument("file", help="a root metadata (.meta) or release (.fgrl) file")
    t = g.add(
        "test-card", "write the self-test's QR test card as a PNG", cmd_test_card, common=False
    )
    t.add_argument("--out", default="test-card.png", help="PNG file (default test-card.png)")
    t.add_argument("--text", default="FGTEST:card-1", help="card text (starts with FGTEST:)")


def _run(args: argparse.Namespace, body: Any, cred: bool = True, on_hello: Any = None) -> int:
    from provisioning.cli import connect
    from provisioning.cli.events import Events

    events = Events.for_args(args)

    def go() -> int:
        credential = connect.load_credential(args, connect.now()) if cred else None
        with connect.session(args, credential, on_hello=on_hello) as client:
            return int(body(client, events) or 0)

    return connect.run(events, go)


def cmd_identify(args: argparse.Namespace) -> int:
    from provisioning.cli.connect import fmt_time

    def body(client: Any, events: Any) -> int:
        d = client.ident.as_dict()
        events.result(
            True,
            "gate %d: %s, %s %s%s%s, clock %s"
            % (
                d["device_id"],
                d["state"],
                d["model"],
                d["firmware"],
                ", named %s" % d["name"] if d["name"] else "",
                ", operator root %s" % d["operator_root"] if d["operator_root"] else "",
                fmt_time(d["time"]) if d["time"] else "unknown",
            ),
            **d,
        )
        return 0

    return _run(args, body, cred=False)


def _key_where(st: dict) -> str:
    """Where the device key is, when not in the file device.key, and what is wrong with it
    (docs/security.md, "Device key in a token"); "" for the usual file key."""
    where = st.get("key_store") or "file"
    out = "" if where == "file" else " (in a %s token)" % where
    if st.get("key_error"):
        out += " - %s" % st["key_error"]
    return out


def cmd_status(args: argparse.Namespace) -> int:
    from provisioning.cli.connect import fmt_time

    def body(client: Any, events: Any) -> int:
        st = client.status()
        if events.as_json:
            events.result(True, st["state"], **st)
            return 0
        cfg = st["config"]
        cert = st["cert"]
        lines = [
            "gate %d (%s %s): %s" % (st["device_id"], st["model"], st["firmware"], st["state"]),
            "  missing:       %s" % (", ".join(st["missing"]) or "nothing"),
            "  clock:         %s%s"
            % (fmt_time(st["time"]), "" if st["clock_set"] else " (never set)"),
            "  operator root: %s%s"
            % (
                st["operator_root"] or "none (blank)",
                ", bound to root metadata version %d" % st["root_version"]
                if st.get("root_version")
                else "",
            ),
            "  device key:    %s%s" % (st["device_key"] or "none", _key_where(st)),
            "  certificate:   %s"
            % (
                "none"
                if not cert
                else "valid until %s%s"
                % (fmt_time(cert["valid_until"])[:10], "" if cert["ok"] else " (NOT valid)")
            ),
            "  config:        %s"
            % (
                "none"
                if not cfg
                else "%s, station %d, lane %d, %s %s"
                % (cfg["name"], cfg["station"], cfg["lane"], cfg["mode"], cfg["direction"])
            ),
        ]
        for name, info in st["lists"].items():
            lines.append(
                "  %-14s %s" % (name + ":", "%d bytes" % info["bytes"] if info else "none")
            )
        if st.get("journal", "ok") != "ok":  # damaged or unverified: a technician's job
            lines.append(
                "  journal:       %s (see `faregate device journal inspect`)" % st["journal"]
            )
        lines += gate_lines(st.get("gate"))
        selftest = st["selftest"]
        lines.append(
            "  self-test:     %s"
            % (
                "never run"
                if not selftest
                else "%s at %s"
                % ("passed" if selftest["passed"] else "FAILED", fmt_time(selftest["at"]))
            )
        )
        lines.append("  unsynced:      %d passages" % st["pending_passages"])
        lines += sync_lines(st)
        lines += firmware_lines(st.get("image"))
        for line in lines:
            events.say(line)
        return 0

    return _run(args, body)


def sync_lines(st: dict[str, Any]) -> list[str]:
    """The gate's sync (firmware/compose/app.py Syncer.state) from its status: where to, the
    last good session, the last failure, what waits. [] for firmware that does not say."""
    from provisioning.cli.connect import fmt_time

    if "sync" not in st:
        return []
    s = st["sync"]
    if s is None:
        return ["  sync:          off (this gate has no sync link)"]
    to = s["host"] or "the back office"
    if s["blocked"]:
        return ["  sync:          not yet: %s" % s["blocked"]]
    last = s["last"]
    lines = [
        "  sync:          %s, %s"
        % (
            to,
            "no session ended well yet"
            if last is None
            else "last at %s: %d records acknowledged%s"
            % (
                fmt_time(last["time"]),
                last["acked"],
                "".join(
                    "; refused %s v%d (%s)" % (kind, v, why) for kind, v, why in last["refused"]
                ),
            ),
        ),
        "  sync queue:    %d records waiting" % s["pending"],
    ]
    err = s["last_error"]
    if err is not None and (s["last_ok"] is None or err["time"] >= s["last_ok"]):
        lines.append(
            "  sync error:    %s at %s: %s (%d in a row)"
            % (err["reason"], fmt_time(err["time"]), err["message"], s["failures"])
        )
    return lines


def gate_lines(gate: dict[str, Any] | None) -> list[str]:
    """The lists in force and the gate loop (firmware.compose.device.Device.report())."""
    from provisioning.cli.connect import fmt_time

    if not gate or "trust" not in gate:
        return []
    t, d = gate["trust"], gate["deny"]
    trust = "no trust list"
    if t["version"]:
        until = fmt_time(t["valid_until"])[:10]
        trust = "trust list v%d (%s, until %s)" % (t["version"], t["state"], until)
    lines = [
        "  in force:      %s, deny list v%d (%d entries)" % (trust, d["version"], d["entries"])
    ]
    state = gate.get("mode_state")
    lines.append("  gate loop:     %s" % ("running, " + state if state else "not running"))
    if gate.get("alarms"):  # damaged stores (docs/sync-protocol.md): only when there are some
        lines.append("  store alarms:  %s" % ", ".join(gate["alarms"]))
    return lines


def firmware_lines(img: dict[str, Any] | None) -> list[str]:
    """The running image and the update state
    (firmware.maintenance.update_agent.UpdateAgent.status())."""
    if not img:
        return ["  firmware:      (this gate reports no image slots)"]
    other = img.get("other_slot") or {}
    lines = [
        "  firmware:      %s in slot %s, %s (security counter %s)"
        % (
            img.get("version"),
            img.get("slot"),
            "ON TRIAL" if img.get("trial") else "confirmed",
            img.get("counter"),
        ),
        "  other slot:    %s: %s%s"
        % (
            other.get("slot"),
            other.get("state"),
            " (%s)" % other["version"] if other.get("version") else "",
        ),
    ]
    staging = img.get("staging")
    if staging:
        lines.append(
            "  transfer:      %d of %d bytes held (run the same flash again to resume)"
            % (staging["held"], staging["len"])
        )
    last = img.get("last")
    if last:
        what = " ".join(
            str(x)
            for x in (
                last.get("event"),
                last.get("version") or "",
                "in slot %s" % last["slot"] if last.get("slot") else "",
                "(%s)" % why_reverted(last) if last.get("reason") else "",
            )
            if x
        )
        lines.append("  last update:   %s" % what)
    return lines


def why_reverted(last: dict[str, Any]) -> str:
    """An update outcome's reason code, and its detail when there is one (what a crashed
    trial raised, or how many boots it spent: firmware/maintenance/boot.py)."""
    reason = str(last.get("reason") or "")
    return "%s: %s" % (reason, last["detail"]) if last.get("detail") else reason


def cmd_selftest(args: argparse.Namespace) -> int:
    from provisioning.cli.connect import now

    def body(client: Any, events: Any) -> int:
        events.say(
            "self-test of gate %d: hold the test card to the reader" % client.ident.device_id
        )
        result = client.selftest(now(), args.scan_timeout + 10)
        for c in result["checks"]:
            events.check(c["name"], c["ok"], c["detail"])
        failed = [c["name"] for c in result["checks"] if not c["ok"]]
        if failed:
            events.say("self-test FAILED: %s" % ", ".join(failed))
            raise CliError(
                "self-test failed: %s" % ", ".join(failed),
                "fix what the failing checks name, then run it again",
                EXIT_FAILED,
                result_fields=result,  # the closing result event carries the checks
            )
        events.result(True, "self-test passed", **result)
        return 0

    return _run(args, body)


def cmd_logs(args: argparse.Namespace) -> int:
    from provisioning.cli.connect import fmt_time

    def body(client: Any, events: Any) -> int:
        entries = client.all_logs(args.since)
        for e in entries:
            if events.as_json:
                events.emit(dict(e, event="log"))
            else:
                extra = " ".join("%s=%s" % (k, e[k]) for k in e if k not in ("i", "t", "ev"))
                events.say("%5d  %s  %-15s %s" % (e["i"], fmt_time(e["t"]), e["ev"], extra))
        events.result(True, "%d entries" % len(entries), count=len(entries))
        return 0

    return _run(args, body)


def journal_lines(rep: dict[str, Any]) -> list[str]:
    """A journal report (firmware/storage/journal.py report) as the lines a technician reads."""
    lost = rep["lost_seqs"]
    seqs = ", ".join("%d" % a if a == b else "%d..%d" % (a, b) for a, b in lost)
    return [
        "journal %s: acknowledged up to seq %d, last seq %d, %d segment(s)%s"
        % (
            rep["state"],
            rep["acked_seq"],
            rep["last_seq"],
            rep["segments"],
            " (%d of the old format)" % rep["old_format_segments"]
            if rep["old_format_segments"]
            else "",
        ),
        "  mended from the second copy: %d record(s)" % rep["mended"],
        "  lost, already at the back office (not needed): %d" % rep["lost_acked"],
        "  lost, not yet uploaded: %d%s"
        % (rep["lost_unacked"], " (seqs %s)" % seqs if seqs else ""),
        "  holes from an earlier repair: %d; torn tail cut at boot: %d bytes"
        % (rep["holes"], rep["torn_bytes_cut"]),
        "  journal.meta: %s; the gate %s vouch for its seq"
        % (rep["meta"], "can" if rep["vouched"] else "CANNOT"),
    ]


def cmd_journal(args: argparse.Namespace) -> int:
    if args.seq_floor < 0:
        raise CliError("--seq-floor must be >= 0", "give the back office's high seq", EXIT_USAGE)
    if args.seq_floor and args.action != "repair":
        raise CliError("--seq-floor is for repair", "drop it, or run journal repair", EXIT_USAGE)

    def body(client: Any, events: Any) -> int:
        gate = client.ident.device_id
        if args.action == "inspect":
            rep = client.journal_inspect()
            for line in journal_lines(rep):
                events.say(line)
            ok = rep["state"] == "ok"
            hint = "" if ok else ": run `faregate device journal repair`"
            events.result(ok, "gate %d journal %s%s" % (gate, rep["state"], hint), **rep)
            return 0 if ok else EXIT_FAILED
        out = client.journal_repair(args.seq_floor)
        for line in journal_lines(out["after"]):
            events.say(line)
        ok = out["after"]["state"] == "ok"
        events.result(
            ok,
            "gate %d journal repaired: %d unacknowledged record(s) were lost%s"
            % (
                gate,
                out["before"]["lost_unacked"],
                ", journal_repaired event at seq %d" % out["event_seq"] if out["event_seq"] else "",
            ),
            **out,
        )
        return 0 if ok else EXIT_FAILED

    return _run(args, body)


def cmd_root(args: argparse.Namespace) -> int:
    from protocol import rootmeta, service

    with open(args.file, "rb") as f:
        data = f.read()
    kinds = {rootmeta.MAGIC: service.BLOB_ROOT, rootmeta.RELEASE_MAGIC: service.BLOB_RELEASE}
    kind = kinds.get(data[:4])
    if kind is None:
        raise CliError(
            "%s is neither root metadata nor a release" % args.file,
            "give the file `faregate keys root-sign` or `keys release` wrote",
            EXIT_USAGE,
        )

    def body(client: Any, events: Any) -> int:
        action = client.put_blob(kind, data)
        version = client.status()["root_version"]
        what = "release" if kind == service.BLOB_RELEASE else "root metadata"
        events.result(
            True,
            "gate %d: %s %s; root metadata version %d"
            % (client.ident.device_id, what, action, version),
            action=action,
            root_version=version,
        )
        return 0

    return _run(args, body)


def cmd_set_time(args: argparse.Namespace) -> int:
    from provisioning.cli.connect import fmt_time, now
    from provisioning.cli.timearg import parse_time

    target = parse_time(args.time, "--time") if args.time else None

    def body(client: Any, events: Any) -> int:
        from provisioning import operator_keys

        root = operator_keys.load_signer(args.root_key) if args.root_key else None
        t = target if target is not None else now()
        out = client.set_time(t, root)
        events.result(
            True,
            "gate %d clock set to %s (was %s)%s"
            % (
                client.ident.device_id,
                fmt_time(out["time"]),
                fmt_time(out["was"]),
                ", signed by the operator root" if out.get("root") else "",
            ),
            **out,
        )
        return 0

    return _run(args, body)


def cmd_reset(args: argparse.Namespace) -> int:
    from protocol import records

    if args.force and not args.export:
        raise CliError(
            "--force needs --export FILE", "the unsynced passages must be saved first", EXIT_USAGE
        )
    if args.export and os.path.exists(args.export):
        raise CliError(
            "%s already exists" % args.export, "choose a new file name for the export", EXIT_USAGE
        )

    def body(client: Any, events: Any) -> int:
        pending = client.status()["pending_passages"]
        digest = bytes(32)
        if pending and args.export:

            def progress(done: int, total: int) -> None:
                events.progress("export", done, total)

            raws = client.export_unsynced(progress)
            for raw in raws:
                records.decode(raw)  # each record must parse before we rely on the file
            data = b"".join(raws)
            write_file(args.export, data)  # durable before the gate drops its copy
            digest = hashlib.sha256(data).digest()
            events.say(
                "exported %d unsynced passages to %s (sha256 %s)"
                % (len(raws), args.export, digest.hex()[:16])
            )
        out = client.reset(bool(args.force), digest)
        out["device_id"] = client.ident.device_id
        events.result(
            True,
            "gate %d reset to blank%s"
            % (
                client.ident.device_id,
                "; %d exported passages dropped from it" % out["exported_dropped"]
                if out["exported_dropped"]
                else "",
            ),
            **out,
        )
        return 0

    return _run(args, body, on_hello=lambda ident, port: confirm_reset(args, ident, port))


def confirm_reset(
    args: argparse.Namespace, ident: Any, port: str, stdin: Any = None, stderr: Any = None
) -> None:
    """Before anything is sent: a gate that is not blank is reset only with --yes, or once the
    technician typed its device id at the prompt. With no terminal to ask on, --yes is needed
    (exit 2); a wrong answer stops the reset (exit 1)."""
    import sys

    stdin = stdin or sys.stdin
    stderr = stderr or sys.stderr
    if args.yes or ident.state == "blank":
        return
    what = "gate %d on %s is %s%s" % (
        ident.device_id,
        port,
        ident.state.replace("_", " "),
        ", named %s" % ident.info["name"] if ident.info.get("name") else "",
    )
    if not (stdin.isatty() and stderr.isatty()):
        raise CliError(
            "%s: a factory reset wipes it, and there is no terminal to confirm on" % what,
            "add --yes to reset it without asking",
            EXIT_USAGE,
        )
    print("%s. A factory reset wipes its keys, certificate, config and lists." % what, file=stderr)
    print("Type its device id (%d) to reset it: " % ident.device_id, end="", file=stderr)
    stderr.flush()
    answer = stdin.readline().strip()
    if answer != str(ident.device_id):
        raise CliError(
            "reset of gate %d not confirmed (typed %r): nothing changed"
            % (ident.device_id, answer),
            "type the device id exactly, or pass --yes",
            EXIT_FAILED,
        )


def cmd_test_card(args: argparse.Namespace) -> int:
    import qrcode

    if not args.text.startswith("FGTEST:"):
        raise CliError(
            "a test card's text starts with FGTEST:", "e.g. --text FGTEST:card-1", EXIT_USAGE
        )
    img = qrcode.make(args.text, error_correction=qrcode.constants.ERROR_CORRECT_M)
    img.save(args.out)
    print(
        "wrote %s (%s): print it and hold it to the reader during the self-test"
        % (args.out, args.text)
    )
    return 0
