"""`faregate backoffice ...`: run and inspect the back office."""

import argparse
import asyncio
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("backoffice", help="run and inspect the back office", description=__doc__)
    s = p.add_subparsers(dest="bo_command", metavar="SUBCOMMAND")
    s.required = True
    sv = s.add_parser(
        "serve",
        help="accept gate uploads over TCP into a SQLite file",
        description="Listen for gates' sync connections and store their journal "
        "batches in SQLite (WAL, synchronous=FULL); acknowledge only after commit.",
    )
    sv.add_argument("--db", default="backoffice.sqlite", help="SQLite file (default %(default)s)")
    sv.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    sv.add_argument("--port", type=int, default=7700, help="TCP port (default %(default)s)")
    sv.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from host_sim import backoffice

    async def main() -> None:
        store = backoffice.Store(args.db)
        server = await backoffice.serve(store, args.host, args.port)
        print(
            "backoffice: listening on %s:%d, storing into %s" % (args.host, args.port, args.db),
            flush=True,
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())
    return 0
