#!/usr/bin/env python3
"""A single-node Slurm cluster on loopback, for the tests and for trying aifdata on a laptop.

    sudo python3 .ci/slurm.py install            # Debian's slurm-wlm and munge (apt-get)
    sudo python3 .ci/slurm.py serve /tmp/slurm   # until Ctrl-C or SIGTERM
    export SLURM_CONF=/tmp/slurm/slurm.conf       # in another shell: sbatch, srun, squeue, ...

``serve`` starts munged (on a private socket), slurmctld and slurmd in the
foreground as its own children, writes ``DIR/slurm.conf``, waits until
``sinfo`` shows the node idle, then writes ``DIR/ready`` (the path of the
configuration). On SIGTERM or SIGINT it cancels every job, then stops slurmd,
slurmctld and munged by PID: SIGTERM, up to 10 s, then SIGKILL.

The node is this machine (its short host name, all its cores, 90% of its
memory) in one partition, ``debug``; jobs run as the submitting user.
Tracking is ``proctrack/linuxproc`` with ``task/none``: no cgroups, no
accounting (``scontrol show job`` answers, ``sacct`` does not). Tested with
Debian 12's slurm-wlm 22.05 and munge 0.5.15, as root. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
MUNGE_KEY = Path("/etc/munge/munge.key")
STOP_TIMEOUT = 10.0
IDLE_TIMEOUT = 60.0


def install() -> None:
    """Install Debian's slurm-wlm and munge (root; quiet, no services started)."""
    if all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "munged", "sbatch")):
        print("slurm-wlm and munge are installed")
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


def _memory_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 * 9 // 10
    return 1024


def _configuration(root: Path, munge_socket: Path, node: str, user: str) -> str:
    settings = {
        "ClusterName": "aifdata",
        "SlurmctldHost": f"{node}(127.0.0.1)",
        "SlurmctldPort": _free_port(),
        "SlurmdPort": _free_port(),
        "SlurmUser": user,
        "SlurmdUser": "root",
        "AuthType": "auth/munge",
        "CredType": "cred/munge",
        "AuthInfo": f"socket={munge_socket}",
        "StateSaveLocation": root / "state",
        "SlurmdSpoolDir": root / "spool",
        "SlurmctldPidFile": root / "slurmctld.pid",
        "SlurmdPidFile": root / "slurmd.pid",
        "SlurmctldLogFile": root / "log" / "slurmctld.log",
        "SlurmdLogFile": root / "log" / "slurmd.log",
        "MailProg": "/bin/true",
        "MpiDefault": "none",
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_Core",
        "SchedulerType": "sched/backfill",
        "JobAcctGatherType": "jobacct_gather/none",
        "AccountingStorageType": "accounting_storage/none",
        "JobCompType": "jobcomp/none",
        # afterok on a failed job: cancel the dependent job instead of leaving it pending forever
        "DependencyParameters": "kill_invalid_depend",
        "ReturnToService": 2,
        "InactiveLimit": 0,
        "MinJobAge": 300,  # `scontrol show job` knows a finished job for 5 minutes
        "KillWait": 5,
        "Waittime": 0,
    }
    lines = [f"{key}={value}" for key, value in settings.items()]
    lines.append(
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1}"
        f" RealMemory={_memory_mib()} State=UNKNOWN"
    )
    lines.append(f"PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP")
    return "\n".join(lines) + "\n"


def _stop(process: subprocess.Popen[bytes], name: str) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        print(f"{name} did not stop in {STOP_TIMEOUT:.0f} s: SIGKILL", file=sys.stderr)
        process.kill()
        process.wait()


