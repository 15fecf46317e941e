"""A throwaway PostgreSQL server on loopback, for tests and benchmarks (never for services).

`PostgresServer().start()` runs initdb into a fresh temporary folder, starts the server on
a free port bound to 127.0.0.1 only (and a Unix socket in that folder), and `stop()` stops
it and deletes the folder. The binaries come from, in order: $DCCN_PG_BIN, the pinned
`pgserver` wheel (requirements.lock; it ships PostgreSQL 16), Debian's postgresql package
(/usr/lib/postgresql/*/bin), or initdb on PATH.

PostgreSQL refuses to run as root; as root the server runs as an unprivileged user
($DCCN_PG_USER, default `nobody`) that owns the temporary folder.

Usage by hand: `python -m dccn_devtools.postgres` prints a DSN and serves until Ctrl-C;
`--check` prints the binaries folder it would use (exit 1 if none runs here).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dccn_devtools.ports import free_port


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries were found, or the server did not start."""


def find_bin_dir() -> Path:
    """The folder holding initdb, pg_ctl and postgres."""
    candidates: list[Path] = []
    if os.environ.get("DCCN_PG_BIN"):
        candidates.append(Path(os.environ["DCCN_PG_BIN"]))
    spec = importlib.util.find_spec("pgserver")  # located, not imported: its __init__ does far more
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(re.sub(r"\D", "", p) or 0))
    candidates += [Path(p) for p in reversed(debian)]
    if on_path := shutil.which("initdb"):
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise PostgresUnavailable(
        "no PostgreSQL server binaries found (looked in $DCCN_PG_BIN, the pgserver package, "
        "/usr/lib/postgresql/*/bin, PATH); run `make install`"
    )


@dataclass
class PostgresServer:
    """One server with trust authentication on loopback; databases are made per use."""

    bin_dir: Path = field(default_factory=find_bin_dir)
    port: int = 0
    root: Path | None = None
    _run_as: tuple[int, int] | None = None
    _counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "server not started"
        return self.root / "data"

    def start(self) -> PostgresServer:
        self.root = Path(tempfile.mkdtemp(prefix="dccn-pg-"))
        if os.geteuid() == 0:
            user = pwd.getpwnam(os.environ.get("DCCN_PG_USER", "nobody"))
            self._run_as = (user.pw_uid, user.pw_gid)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.root.chmod(0o700)
        self._run(["initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                   "--no-sync", "--locale=C"])
        # A test server: durability off (the tests kill clients, never this server), room for many clients.
        options = (f"-c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB")
        for _ in range(5):  # a free port can be taken between the probe and the bind
            self.port = free_port()
            try:
                self._run(["pg_ctl", "-D", str(self.data_dir), "-l", str(self.root / "server.log"), "-w",
                           "-t", "60", "-o", f"{options} -p {self.port}", "start"])
                return self
            except PostgresUnavailable:
                if "could not bind" not in self.log_tail():
                    raise
        raise PostgresUnavailable(f"PostgreSQL did not start:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.root is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            try:
                self._run(["pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"])
            except PostgresUnavailable:
                pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, hint: str = "db") -> str:
        """A new empty database; returns its DSN."""
        with self._lock:
            self._counter += 1
            name = f"{re.sub(r'[^a-z0-9_]', '_', hint.lower())[:40]}_{self._counter}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def drop_database(self, dsn: str) -> None:
        name = dsn.rsplit("/", 1)[1]
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.root / "server.log").read_text().splitlines()[-lines:])  # type: ignore[operator]
        except OSError:
            return ""

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def _run(self, argv: list[str]) -> None:
        kwargs: dict[str, Any] = {}
        if self._run_as is not None:
            kwargs = {"user": self._run_as[0], "group": self._run_as[1], "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C", "HOME": str(self.root)}
        done = subprocess.run([str(self.bin_dir / argv[0]), *argv[1:]], capture_output=True, text=True, env=env,
                              cwd=self.root, check=False, **kwargs)
        if done.returncode != 0:
            raise PostgresUnavailable(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def check() -> Path:
    """The binaries folder, after checking its server runs on this machine (`--check`)."""
    folder = find_bin_dir()
    done = subprocess.run([str(folder / "postgres"), "--version"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PostgresUnavailable(f"{folder / 'postgres'} does not run here: {done.stderr.strip()}")
    return folder


def main() -> int:
    if sys.argv[1:] == ["--check"]:
        try:
            print(check())
        except PostgresUnavailable as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        return 0
    with PostgresServer() as server:
        print(server.create_database("dccn"), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
