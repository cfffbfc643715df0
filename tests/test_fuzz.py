"""Fuzzing: format inputs and the mount table, against the error types the README documents.

Small, valid, seeded files of every format (FASTQ plain, gzip and BGZF; GeoTIFF; ROOT) are
mutated (bits flipped, bytes set, spans deleted, inserted, duplicated, the file cut short),
and arbitrary bytes are given behind each format's magic; each input is planned into
partitions and every partition read. The mount table is fuzzed as TOML text and as
documents (dicts) of mount-table-like keys and values. No input may crash the process,
hang (a hypothesis deadline), or raise anything but the documented types: FormatError for
file bytes, ConfigError for a mount table.

Each target tries ``AIFDATA_FUZZ_EXAMPLES`` inputs (default 100: the whole unit lane has a
minute) and prints how many it tried and what became of them (``pytest -s`` shows it).
"""

from __future__ import annotations

import datetime
import functools
import gzip
import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aifdata import ConfigError, FormatError
from aifdata._config import _ConfigReader, load_config, parse_config
from aifdata.formats import partition, read_all

EXAMPLES = int(os.environ.get("AIFDATA_FUZZ_EXAMPLES", "100"))
#: Far beyond what any of these small inputs takes: a run past it is a hang.
DEADLINE = datetime.timedelta(seconds=20)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,  # each run draws afresh; a failure prints the input that reproduces it
)


def report(target: str, outcomes: Counter[str]) -> None:
    tried = sum(outcomes.values())
    print(f"\nfuzz {target}: {tried} inputs tried: {dict(sorted(outcomes.items()))}")
    assert tried > 0


# -- inputs ---------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, blob: bytes) -> bytes:
    """``blob`` with one to four edits."""
    data = bytearray(blob)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        if not data:
            break
        at = draw(st.integers(min_value=0, max_value=len(data) - 1))
        kind = draw(st.sampled_from(["flip", "set", "delete", "insert", "duplicate", "cut"]))
        span = draw(st.integers(min_value=1, max_value=64))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif kind == "set":
            data[at] = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80, ord("@"), ord("\n")]))
        elif kind == "delete":
            del data[at : at + span]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=span))
        elif kind == "duplicate":
            data[at:at] = data[at : at + span]
        else:
            del data[at:]
    return bytes(data)


def plan_and_read(url: str, n: int, format: str | None, streamed: bool) -> int:
    """Plan ``url`` into ``n`` partitions and read them all; how many partitions."""
    parts = partition(url, n=n, format=format)
    if streamed:
        for _ in read_all(parts):
            pass
    else:
        for part in parts:
            part.read()
    return len(parts)


def fuzz_file(
    target: str, blobs: st.SearchStrategy[bytes], names: list[str], formats: list[str | None]
) -> None:
    """Write each drawn blob under a drawn name; plan and read it. FormatError only."""
    outcomes: Counter[str] = Counter()
    home = Path(tempfile.mkdtemp(prefix="aifdata-fuzz-"))
    counter = iter(range(10**9))

    @FUZZ
    @given(
        blob=blobs,
        name=st.sampled_from(names),
        n=st.integers(min_value=1, max_value=6),
        format=st.sampled_from(formats),
        streamed=st.booleans(),
    )
    def run(blob: bytes, name: str, n: int, format: str | None, streamed: bool) -> None:
        path = home / f"{next(counter)}-{name}"  # a new name: no plan or index is reused
        path.write_bytes(blob)
        try:
            plan_and_read(str(path), n, format, streamed)
        except FormatError:
            outcomes["FormatError"] += 1
        else:
            outcomes["read"] += 1
        finally:
            path.unlink()

    run()
    report(target, outcomes)


def fastq_blob(seed: int) -> bytes:
    from .test_fastq import fastq_bytes, random_records

    return fastq_bytes(random_records(200 + seed, 25, max_len=40))


FASTQ_NAMES = ["reads.fq", "reads.fastq", "reads.fq.gz", "reads.bin"]
FASTQ_FORMATS: list[str | None] = [None, None, "fastq"]


def test_fuzz_fastq_plain():
    pytest.importorskip("dnaio")
    seeds = [fastq_blob(s) for s in range(3)]
    blobs = st.sampled_from(seeds).flatmap(mutated)
    fuzz_file("FASTQ plain, mutated", blobs, FASTQ_NAMES, FASTQ_FORMATS)


def test_fuzz_fastq_gzip():
    pytest.importorskip("dnaio")
    pytest.importorskip("indexed_gzip")
    seeds = [gzip.compress(fastq_blob(s), mtime=0) for s in range(3)]
    seeds.append(b"".join(gzip.compress(fastq_blob(s)[i::2], mtime=0) for i in range(2)
                          for s in [3]))  # fmt: skip
    blobs = st.sampled_from(seeds).flatmap(mutated)
    fuzz_file("FASTQ gzip, mutated", blobs, FASTQ_NAMES, FASTQ_FORMATS)


