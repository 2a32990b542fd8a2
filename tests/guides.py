"""Keep the guides in docs/ honest: run every command in them and compare the output.

A guide's ```console blocks hold `$ command` lines, each followed by what it prints (stdout
and stderr together; a failing command ends with `[exit N]`). A `<!-- file: NAME -->` line
before a fenced block writes that block to NAME first. `$ cmd &` starts a background job (a
simulated gate or the back office in "another terminal"): its expected output is its first
lines. `$ kill %N` stops the N-th background job; `$ export NAME=VALUE` sets a variable for
later commands. `<!-- wait: CMD -->` (invisible in the rendered guide) runs CMD until it
succeeds, for up to a minute: the reader's "a few seconds later" (a gate's next sync).

Commands run in a fresh sandbox directory with `faregate` and the venv's `python` (PYTHONPATH
set to this checkout) on PATH. The back office's port 7700 (and its HTTP port 9108) in commands
and files becomes a free port, shown as 7700 (9108) again, so guides run in parallel.

    python -m tests.guides --write [NAME]     regenerate the outputs of guide NAME (all: none)
    tests/test_technician_guide.py, tests/test_operator_guide.py
                                              fail when the tools print something else

Outputs are compared after masking what changes from run to run: keys and digests (hex),
times and dates, pty numbers, process ids, free space; and per guide what else does (a
benchmark's figures, a simulation's wall time).
"""

import os
import re
import shlex
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOWN_SIM_DIR = "/tmp/faregate-sim-1000"
SHOWN_PORT = "7700"
SHOWN_HTTP_PORT = "9108"  # the back office's /healthz and /metrics
WAIT_S = 60

_MASKS = [
    (re.compile(r"\b[0-9a-f]{8,}\b"), "<hex>"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"), "<time>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), "<time>"),
    (re.compile(r"\d{4}-\d\d-\d\d"), "<date>"),
    (re.compile(r"/dev/pts/\d+"), "/dev/pts/N"),
    (re.compile(r"(gate-\d+)-\d+"), r"\1-PID"),
    (re.compile(r"\d+ MB free"), "N MB free"),
    (re.compile(r"[+-]\d+ s from the laptop"), "N s from the laptop"),
    (re.compile(r"\d+ days (behind|ahead)"), r"N days \1"),
    (re.compile(r"was (within \d+ s|\d+ s (behind|ahead))"), "was N"),
    # firmware images: their size follows the source tree, and so does flashing progress
    (re.compile(r"\d[\d,]* (bytes|files)"), r"N \1"),
    (re.compile(r"0x[0-9a-f]{8}"), "0xN"),
    (re.compile(r"\(\d+ %\)"), "(N %)"),
    (re.compile(r"in [\d.]+ seconds \(effective [\d.]+ kbit/s\)"), "in N seconds (rate)"),
    (re.compile(r"\s+$", re.M), ""),
]

# what else changes from run to run in the operator's guide: the back office's times and
# peers, a simulation's wall-clock figures, a benchmark's measurements (and so its table's
# column widths)
_OPERATOR_MASKS = [
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"), "<time>"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
    (
        re.compile(r"wall time [\d.]+ s for ([\d.]+) simulated hours \(\d+ accepted"),
        r"wall time N s for \1 simulated hours (N accepted",
    ),
    (re.compile(r"took [\d.]+ s"), "took N s"),
    (re.compile(r'"(duration_s|uptime_s)": [\d.]+'), r'"\1": N'),
    (
        re.compile(r"(?m)^(P\d+ .*?)  +[\d.,]+  +(\w+)  +([\d.,]+|None)  +([\d.,]+|None)  +"),
        r"\1 N \2 N N ",
    ),
    (re.compile(r"(?m)^(id|--) .*$"), r"\1 (header)"),
]

# name -> (the guide, masks beyond _MASKS)
GUIDES = {
    "technician": (os.path.join(ROOT, "docs", "technician-guide.md"), []),
    "operator": (os.path.join(ROOT, "docs", "operator-guide.md"), _OPERATOR_MASKS),
}
GUIDE = GUIDES["technician"][0]


