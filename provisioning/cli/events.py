"""What the technician's commands print: lines for people, or JSON lines with --json.

Every JSON line is an object with an "event" field:
    {"event": "step", "n": 3, "of": 10, "step": "device_key", "status": "done", "message": ...}
    {"event": "progress", "step": "deny_list", "done": 40960, "total": 81920}
    {"event": "check", "name": "barrier", "ok": true, "detail": "opened and closed"}
    {"event": "error", "message": ..., "remedy": ..., "exit_code": 3}
    {"event": "result", "ok": true, "command": "device status", "exit_code": 0,
     "message": ..., ...}                          the last line of every command, once
statuses of a step: "done" (changed something), "unchanged" (already so), "skipped", "failed".

Every stream ends with exactly one `result` of that shape, whatever the command (provision,
flash, device ..., keys ..., ports, wallet ..., image ..., decode, sim run, sim device,
backoffice ...; tests/test_json_results.py runs each): `ok`, `command` (the subcommand as typed,
"device reset"), `exit_code` (the command's, protocol/errors.py) and `message` (the text line),
then the command's own fields. A command that fails ends with its `error` event and then a
result with ok false. Fields are values: numbers, booleans, ISO 8601 UTC times ("...Z") or unix
seconds in fields named `*time`/`at`/`until`, never display strings to parse. A listing (the
backoffice's queues, devices, ...; wallet mint's codes; decode's files) prints its rows as they
are, one object per line, before the result (`count` or the command's totals). `with_events`
makes a handler of `cmd(args, events)` that does all this for failures too.
"""

import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from protocol.errors import EXIT_INTERRUPTED, FaregateError

_MARK = {"done": "", "unchanged": "", "skipped": "", "failed": "FAILED: "}


def command_name(args: Any) -> str:
    """The subcommand as typed: "flash", "device reset", "keys show"."""
    group = getattr(args, "command", None) or ""
    sub = getattr(args, group + "_command", None) if group else None
    return "%s %s" % (group, sub) if sub else group


class Events:
    def __init__(self, as_json: bool, out: TextIO | None = None, command: str = "") -> None:
        self.as_json = as_json
        self.out = out or sys.stdout
        self.command = command
        self.finished = False  # the one result event was printed
        self._last_pct: dict[str, int] = {}

    @classmethod
    def for_args(cls, args: Any) -> "Events":
        """The events of the command `args` runs (its --json flag, its name)."""
        return cls(bool(getattr(args, "json", False)), command=command_name(args))

    def emit(self, obj: dict[str, Any]) -> None:
        print(json.dumps(obj, sort_keys=True), file=self.out, flush=True)

    def say(self, text: str) -> None:
        if not self.as_json:
            print(text, file=self.out, flush=True)

    def step(self, n: int, of: int, step: str, status: str, message: str, **data: Any) -> None:
        if self.as_json:
            self.emit(
                dict(data, event="step", n=n, of=of, step=step, status=status, message=message)
            )
        else:
            label = step.replace("_", " ")
            self.say("[%2d/%d] %-12s %s%s" % (n, of, label, _MARK.get(status, ""), message))

    def progress(self, step: str, done: int, total: int) -> None:
        pct = 100 * done // total if total else 100
        if pct // 10 == self._last_pct.get(step, -1) // 10 and done < total:
            return  # every 10%
        self._last_pct[step] = pct
        if self.as_json:
            self.emit({"event": "progress", "step": step, "done": done, "total": total})
        elif self.out.isatty():
            end = "\n" if done >= total else "\r"
            print("              %3d%% of %d bytes" % (pct, total), end=end, file=self.out)

    def check(self, name: str, ok: bool, detail: str) -> None:
        if self.as_json:
            self.emit({"event": "check", "name": name, "ok": ok, "detail": detail})
        else:
            self.say("              %-8s %s  %s" % (name, "ok  " if ok else "FAIL", detail))

    def result(self, ok: bool, message: str, exit_code: int | None = None, **data: Any) -> None:
        """The command's last line (once: a second call is ignored)."""
        if self.finished:
            return
        self.finished = True
        if exit_code is None:
            exit_code = 0 if ok else 1
        if self.as_json:
            self.emit(
                dict(
                    data,
                    event="result",
                    ok=ok,
                    command=self.command,
                    exit_code=exit_code,
                    message=message,
                )
            )
        elif message:
            self.say(message)

    def error(self, message: str, remedy: str, exit_code: int, **data: Any) -> None:
        """A failure: the error event, then the closing result (ok false, with `data`)."""
        if self.as_json:
            self.emit(
                {"event": "error", "message": message, "remedy": remedy, "exit_code": exit_code}
            )
            if not self.finished:
                self.result(False, message, exit_code=exit_code, remedy=remedy, **data)


def run(events: Events, fn: Callable[[], int]) -> int:
    """Run a command body; a FaregateError (which carries its message, remedy and exit code)
    also becomes a JSON error event and the closing result (with the error's `result_fields`,
    if it has them) before `faregate` prints it as one line; so does Ctrl-C (130)."""
    try:
        return fn()
    except FaregateError as e:
        events.error(
            e.message or e.reason, e.remedy, e.exit_code, **getattr(e, "result_fields", {})
        )
        raise
    except KeyboardInterrupt:
        events.error("interrupted", "run the same command again", EXIT_INTERRUPTED)
        raise


def with_events(cmd: Callable[[Any, Events], int]) -> Callable[[Any], int]:
    """`cmd(args, events)` as a command's handler: it gets the command's Events, and a failure
    ends a --json stream too (the error event, then the result with ok false)."""

    def handler(args: Any) -> int:
        events = Events.for_args(args)
        return run(events, lambda: int(cmd(args, events) or 0))

    return handler
