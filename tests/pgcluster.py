"""A private PostgreSQL cluster for the test run, and a fresh database for each test.

`Cluster.start()` runs Debian's initdb into a temporary directory (trust authentication, the
unix socket in that directory, no TCP: listen_addresses=''), then pg_ctl start; `stop()` stops
it (pg_ctl stop -m fast) and removes the directory. PostgreSQL refuses to run as root, so as
root (CI) initdb and the server run as the `postgres` user if there is one, else `nobody`,
owning the directory. Each pytest-xdist worker starts its own cluster (a socket directory of
its own); the clients, this process, connect as the cluster's superuser `faregate`.

No test of the PostgreSQL path may skip: when initdb is missing, `start` raises with the fix
(`make setup` installs Debian's postgresql).
"""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import urllib.parse

USER = "faregate"


class ClusterError(RuntimeError):
    pass


def bin_dir() -> str:
    """The newest /usr/lib/postgresql/*/bin with initdb (or initdb's directory on PATH)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[-3]) if p.split("/")[-3].isdigit() else 0,
    )
    if found:
        return os.path.dirname(found[-1])
    on_path = shutil.which("initdb")
    if on_path:
        return os.path.dirname(os.path.realpath(on_path))
    raise ClusterError(
        "PostgreSQL's initdb is missing (looked under /usr/lib/postgresql/*/bin and PATH): the "
        "back office's PostgreSQL tests need it. Fix: `make setup` (as root it installs "
        "Debian's postgresql), or: sudo apt-get install postgresql"
    )


def _run_as() -> list[str]:
    """The argv prefix that runs a command as an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"]
    raise ClusterError("running as root and there is no postgres or nobody user to run as")


class Cluster:
    def __init__(self) -> None:
        self.dir = ""
        self.bin = ""
        self.started = False
        self._n = 0

    def start(self) -> "Cluster":
        self.bin = bin_dir()
        self.dir = tempfile.mkdtemp(prefix="faregate-pg-")
        prefix = _run_as()
        if prefix:
            user = pwd.getpwnam(prefix[2])
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        os.chmod(self.dir, 0o700)
        data = os.path.join(self.dir, "data")
        self._cmd(
            prefix
            + [os.path.join(self.bin, "initdb"), "-D", data, "-A", "trust", "-U", USER, "-E"]
            + ["UTF8", "--no-sync", "--no-instructions"]
        )
        opts = "-k %s -c listen_addresses='' -c max_connections=200" % self.dir
        self._cmd(
            prefix
            + [os.path.join(self.bin, "pg_ctl"), "-D", data, "-l", os.path.join(self.dir, "log")]
            + ["-o", opts, "-w", "-t", "60", "start"]
        )
        self.started = True
        return self

    def _cmd(self, argv: list[str]) -> None:
        p = subprocess.run(argv, capture_output=True, text=True, cwd=self.dir)
        if p.returncode:
            log = os.path.join(self.dir, "log")
            tail = open(log).read()[-2000:] if os.path.exists(log) else ""
            raise ClusterError(
                "%s failed (%d): %s%s\n%s"
                % (argv[len(_run_as())], p.returncode, p.stdout, p.stderr, tail)
            )

    def url(self, dbname: str = "postgres") -> str:
        return "postgresql://%s@/%s?host=%s" % (USER, dbname, urllib.parse.quote(self.dir, safe=""))

    def create_database(self) -> tuple[str, str]:
        """A new empty database: (name, URL)."""
        import psycopg

        self._n += 1
        name = "t%d_%d" % (os.getpid(), self._n)
        with psycopg.connect(self.url(), autocommit=True) as c:
            c.execute('CREATE DATABASE "%s" TEMPLATE template0' % name)
        return name, self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as c:
            c.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)

    def stop(self) -> None:
        if self.started:
            self.started = False
            subprocess.run(
                _run_as()
                + [os.path.join(self.bin, "pg_ctl"), "-D", os.path.join(self.dir, "data")]
                + ["-m", "fast", "-w", "stop"],
                capture_output=True,
                cwd=self.dir,
            )
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = ""
