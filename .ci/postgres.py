#!/usr/bin/env python3
"""A throwaway PostgreSQL server on loopback, for the tests and for trying a site catalog.

    sudo python3 .ci/postgres.py install            # Debian's postgresql (apt-get), if missing
    sudo python3 .ci/postgres.py serve /tmp/pg      # until Ctrl-C or SIGTERM
    export AIFDATA_CATALOG="$(cat /tmp/pg/ready)"   # in another shell: a catalog there

``serve`` makes a new cluster in DIR (as root: ``initdb`` as the user ``postgres``, in
a directory of its own under /tmp that postgres can reach, removed at the end; ``C``
locale, UTF-8), trusting connections on 127.0.0.1 and on a unix socket beside the data,
on a free port, with ``fsync=off`` (a test server: a crash may lose it). It starts the
server as its own child, creates the database ``aifdata``, and once a query there
answers writes the DSN (``postgresql://postgres@127.0.0.1:PORT/aifdata``) to
``DIR/ready``. On SIGTERM or SIGINT it stops the server (``pg_ctl stop -m fast``, then
SIGKILL after a timeout). Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGES = ("postgresql",)
SUPERUSER = "postgres"
DATABASE = "aifdata"
STOP_TIMEOUT = 20.0
READY_TIMEOUT = 60.0


def binaries() -> Path | None:
    """The directory of ``initdb``, ``pg_ctl`` and ``postgres`` (Debian's, newest first)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version, reverse=True)
    return Path(versions[0]).parent if versions else None


def _version(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


def install() -> None:
    """Install Debian's postgresql (root; quiet) unless its binaries are here already."""
    if binaries() is not None:
        print(f"postgresql is installed ({binaries()})")
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    print("installed", " ".join(PACKAGES))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_owner(command: list[str]) -> list[str]:
    """``command`` run as the user ``postgres`` when this process is root (initdb refuses root)."""
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--reuid", SUPERUSER, "--regid", SUPERUSER, "--clear-groups", *command]


def _owned(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, SUPERUSER, SUPERUSER)


def _initdb(bin_dir: Path, data: Path, port: int, socket_dir: Path) -> None:
    subprocess.run(
        _as_owner([str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER,
                   "--auth=trust", "--encoding=UTF8", "--locale=C"]),
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": f"'{socket_dir}'",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "300",
        "shared_buffers": "64MB",
    }
    with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
    (data / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 trust\n", encoding="utf-8"
    )


def _query(bin_dir: Path, socket_dir: Path, port: int, database: str, sql: str) -> bool:
    psql = bin_dir / "psql"
    if not psql.exists():
        psql = Path(shutil.which("psql") or "psql")
    done = subprocess.run(
        [str(psql), "-h", str(socket_dir), "-p", str(port), "-U", SUPERUSER, "-d", database,
         "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
        capture_output=True,
    )  # fmt: skip
    return done.returncode == 0


def serve(root: Path) -> int:
    bin_dir = binaries()
    if bin_dir is None:
        print("no PostgreSQL binaries (initdb): sudo python3 .ci/postgres.py install")
        return 1
    root.mkdir(parents=True, exist_ok=True)
    # as root the cluster belongs to postgres, who may not reach DIR (pytest's are 0700):
    # it lives in a directory of its own under /tmp then, removed when the server stops
    home = Path(tempfile.mkdtemp(prefix="aifdata-postgres-")) if os.geteuid() == 0 else root
    data, socket_dir = home / "data", home / "socket"
    socket_dir.mkdir(exist_ok=True)
    for path in (home, socket_dir):
        _owned(path)
    try:
        return _run(bin_dir, root, data, socket_dir)
    finally:
        if home != root:
            shutil.rmtree(home, ignore_errors=True)


def _run(bin_dir: Path, root: Path, data: Path, socket_dir: Path) -> int:
    port = _free_port()
    _initdb(bin_dir, data, port, socket_dir)
    log = open(root / "postgres.log", "ab")  # noqa: SIM115 (the server's, while it runs)
    print(f"cluster in {data}", flush=True)
    server = subprocess.Popen(
        _as_owner([str(bin_dir / "postgres"), "-D", str(data)]), stdout=log, stderr=log
    )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    deadline = time.monotonic() + READY_TIMEOUT
    while not stopping and server.poll() is None:
        if _query(bin_dir, socket_dir, port, "postgres", f"CREATE DATABASE {DATABASE}") or (
            _query(bin_dir, socket_dir, port, DATABASE, "SELECT 1")
        ):
            break
        if time.monotonic() > deadline:
            print(f"PostgreSQL not ready in {READY_TIMEOUT:.0f} s; see {root}/postgres.log")
            stopping = True
            break
        time.sleep(0.2)
    if (
        not stopping
        and server.poll() is None
        and _query(bin_dir, socket_dir, port, DATABASE, "SELECT 1")
    ):
        dsn = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}"
        (root / "ready").write_text(dsn + "\n", encoding="utf-8")
        print(dsn, flush=True)
    while not stopping and server.poll() is None:
        time.sleep(0.2)
    return _stop(bin_dir, data, server)


def _stop(bin_dir: Path, data: Path, server: subprocess.Popen[bytes]) -> int:
    if server.poll() is None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                _as_owner([str(bin_dir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast",
                           "-t", str(int(STOP_TIMEOUT))]),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=STOP_TIMEOUT + 5,
            )  # fmt: skip
    try:
        server.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="apt-get postgresql when its binaries are missing")
    run = commands.add_parser("serve", help="run a throwaway server in DIR until SIGTERM")
    run.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    if args.command == "install":
        install()
        return 0
    return serve(args.dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
