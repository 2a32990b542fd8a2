"""What every `faregate` command group shares, so each group says only what is its own.

    Group       a command group's parser (`faregate keys ...`): its --help shows the module's
                docstring as written, a subcommand is required, and `add` makes a subcommand
                with the group's common options (--db, --state, --port, ...) and its handler
    add_json    the --json flag
    read_file   read a file the user named, or a one-line CliError (exit 2)
    write_file  write a file the command makes, atomically and durably, creating its directory
    need_dir    a directory the user named must exist, or a CliError that says how to make it
    load_signer an operator key (root.key, release.key, sync.key, ...) as a signer (a bad
                file raises operator_keys.KeyFileError, exit 2)

Handlers import heavy modules themselves; this module imports only what `faregate --help` needs.
"""

import argparse
import os
from collections.abc import Callable
from typing import Any

from provisioning.cli.main import EXIT_USAGE, CliError


class Group:
    """One command group: `faregate NAME SUBCOMMAND ...`."""

    def __init__(
        self,
        sub: Any,
        name: str,
        help: str,
        description: str | None,
        epilog: str | None = None,
        common: Callable[[argparse.ArgumentParser], None] | None = None,
    ) -> None:
        self.parser = sub.add_parser(
            name,
            help=help,
            description=description,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        self.subparsers = self.parser.add_subparsers(dest=name + "_command", metavar="SUBCOMMAND")
        self.subparsers.required = True
        self.epilog = epilog
        self.common = common

    def add(
        self,
        name: str,
        help: str,
        func: Callable[[argparse.Namespace], int],
        description: str | None = None,
        common: bool = True,
        **parser_kw: Any,
    ) -> argparse.ArgumentParser:
        """A subcommand running `func`, with the group's common options unless common=False.
        Its description is `description`, else its one-line help; `parser_kw` goes to
        argparse (formatter_class=argparse.RawDescriptionHelpFormatter for a laid-out text)."""
        p = self.subparsers.add_parser(
            name, help=help, description=description or help, epilog=self.epilog, **parser_kw
        )
        if common and self.common is not None:
            self.common(p)
        p.set_defaults(func=func)
        return p


def add_json(p: argparse.ArgumentParser, help: str = "print JSON lines (one object per line)"):
    p.add_argument("--json", action="store_true", help=help)


def read_file(path: str, what: str = "") -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CliError(
            "cannot read %s%s: %s" % (what + " " if what else "", path, e.strerror or e),
            "check the path",
            EXIT_USAGE,
        ) from None


def write_file(path: str, data: bytes) -> None:
    from firmware import platform

    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    platform.write_atomic(path, data)


def need_dir(path: str, what: str, remedy: str) -> None:
    if not os.path.isdir(path):
        raise CliError("%s %s not found" % (what, path), remedy, EXIT_USAGE)


def load_signer(path: str, what: str = "key") -> Any:
    """The signer of a private key file of `faregate keys init` (FAREGATE_PASSPHRASE if it is
    encrypted); a missing file says which command makes it."""
    from provisioning import operator_keys

    if not os.path.exists(path):
        raise CliError(
            "%s %s not found" % (what, path),
            "make the operator's keys with `faregate keys init --dir %s` (it adds what is "
            "missing), or give the right path" % (os.path.dirname(path) or "."),
            EXIT_USAGE,
        )
    return operator_keys.load_signer(path)