def mask(text: str, extra: list | tuple = ()) -> str:
    for pattern, repl in list(extra) + _MASKS:
        text = pattern.sub(repl, text)
    return text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Runner:
    def __init__(self, sandbox: str) -> None:
        self.sandbox = sandbox
        self.sim_dir = os.path.join(sandbox, ".sim")
        bindir = os.path.join(sandbox, ".bin")
        os.makedirs(bindir, exist_ok=True)
        wrapper = os.path.join(bindir, "faregate")
        with open(wrapper, "w") as f:
            f.write(
                '#!/bin/sh\nPYTHONPATH="%s" exec "%s" -m provisioning "$@"\n'
                % (ROOT, sys.executable)
            )
        os.chmod(wrapper, 0o755)
        self.env = dict(os.environ)
        for k in ("FAREGATE_PORT", "FAREGATE_CRED", "FAREGATE_PASSPHRASE"):
            self.env.pop(k, None)
        venv_bin = os.path.dirname(sys.executable)  # `python` for `python -m bench`
        self.env["PATH"] = os.pathsep.join((bindir, venv_bin, self.env["PATH"]))
        self.env["PYTHONPATH"] = ROOT
        self.env["FAREGATE_SIM_DIR"] = self.sim_dir
        self.env["COLUMNS"] = "100"
        self.port = str(free_port())
        self.http_port = self.port
        while self.http_port == self.port:
            self.http_port = str(free_port())
        self.jobs: list[tuple[subprocess.Popen, str]] = []

    def real(self, text: str) -> str:
        """A command or file of the guide as it runs here: on this sandbox's free ports."""
        text = re.sub(r"\b%s\b" % SHOWN_HTTP_PORT, self.http_port, text)
        return re.sub(r"\b%s\b" % SHOWN_PORT, self.port, text)

    def shown(self, text: str) -> str:
        text = text.replace(self.sim_dir, SHOWN_SIM_DIR).replace(self.sandbox + "/", "")
        text = re.sub(r"\b%s\b" % self.http_port, SHOWN_HTTP_PORT, text)
        return re.sub(r"\b%s\b" % self.port, SHOWN_PORT, text)

    def _sh(self, cmd: str) -> subprocess.CompletedProcess:
        """Run a shell command in the sandbox: its output (stdout and stderr) and exit code."""
        return subprocess.run(
            ["bash", "-c", cmd],
            cwd=self.sandbox,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
        )

    def wait(self, cmd: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while True:
            p = self._sh(self.real(cmd))
            if p.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError("waited %d s for `%s`: %s" % (WAIT_S, cmd, p.stdout))
            time.sleep(0.2)

    def run(self, cmd: str, expected_lines: int) -> str:
        for proc, _out in self.jobs:
            proc.poll()  # reap a job that exited by itself, as an interactive shell does
        cmd = self.real(cmd)
        if cmd.startswith("export "):
            name, _, value = cmd[len("export ") :].partition("=")
            self.env[name] = shlex.split(value)[0] if value else ""
            return ""
        if cmd.startswith("kill %"):
            proc, _out = self.jobs[int(cmd[len("kill %") :]) - 1]
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
            return ""
        if cmd.endswith(" &"):
            return self._background(cmd[:-2], expected_lines)
        p = self._sh(cmd)
        out = p.stdout
        if p.returncode:
            out += "[exit %d]\n" % p.returncode
        return self.shown(out)

    def _background(self, cmd: str, want: int) -> str:
        out_path = os.path.join(self.sandbox, ".job-%d.out" % (len(self.jobs) + 1))
        out = open(out_path, "w")
        proc = subprocess.Popen(
            ["bash", "-c", "exec " + cmd],
            cwd=self.sandbox,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.jobs.append((proc, out_path))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with open(out_path) as f:
                lines = f.read().splitlines()
            if lines and not want:  # a new job in the guide: what it prints in its first second
                time.sleep(1)
                with open(out_path) as f:
                    want = len(f.read().splitlines())
                continue
            if want and len(lines) >= want:
                return self.shown("\n".join(lines[:want]) + "\n")
            time.sleep(0.05)
        raise AssertionError("background job %r printed %r" % (cmd, lines))

    def close(self) -> None:
        for proc, _out in self.jobs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def process(
    text: str,
    sandbox: str,
    write: bool,
    masks: list | tuple = (),
) -> tuple[str, list[str]]:
    """Run the guide in `sandbox`. Returns the guide with fresh outputs, and the mismatches."""
    runner = Runner(sandbox)
    lines = text.split("\n")
    out: list[str] = []
    problems: list[str] = []
    i = 0
    pending_file = None
    try:
        while i < len(lines):
            line = lines[i]
            m = re.match(r"<!-- file: (\S+) -->", line)
            if m:
                pending_file = m.group(1)
            m = re.match(r"<!-- wait: (.+) -->$", line)
            if m:
                runner.wait(m.group(1))
            if line.startswith("```") and pending_file:
                j = i + 1
                while not lines[j].startswith("```"):
                    j += 1
                path = os.path.join(sandbox, pending_file)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    f.write(runner.real("\n".join(lines[i + 1 : j]) + "\n"))
                out += lines[i : j + 1]
                i = j + 1
                pending_file = None
                continue
            if line.strip() == "```console":
                j = i + 1
                block_end = j
                while not lines[block_end].startswith("```"):
                    block_end += 1
                out.append(line)
                k = j
                while k < block_end:
                    if not lines[k].startswith("$ "):
                        problems.append("line %d: console output without a command" % (k + 1))
                        k += 1
                        continue
                    cmd = lines[k][2:]
                    k += 1
                    start = k
                    while k < block_end and not lines[k].startswith("$ "):
                        k += 1
                    expected = "\n".join(lines[start:k])
                    got = runner.run(cmd, k - start).rstrip("\n")
                    same = mask(got, masks) == mask(expected, masks)
                    if not same:
                        problems.append(
                            "line %d: `%s` printed:\n%s\n--- the guide says:\n%s"
                            % (start, cmd, got, expected)
                        )
                    out.append("$ " + cmd)
                    if got:  # --write keeps what differs only in masked values: small diffs
                        out += (got if write and not same else expected).split("\n")
                out.append(lines[block_end])
                i = block_end + 1
                continue
            out.append(line)
            i += 1
    finally:
        runner.close()
    return "\n".join(out), problems


def check(name: str, sandbox: str, write: bool = False) -> tuple[str, list[str]]:
    """Run guide `name` (a key of GUIDES) in `sandbox`: its fresh text and the mismatches."""
    path, masks = GUIDES[name]
    with open(path) as f:
        text = f.read()
    return process(text, sandbox, write, masks)


def main() -> int:
    import tempfile

    write = "--write" in sys.argv
    names = [a for a in sys.argv[1:] if not a.startswith("--")] or list(GUIDES)
    failed = 0
    for name in names:
        with tempfile.TemporaryDirectory(prefix="fg-guide-") as sandbox:
            new, problems = check(name, sandbox, write)
        path = GUIDES[name][0]
        if write:
            with open(path, "w") as f:
                f.write(new)
            print("wrote %s" % path)
            continue
        for p in problems:
            print(p, end="\n\n")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