def _wait_for(what: str, check, timeout: float, children: dict) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        for name, child in children.items():
            if child.poll() is not None:
                raise RuntimeError(f"{name} exited with status {child.returncode} before {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.1)


def _quiet(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def _munge_works(munge_socket: Path, env: dict[str, str]) -> bool:
    token = _quiet(["munge", "-S", str(munge_socket), "-n"], env)
    if token.returncode != 0:
        return False
    check = subprocess.run(
        ["unmunge", "-S", str(munge_socket)],
        input=token.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    return check.returncode == 0


def _node_idle(env: dict[str, str]) -> bool:
    return _quiet(["sinfo", "-h", "-o", "%t"], env).stdout.strip() == "idle"


def _cancel_jobs(env: dict[str, str]) -> None:
    jobs = _quiet(["squeue", "-h", "-o", "%i"], env).stdout.split()
    if not jobs:
        return
    _quiet(["scancel", *jobs], env)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _quiet(["squeue", "-h", "-o", "%i"], env).stdout.split():
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)


def serve(root: Path) -> int:
    """Run the cluster until SIGTERM or SIGINT; ``root/ready`` names its configuration."""
    for tool in ("slurmctld", "slurmd", "munged", "sinfo", "setpriv"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: run `sudo python3 {sys.argv[0]} install` first")
    if os.geteuid() != 0:
        raise SystemExit("slurmd starts jobs as their users and munged needs its key: run as root")
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool", "log"):
        (root / sub).mkdir(exist_ok=True)
    (root / "ready").unlink(missing_ok=True)
    # munged runs as user munge, which must reach its directory (ROOT's parents may be private),
    # and a socket's path must be short: a directory of its own under /tmp
    munge_dir = Path(tempfile.mkdtemp(prefix="aifdata-munge-"))
    munge_dir.chmod(0o755)
    shutil.chown(munge_dir, "munge", "munge")
    if not MUNGE_KEY.exists():  # Debian's postinst makes one; make it where it did not
        subprocess.run(["mungekey", "-c", "-k", str(MUNGE_KEY)], check=True)
        shutil.chown(MUNGE_KEY, "munge", "munge")
        MUNGE_KEY.chmod(0o400)
    munge_socket = munge_dir / "munge.socket.2"
    conf = root / "slurm.conf"
    conf.write_text(_configuration(root, munge_socket, socket.gethostname().split(".")[0], "root"))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    logs = root / "log"

    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        children["munged"] = subprocess.Popen(
            [
                "setpriv", "--reuid=munge", "--regid=munge", "--init-groups",
                "munged", "-F", f"--socket={munge_socket}",
                f"--pid-file={munge_dir / 'munged.pid'}", f"--log-file={munge_dir / 'munged.log'}",
                f"--seed-file={munge_dir / 'munged.seed'}",
            ],
            stdout=subprocess.DEVNULL, stderr=(logs / "munged.out").open("wb"),
        )  # fmt: skip
        _wait_for("munge answered", lambda: _munge_works(munge_socket, env), 20, children)
        for daemon in ("slurmctld", "slurmd"):
            children[daemon] = subprocess.Popen(
                [daemon, "-D", "-f", str(conf)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=(logs / f"{daemon}.out").open("wb"),
            )
        _wait_for("the node was idle", lambda: _node_idle(env), IDLE_TIMEOUT, children)
        ready = root / "ready.tmp"
        ready.write_text(f"{conf}\n")
        ready.rename(root / "ready")
        print(f"Slurm is up: export SLURM_CONF={conf}", flush=True)
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    print(f"{name} exited with status {child.returncode}", file=sys.stderr)
                    return 1
            time.sleep(0.2)
        return 0
    except RuntimeError as error:
        print(f"Slurm did not start: {error}; logs in {logs}", file=sys.stderr)
        for log in [*sorted(logs.glob("*")), munge_dir / "munged.log"]:
            if not log.exists():
                continue
            tail = log.read_text(errors="replace").splitlines()[-5:]
            print(f"--- {log.name}", *tail, sep="\n", file=sys.stderr)
        return 1
    finally:
        (root / "ready").unlink(missing_ok=True)
        if "slurmctld" in children and children["slurmctld"].poll() is None:
            _cancel_jobs(env)
        for name in ("slurmd", "slurmctld", "munged"):
            if name in children:
                _stop(children[name], name)
        shutil.rmtree(munge_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="apt-get install slurm-wlm and munge")
    run = commands.add_parser("serve", help="run a one-node cluster until SIGTERM or Ctrl-C")
    run.add_argument("root", type=Path, help="a directory for its configuration, state and logs")
    args = parser.parse_args()
    if args.command == "install":
        install()
        return 0
    return serve(args.root)


if __name__ == "__main__":
    sys.exit(main())