def test_fuzz_fastq_bgzf():
    pytest.importorskip("dnaio")
    from .test_bgzf import bgzf

    seeds = [bgzf(fastq_blob(s), block=400, seed=s) for s in range(3)]
    blobs = st.sampled_from(seeds).flatmap(mutated)
    fuzz_file("FASTQ BGZF, mutated", blobs, FASTQ_NAMES, FASTQ_FORMATS)


@functools.cache
def geotiff_seeds() -> list[bytes]:
    from .test_geotiff import cog_bytes, image, overviews

    return [
        cog_bytes(overviews(image(3, (48, 48), "uint8"), 2), tile=(16, 16)),
        cog_bytes(
            overviews(image(4, (40, 40, 3), "uint16"), 1),
            tile=(16, 16),
            compression="zlib",
            order=">",
        ),
        cog_bytes(
            [image(5, (32, 48), "float32")],
            tile=(16, 16),
            compression="zlib",
            predictor=3,
            big=True,
            nodata=b"-9999",
        ),
    ]


def test_fuzz_geotiff():
    pytest.importorskip("tifffile")
    pytest.importorskip("imagecodecs")
    blobs = st.sampled_from(geotiff_seeds()).flatmap(mutated)
    fuzz_file("GeoTIFF, mutated", blobs, ["scene.tif", "scene.bin"], [None, "geotiff"])


@functools.cache
def root_seeds() -> list[bytes]:
    from .test_root import many_baskets_file, write_generated

    with tempfile.TemporaryDirectory() as tmp:
        many = many_baskets_file(Path(tmp) / "many.root", baskets=3, per_basket=40)
        write_generated(Path(tmp) / "gen.root", [[(1, 0.5, [1.0, 2.0])], [(2, 1.5, [])] * 3])
        return [many.read_bytes(), (Path(tmp) / "gen.root").read_bytes()]


def test_fuzz_root():
    pytest.importorskip("uproot")
    pytest.importorskip("awkward")
    blobs = st.sampled_from(root_seeds()).flatmap(mutated)
    fuzz_file("ROOT, mutated", blobs, ["events.root", "events.bin"], [None, "root"])


#: Each format's first bytes: arbitrary bytes behind them get past the magic check.
MAGICS = [b"", b"@", b"@r\n", b"\x1f\x8b\x08\x04", b"\x1f\x8b\x08\x00", b"II*\x00",
          b"MM\x00*", b"II+\x00\x08\x00\x00\x00", b"root", b"(\xb5/\xfd", b"BZh"]  # fmt: skip


def test_fuzz_arbitrary_bytes():
    pytest.importorskip("dnaio")
    blobs = st.builds(lambda magic, rest: magic + rest, st.sampled_from(MAGICS),
                      st.binary(max_size=600))  # fmt: skip
    names = ["x.fq", "x.fq.gz", "x.tif", "x.root", "x.bin"]
    fuzz_file("arbitrary bytes", blobs, names, [None, None, "fastq", "geotiff", "root"])


# -- the mount table --------------------------------------------------------------------

#: Keys the mount table knows (and some it does not), so drawn documents reach deep checks.
KEYS = ["mounts", "prefix", "read_order", "write_tier", "kind", "s3", "pfs", "fsspec", "url",
        "path", "endpoint_url", "region", "key", "secret", "token", "profile", "anon",
        "max_concurrency", "part_size", "connect_timeout", "read_timeout", "max_attempts",
        "block_size", "storage_options", "data", "scratch", "a/b", "..", "", "toykind"]  # fmt: skip
#: Location-like strings: valid, empty, escaping, of other protocols.
LOCATIONS = ["s3://bucket/prefix", "s3://", "/tmp/x", "memory://m", "gs://b", "pfs", "s3",
             "fsspec", "https://h:9", "..", "a//b", "~", ""]  # fmt: skip
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
SCALARS = st.one_of(
    TEXT,
    st.sampled_from(LOCATIONS),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.booleans(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), TEXT), inner, max_size=4),
    ),
    max_leaves=12,
)
DOCUMENTS = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=3),
    st.fixed_dictionaries(  # a table of mounts, each a table of tiers
        {
            "mounts": st.dictionaries(
                st.one_of(st.sampled_from(KEYS), TEXT),
                st.dictionaries(st.one_of(st.sampled_from(KEYS), TEXT), VALUES, max_size=5),
                max_size=3,
            )
        }
    ),
)


