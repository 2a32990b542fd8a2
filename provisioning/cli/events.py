"""What the technician's commands print: lines for people, or JSON lines with --json.

Every JSON line is an object with an "event" field:
    {"event": "step", "n": 3, "of": 10, "step": "device_key", "status": "done", "message": ...}
    {"event": "progress", "step": "deny_list", "done": 40960, "total": 81920}
    {"event": "check", "name": "barrier", "ok": true, "detail": "opened and closed"}
    {"event": "result", "ok": true, ...}           the last line of a command that finished
    {"event": "error", "message": ..., "remedy": ..., "exit_code": 3}
statuses of a step: "done" (changed something), "unchanged" (already so), "skipped", "failed".
"""

import json
import sys
from typing import Any, TextIO

_MARK = {"done": "", "unchanged": "", "skipped": "", "failed": "FAILED: "}


class Events:
    def __init__(self, as_json: bool, out: TextIO | None = None) -> None:
        self.as_json = as_json
        self.out = out or sys.stdout
        self._last_pct: dict[str, int] = {}

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

    def result(self, ok: bool, message: str, **data: Any) -> None:
        if self.as_json:
            self.emit(dict(data, event="result", ok=ok, message=message))
        else:
            self.say(message)

    def error(self, message: str, remedy: str, exit_code: int) -> None:
        if self.as_json:
            self.emit(
                {"event": "error", "message": message, "remedy": remedy, "exit_code": exit_code}
            )
