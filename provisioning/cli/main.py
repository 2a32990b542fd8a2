"""`faregate`: one command, with a subcommand per job.

Each subcommand group lives in the module that owns the job and registers itself here through
`register(subparsers)`; the table below is the whole list. Modules import heavy libraries
(OpenCV, matplotlib) inside their handlers so `faregate --help` stays fast.

Exit codes (the same for every subcommand):
    0  success
    1  the job ran and found a failure (a code refused by `verify`, an invariant broken by a
       simulation, a device self-test failing)
    2  usage: bad arguments or a bad input file
    3  a device or port problem (not found, several candidates, not answering)
    4  authentication or signature refused
    5  internal error (a bug: please report it with the command line)
    130 interrupted (Ctrl-C); 141 the output's reader went away (`| head`), as for SIGPIPE
"""

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DEVICE = 3
EXIT_AUTH = 4
EXIT_INTERNAL = 5
EXIT_SIGPIPE = 141

# (subcommand group, module that registers it)
COMMANDS = [
    ("sim", "provisioning.cli.sim"),
    ("backoffice", "provisioning.cli.backoffice"),
    ("wallet", "provisioning.cli.wallet"),
    ("verify", "provisioning.cli.verify"),
    ("provision", "provisioning.cli.provision"),
    ("device", "provisioning.cli.device"),
    ("keys", "provisioning.cli.keys"),
    ("image", "provisioning.cli.image"),
    ("flash", "provisioning.cli.flash"),
    ("decode", "provisioning.cli.decode"),
]


class CliError(Exception):
    """A fatal error for the user: one line saying what went wrong and what to do."""

    def __init__(self, message: str, remedy: str = "", exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy
        self.exit_code = exit_code

    def line(self) -> str:
        return "faregate: error: %s%s" % (
            self.message,
            " (fix: %s)" % self.remedy if self.remedy else "",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faregate",
        description="faregate: offline ride-code gates, their simulator and the operator's tools.",
        epilog="Exit codes: 0 ok, 1 failure found, 2 usage, 3 device/port, 4 auth refused, "
        "5 internal error. `faregate CMD --help` for each command.",
    )
    parser.add_argument("--version", action="version", version="faregate 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for _name, module in COMMANDS:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as e:
        print(e.line(), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("faregate: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped early (`faregate ... | head`): not a bug
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return EXIT_SIGPIPE
    except Exception as e:  # a bug: keep the traceback for the report, end with one line
        import traceback

        traceback.print_exc()
        print(
            "faregate: internal error: %r (fix: report it with the command line above)" % (e,),
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
