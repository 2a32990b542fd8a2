"""`faregate`: one command, with a subcommand per job.

Each subcommand group lives in the module that owns the job and registers itself here through
`register(subparsers)`; the table below is the whole list. Modules import heavy libraries
(OpenCV, matplotlib) inside their handlers so `faregate --help` stays fast.

Every error faregate raises on purpose (protocol.errors.FaregateError, whose docstring draws
the tree) carries its exit code and remedy; `main` prints it as one line and returns its code.
The exit codes, the same for every subcommand, are listed once, in protocol/errors.py: 0 ok,
1 failure found, 2 usage, 3 device/port, 4 auth refused, 5 internal error (a bug), 130
interrupted, 141 the output's reader went away.
"""

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from protocol.errors import (  # noqa: F401  (the command's modules take them from here)
    EXIT_AUTH,
    EXIT_DEVICE,
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SIGPIPE,
    EXIT_USAGE,
    FaregateError,
)

# what every command's exit-code list ends with (protocol/errors.py)
EXIT_TAIL = "130 interrupted (Ctrl-C), 141 its output's reader went away (| head)"

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
    ("ports", "provisioning.cli.ports"),
    ("decode", "provisioning.cli.decode"),
    ("settle", "provisioning.cli.settle"),
]


class CliError(FaregateError):
    """A fatal error of the command itself (a bad argument, a missing file): one line saying
    what went wrong and what to do."""

    reason = "cli"

    def __init__(
        self,
        message: str,
        remedy: str = "",
        exit_code: int = EXIT_FAILED,
        result_fields: dict | None = None,
    ) -> None:
        super().__init__(message, remedy=remedy, exit_code=exit_code)
        self.result_fields = result_fields or {}  # for the --json result event (values)


def error_line(e: FaregateError) -> str:
    """`faregate: error: MESSAGE (fix: REMEDY)`: how the command reports any FaregateError."""
    return "faregate: error: %s%s" % (
        e.message or e.reason,
        " (fix: %s)" % e.remedy if e.remedy else "",
    )


def report(e: FaregateError) -> None:
    """Print `e` on stderr as one line; an error that gathers several (`errors`) prints the
    others first, one line each."""
    for other in getattr(e, "errors", [])[:-1]:
        print(error_line(other), file=sys.stderr)
    print(error_line(e), file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faregate",
        description="faregate: offline ride-code gates, their simulator and the operator's tools.",
        epilog="Exit codes: 0 ok, 1 failure found, 2 usage, 3 device/port, 4 auth refused, "
        "5 internal error, %s. `faregate CMD --help` for each command." % EXIT_TAIL,
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
    except FaregateError as e:
        report(e)
        return e.exit_code
    except KeyboardInterrupt:
        print("faregate: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
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
