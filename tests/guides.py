"""Keep docs/technician-guide.md honest: run every command in it and compare the output.

The guide's ```console blocks hold `$ command` lines, each followed by what it prints (stdout
and stderr together; a failing command ends with `[exit N]`). A `<!-- file: NAME -->` line
before a fenced block writes that block to NAME first. `$ cmd &` starts a background job (a
simulated gate in "another terminal"): its expected output is its first lines. `$ kill %N`
stops the N-th background job; `$ export NAME=VALUE` sets a variable for later commands.

    python -m tests.technician_guide --write     regenerate the outputs in the guide
    tests/test_technician_guide.py               fails when the tools print something else

Outputs are compared after masking what changes from run to run: keys and digests (hex),
times and dates, pty numbers, process ids, free space.
"""

import os
import re
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDE = os.path.join(ROOT, "docs", "technician-guide.md")
SHOWN_SIM_DIR = "/tmp/faregate-sim-1000"

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


def mask(text: str) -> str:
    for pattern, repl in _MASKS:
        text = pattern.sub(repl, text)
    return text


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
        self.env["PATH"] = bindir + os.pathsep + self.env["PATH"]
        self.env["FAREGATE_SIM_DIR"] = self.sim_dir
        self.env["COLUMNS"] = "100"
        self.jobs: list[tuple[subprocess.Popen, str]] = []

    def shown(self, text: str) -> str:
        return text.replace(self.sim_dir, SHOWN_SIM_DIR).replace(self.sandbox + "/", "")

    def run(self, cmd: str, expected_lines: int) -> str:
        for proc, _out in self.jobs:
            proc.poll()  # reap a job that exited by itself, as an interactive shell does
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
        p = subprocess.run(
            ["bash", "-c", cmd],
            cwd=self.sandbox,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
        )
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
        want = want or 2
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with open(out_path) as f:
                lines = f.read().splitlines()
            if len(lines) >= want:
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


def process(text: str, sandbox: str, write: bool) -> tuple[str, list[str]]:
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
            if line.startswith("```") and pending_file:
                j = i + 1
                while not lines[j].startswith("```"):
                    j += 1
                path = os.path.join(sandbox, pending_file)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    f.write("\n".join(lines[i + 1 : j]) + "\n")
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
                    if mask(got) != mask(expected):
                        problems.append(
                            "line %d: `%s` printed:\n%s\n--- the guide says:\n%s"
                            % (start, cmd, got, expected)
                        )
                    out.append("$ " + cmd)
                    if got:
                        out += (got if write else expected).split("\n")
                out.append(lines[block_end])
                i = block_end + 1
                continue
            out.append(line)
            i += 1
    finally:
        runner.close()
    return "\n".join(out), problems


def main() -> int:
    import tempfile

    write = "--write" in sys.argv
    with open(GUIDE) as f:
        text = f.read()
    with tempfile.TemporaryDirectory(prefix="fg-guide-") as sandbox:
        new, problems = process(text, sandbox, write)
    if write:
        with open(GUIDE, "w") as f:
            f.write(new)
        print("wrote %s" % GUIDE)
        return 0
    for p in problems:
        print(p, end="\n\n")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