#: A valid mount table with every key (README's example, and an fsspec tier).
VALID: dict[str, Any] = {"mounts": {
    "climate": {
        "prefix": "climate/era5", "read_order": ["scratch", "s3"], "write_tier": "s3",
        "s3": {"url": "s3://climate/era5", "endpoint_url": "https://rgw.example.org",
               "region": "us-east-1", "profile": "climate", "anon": False,
               "max_concurrency": 32, "part_size": 33554432, "connect_timeout": 5.0,
               "read_timeout": 60.0, "max_attempts": 4},
        "scratch": {"kind": "pfs", "path": "/tmp/aifdata-fuzz/scratch", "block_size": 16777216},
    },
    "shared": {"fsspec": {"url": "memory://shared/data", "storage_options": {}}},
}}  # fmt: skip


@st.composite
def edited(draw: st.DrawFn, document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with one to three keys somewhere in it replaced, removed or added."""
    document = json.loads(json.dumps(document))  # a deep copy
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        table = document
        while True:  # walk down to a table
            inner = [k for k, v in table.items() if isinstance(v, dict)]
            if not inner or not draw(st.booleans()):
                break
            table = table[draw(st.sampled_from(inner))]
        op = draw(st.sampled_from(["replace", "remove", "add"]))
        if op == "add" or not table:
            table[draw(st.one_of(st.sampled_from(KEYS), TEXT))] = draw(VALUES)
        elif op == "remove":
            del table[draw(st.sampled_from(sorted(table)))]
        else:
            table[draw(st.sampled_from(sorted(table)))] = draw(VALUES)
    return document


def toml(document: dict[str, Any]) -> str:
    """``document`` as TOML: one ``key = value`` line per top-level key, inline tables below."""
    return "".join(f"{_key(k)} = {_value(v)}\n" for k, v in document.items())


def _key(key: str) -> str:
    return json.dumps(key)  # a TOML basic string is a JSON string (no surrogates drawn)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float | str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"


def fuzz_config(target: str, check: Callable[..., Any], strategy: st.SearchStrategy[Any]) -> None:
    outcomes: Counter[str] = Counter()

    @FUZZ
    @given(strategy)
    def run(value: Any) -> None:
        try:
            check(value)
        except ConfigError:
            outcomes["ConfigError"] += 1
        else:
            outcomes["accepted"] += 1

    run()
    report(target, outcomes)


def test_fuzz_config_text():
    fuzz_config("config, arbitrary text", parse_config, st.one_of(
        st.text(max_size=300),
        st.lists(st.sampled_from(["[mounts.a]", "[mounts.a.s3]", "[mounts.a.pfs]",
                                  'url = "s3://b"', 'path = "/tmp"', 'kind = "pfs"', "[[mounts]]",
                                  "prefix = 1", "read_order = []", "[mounts]", "x = ", "\x00"]),
                 max_size=8).map("\n".join),
    ))  # fmt: skip


def test_fuzz_config_documents_as_toml():
    def check(document: dict[str, Any]) -> None:
        parse_config(toml(document), source="fuzz.toml")

    fuzz_config("config, documents as TOML", check, DOCUMENTS)


def test_fuzz_config_documents():
    def check(document: dict[str, Any]) -> None:
        _ConfigReader("<dict>").read(document)

    fuzz_config("config, documents", check, DOCUMENTS)


def test_fuzz_config_edits_of_a_valid_table():
    def check(document: dict[str, Any]) -> None:
        _ConfigReader("<dict>").read(document)
        parse_config(toml(document), source="fuzz.toml")

    check(VALID)  # the table edited is valid
    fuzz_config("config, a valid table edited", check, edited(VALID))


def test_fuzz_config_files(tmp_path):
    path = tmp_path / "config.toml"

    def check(blob: bytes) -> None:
        path.write_bytes(blob)
        load_config(path)

    fuzz_config("config, file bytes", check, st.binary(max_size=200))


def test_the_toml_writer_round_trips():
    import tomllib

    document = {"mounts": {"a": {"s3": {"url": "s3://b", "anon": True, "n": [1, 2.5, "x\n"]}}}}
    assert tomllib.loads(toml(document)) == document


# -- what the fuzzing found, kept as plain tests ------------------------------------------


@pytest.mark.parametrize(("blob", "offset"), [(b"@\x00", 1), (b"@r\n\x00", 3)])
def test_a_short_fastq_head_with_a_nul_byte_is_a_format_error(tmp_path, blob, offset):
    """Once an IndexError while explaining why the head is not FASTQ."""
    pytest.importorskip("dnaio")
    path = tmp_path / "x.fq"
    path.write_bytes(blob)
    with pytest.raises(FormatError, match=rf"x\.fq: .*byte {offset}: .*found a NUL byte"):
        partition(str(path), n=1)
