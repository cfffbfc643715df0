"""``aifdata demo``: the main job end to end, as a new user runs it."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
pytest.importorskip("uproot")
pytest.importorskip("tifffile")


@pytest.mark.timeout(300)
def test_the_demo_runs_the_main_job_and_reports_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIFDATA_", "AWS_"))}
    env["HOME"] = str(tmp_path)  # nothing of the user's setup is needed
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("aifdata")), "demo"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=280,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "SeaweedFS (weed server)" in out
    assert "pfs  aif://demo/genomics/run1/reads.fastq" in out  # staged: read from the PFS
    assert "s3   aif://demo/physics/run7/events.root" in out  # not staged: read from S3
    for fmt in ("[fastq]", "[geotiff]", "[root]", "[vcf]", "[las]"):
        assert fmt in out
    assert (
        "genomics/run1@1 --[demo/read-length-histogram, COMPLETE]--> genomics/read-lengths@1" in out
    )
    assert "refused: user:guest may not read" in out
    assert "counts 20,000 records" in out
    # the mount hydrates on read: the second read of every partition is counted per tier
    second = r"second read: 100% served by pfs \((\d+) of \1 reads\), 0 reads from S3"
    assert re.search(second, out)
    # forked DataLoader workers must not touch the parent's S3 sessions
    assert "attached to a different loop" not in proc.stderr
    assert "Task exception" not in proc.stderr
    home = next(line.split(": ", 1)[1] for line in out.splitlines() if "home: " in line)
    home = home.removesuffix(" (removed on exit)")
    assert home and not _processes_under(home)  # its SeaweedFS was stopped
    assert not Path(home).exists()  # and its temporary home removed


def _processes_under(home: str) -> list[str]:
    """Command lines of running processes that name ``home``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if home in text:
            found.append(text)
    return found


def _quiet(_: str) -> None:
    pass


@pytest.mark.timeout(300)
def test_without_weed_the_demo_says_so_and_runs_on_moto(tmp_path, monkeypatch):
    from aifdata import _demo, _seaweedfs

    monkeypatch.setattr(_seaweedfs, "weed_binary", lambda: None)
    before = os.environ.get("AIFDATA_HOME")
    report = _demo.run(home=tmp_path / "home", echo=_quiet)
    assert report.server.startswith("moto (in-process)")
    assert "no weed binary" in report.server
    assert {tier for _, tier, _ in report.reads} == {"pfs", "s3"}
    assert {fmt for _, fmt, _, _ in report.partitions} == {"fastq", "geotiff", "root", "vcf", "las"}
    assert "multi-allelic variants (VCF)" in report.findings
    assert report.lineage and report.denied.startswith("user:guest may not read")
    assert os.environ.get("AIFDATA_HOME") == before  # the caller's environment is back


@pytest.mark.timeout(300)
def test_the_demo_uses_an_s3_server_it_is_given(seaweedfs, tmp_path, monkeypatch):
    from aifdata import _demo

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.secret_key)
    report = _demo.run(s3_endpoint=seaweedfs.endpoint_url, home=tmp_path / "h", echo=_quiet)
    assert report.server == f"the S3 server at {seaweedfs.endpoint_url}"
    assert ("aif://demo/genomics/run1/reads.fastq", "pfs") in {(u, t) for u, t, _ in report.reads}
    assert len(report.partitions) == 20
    text = report.text()
    assert "reads served from" in text and "refused:" in text


@pytest.mark.timeout(300)
def test_keep_leaves_a_working_setup_and_says_how_to_stop_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIFDATA_", "AWS_"))}
    env["HOME"] = str(tmp_path)
    aifdata_cli = str(Path(sys.executable).with_name("aifdata"))
    proc = subprocess.run(
        [aifdata_cli, "demo", "--keep"], capture_output=True, text=True, env=env, cwd=tmp_path,
        timeout=280,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    exports = [line.split("export ", 1)[1] for line in lines if "export " in line]
    env |= {k: shlex.split(v)[0] for k, v in (e.split("=", 1) for e in exports)}
    home = env["AIFDATA_HOME"]
    stop = next(line.split("When done: ", 1)[1] for line in lines if "When done: " in line)
    try:
        assert _processes_under(home)  # the server is still up
        for args in (["search", "demo"], ["lineage", "genomics/read-lengths"],
                     ["where", "aif://demo/physics/run7/events.root"]):  # fmt: skip
            used = subprocess.run([aifdata_cli, *args], capture_output=True, text=True, env=env)
            assert used.returncode == 0, used.stderr
        assert "-> pfs" in used.stdout  # the demo's reads hydrated it from the kept S3 server
    finally:
        subprocess.run(stop, shell=True, check=False)
    for _ in range(100):
        if not _processes_under(home):
            break
        time.sleep(0.1)
    assert not _processes_under(home)
    assert not Path(home).exists()


def _default_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.timeout(300)
def test_ctrl_c_stops_the_demo_and_its_server(tmp_path):
    import signal

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIFDATA_", "AWS_"))}
    env |= {"HOME": str(tmp_path), "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    # A shell runs background jobs with SIGINT ignored, and Python then never raises
    # KeyboardInterrupt; give the demo the SIGINT disposition a terminal's Ctrl-C meets.
    demo = subprocess.Popen(
        [str(Path(sys.executable).with_name("aifdata")), "demo"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
        preexec_fn=_default_sigint,
    )  # fmt: skip
    try:
        first = demo.stdout.readline()  # printed once the server is up
        assert "SeaweedFS (weed server)" in first
        assert _processes_under(str(tmp_path))
        demo.send_signal(signal.SIGINT)
        _, err = demo.communicate(timeout=120)
    finally:
        demo.kill()
    assert demo.returncode != 0
    assert "Traceback" not in err
    for _ in range(100):
        if not _processes_under(str(tmp_path)):
            break
        time.sleep(0.1)
    assert not _processes_under(str(tmp_path))


def test_ctrl_c_in_a_finalizer_is_kept_for_the_next_step():
    import sys
    import weakref

    from aifdata._demo import _in_finalizer

    class Thing:
        pass

    seen = []
    thing = Thing()
    weakref.finalize(thing, lambda: seen.append(_in_finalizer(sys._getframe())))
    del thing
    assert seen == [True]
    assert not _in_finalizer(sys._getframe())
