"""imzML: ranges of pixels of a mass-spectrometry image, read from the ``.ibd`` beside it.

An imzML dataset is two files: the ``.imzML`` (mzML-style XML: per pixel, its
x/y coordinates and where its arrays lie in the binary file, as external
offset IMS:1000102, array length IMS:1000103 and encoded length IMS:1000104)
and the ``.ibd`` (a 16-byte UUID, then the arrays). In *continuous* mode all
pixels share one m/z array; in *processed* mode each pixel has its own.

Planning streams the ``.imzML`` once (8 MiB reads; its metadata is kept per
file version, so planning again reads nothing), checks that the ``.ibd``
beside it starts with the UUID the imzML names (IMS:1000080) and is long
enough for every array, and cuts the pixels into about ``n`` runs of
consecutive pixels (or runs of about ``target_bytes`` of ``.ibd`` data),
balanced by bytes. A partition's spec is small whatever the image: the pixel
range, the byte range of those pixels' ``<spectrum>`` elements in the imzML,
the ``.ibd``'s fingerprint and the array types. Reading takes the pixels'
offsets from the kept metadata (or re-reads that one XML range), then fetches
their ``.ibd`` bytes in few range reads (nearby ranges merged).

A :class:`Pixel` holds its number (order in the imzML), x, y, z (z is None
when absent) and the m/z and intensity arrays (numpy); in continuous mode the
m/z array is one shared, read-only array. An ``.ibd`` of another imzML (other
UUID), one shorter than its arrays, or one changed since planning is refused
with a FormatError naming both files.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._config import Config
from .._errors import FormatError
from ._base import (
    FormatPlugin,
    KeptMetadata,
    Partition,
    RangeSource,
    open_source,
    partition_count,
    same_version,
)
from ._psi import (
    DTYPES,
    INTENSITY_ARRAY,
    MZ_ARRAY,
    NUMPRESS,
    ZLIB,
    Groups,
    arrow_table,
    as_array,
    encoding_of,
    inflate,
    is_imzml,
    is_mzml,
    local,
    param_groups,
    params,
    parse_elements,
    parse_fragment,
)
from ._ranges import Fetched, balanced_bounds, fetch
from .mzml import LIST_END, SCAN_BYTES, SPECTRUM_START

if TYPE_CHECKING:
    import numpy as np

HEAD_BYTES = 64 * 2**10
#: .ibd ranges closer than this are read as one request.
MERGE_GAP = 1 * 2**20
UUID, CONTINUOUS, PROCESSED = "IMS:1000080", "IMS:1000030", "IMS:1000031"
POSITION = {"IMS:1000050": 0, "IMS:1000051": 1, "IMS:1000052": 2}
OFFSET, LENGTH, ENCODED = "IMS:1000102", "IMS:1000103", "IMS:1000104"
_FILE_CONTENT = re.compile(rb"<fileContent\b.*?</fileContent>", re.S)
_GROUPS = re.compile(rb"<referenceableParamGroupList\b.*?</referenceableParamGroupList>", re.S)
#: Columns of a pixel table: number, x, y, z, then (offset, length, encoded) of m/z and
#: intensity, then the byte offset of the pixel's <spectrum> element in the imzML.
_COLUMNS = ("x", "y", "z", "mz_off", "mz_len", "mz_enc", "int_off", "int_len", "int_enc", "xml")

#: Each imzML version's header and pixel table, from one stream of the file.
_KEPT = KeptMetadata()


@dataclass(frozen=True, slots=True, eq=False)
class Pixel:
    """One pixel of an image: its number, coordinates, and its spectrum's arrays."""

    index: int
    x: int
    y: int
    z: int | None
    mz: np.ndarray
    intensity: np.ndarray


@dataclass(frozen=True, slots=True, eq=False)
class Header:
    """What the imzML says of the whole dataset."""

    uuid: str
    mode: str  # "continuous" or "processed"
    mz_type: tuple[str, bool]  # dtype, zlib
    int_type: tuple[str, bool]
    groups: Groups
    encoding: str


class ImzmlFormat(FormatPlugin):
    """imzML mass-spectrometry images: runs of pixels, their arrays from the .ibd beside."""

    name = "imzml"
    extensions = (".imzml",)
    description = "imzML images (+ .ibd); runs of pixels from the imzML metadata, one stream"

    def sniff(self, head: bytes, path: str) -> bool:
        return is_mzml(head) and (is_imzml(head) or path.lower().endswith(".imzml"))

    def explain(self, head: bytes, url: str) -> str:
        return (
            f"{url}: byte 0: this is not imzML: expected an <mzML> document with imaging"
            f" (IMS) parameters, found {head[:32]!r}"
        )

    def plan(
        self, source: RangeSource, n: int | None = None, target_bytes: int | None = None
    ) -> list[Partition]:
        partition_count(0, n, target_bytes)
        if source.size == 0:
            return []
        self.checked_head(source, HEAD_BYTES)
        header, table, shared = metadata(source)
        ibd = ibd_source(source)
        check_ibd(source, ibd, header, table, shared)
        _add_counts(source, ibd)
        pixels = len(table)
        if pixels == 0:
            return []
        sizes = table[:, 8] + (table[:, 5] if header.mode == "processed" else 0)
        bounds = split_pixels(sizes.tolist(), n, target_bytes)
        fingerprint, ibd_print = source.fingerprint, ibd.fingerprint
        common: dict[str, Any] = {
            "mode": header.mode,
            "uuid": header.uuid,
            "ibd": ibd_print,
            "mz_type": header.mz_type,
            "int_type": header.int_type,
            "encoding": header.encoding,
            "groups": tuple(header.groups.items()),
        }
        if shared is not None:
            common["shared_mz"] = shared
        out = []
        for i, (a, b) in enumerate(itertools.pairwise(bounds)):
            xml_end = int(table[b, 9]) if b < pixels else int(_KEPT.slot(source)["xml_end"])
            spec = {"first": a, "stop": b, "xml_start": int(table[a, 9]), "xml_end": xml_end}
            out.append(Partition.make(source.url, self.name, i, fingerprint, **spec, **common))
        return out

    def read(
        self,
        partition: Partition,
        source: RangeSource | None = None,
        config: Config | None = None,
        **options: Any,
    ) -> list[Pixel]:
        source = open_source(partition, source, config)
        ibd = ibd_source(source)
        if not same_version(partition["ibd"], ibd.fingerprint):
            raise FormatError(
                f"{ibd.url}: changed since {source.url} was partitioned (was"
                f" {partition['ibd']}, now {ibd.fingerprint}); plan the partitions again"
            )
        rows = pixel_rows(source, partition)
        return pixels_of(ibd, partition, rows)

    def records(self, partition: Partition, **options: Any) -> Iterator[Pixel]:
        yield from self.read(partition, **options)

    def table(self, partition: Partition) -> str:
        return "imzml"

    def to_pandas(self, partition: Partition, **options: Any) -> Any:
        """A row per pixel: index, x, y, z, mz, intensity (arrays)."""
        import pandas as pd

        return pd.DataFrame(columns_of(self.read(partition, **options)))

    def to_arrow(self, partition: Partition, **options: Any) -> Any:
        """A row per pixel, the arrays as list columns."""
        return arrow_table(columns_of(self.read(partition, **options)))


def columns_of(pixels: Sequence[Pixel]) -> dict[str, list[Any]]:
    names = ("index", "x", "y", "z", "mz", "intensity")
    return {name: [getattr(p, name) for p in pixels] for name in names}


# -- the .ibd beside ----------------------------------------------------------------


def ibd_url(url: str) -> str:
    stem = url[: -len(".imzml")] if url.lower().endswith(".imzml") else url
    return stem + ".ibd"


def ibd_source(source: RangeSource) -> RangeSource:
    """The ``.ibd`` beside an imzML, through the same filesystem (``.ibd``, else ``.IBD``)."""
    for suffix in (".ibd", ".IBD"):
        other = _sibling(source, suffix)
        if other.fs.exists(other.path):
            return other
    raise FormatError(
        f"{source.url}: no binary file beside it ({ibd_url(source.url)}): imzML keeps its"
        " arrays in an .ibd of the same name"
    )


def _sibling(source: RangeSource, suffix: str) -> RangeSource:
    def swap(name: str) -> str:
        return (name[: -len(".imzml")] if name.lower().endswith(".imzml") else name) + suffix

    return source.beside(swap(source.url), swap(source.path))


def _add_counts(source: RangeSource, ibd: RangeSource) -> None:
    """What planning read of the .ibd counts as read by the plan's source."""
    with source._count_lock:
        source.requests += ibd.requests
        source.bytes_read += ibd.bytes_read


def check_ibd(
    source: RangeSource, ibd: RangeSource, header: Header, table: Any, shared: Any
) -> None:
    """The .ibd must start with the imzML's UUID and hold every array the imzML names."""
    got = ibd.read(0, 16)
    if got.hex() != header.uuid:
        raise FormatError(
            f"{ibd.url}: byte 0: UUID {got.hex() or '(none: empty file)'} does not match the"
            f" UUID {header.uuid} of {source.url}: this .ibd belongs to another imzML"
        )
    ends = [(int(shared[0] + shared[2]), "the shared m/z array")] if shared else []
    if len(table):
        for col, what in ((3, "m/z"), (6, "intensity")):
            if what == "m/z" and shared is not None:
                continue
            last = table[:, col] + table[:, col + 2]
            k = int(last.argmax())
            ends.append((int(last[k]), f"the {what} array of pixel {k}"))
    for end, what in ends:
        if end > ibd.size:
            raise FormatError(
                f"{ibd.url}: byte {ibd.size}: the file ends there, but {source.url} puts"
                f" {what} up to byte {end} (truncated?)"
            )


# -- the imzML's metadata -----------------------------------------------------------


def metadata(source: RangeSource) -> tuple[Header, Any, tuple[int, int, int] | None]:
    """The header, the pixel table and the shared m/z array (continuous mode) of this
    version of the imzML: from one stream of the file, then kept."""
    slot = _KEPT.slot(source)
    if "table" not in slot:
        header, table, xml_end = stream(source)
        shared = shared_mz(header, table, source.url)
        slot.update(header=header, table=table, xml_end=xml_end, shared=shared)
    return slot["header"], slot["table"], slot["shared"]


def stream(source: RangeSource) -> tuple[Header, Any, int]:
    """Read the imzML once: its header, then each pixel's row, batch by batch."""
    import numpy as np

    size, at, buffer = source.size, 0, b""
    header: Header | None = None
    rows: list[list[int]] = []
    base = 0  # file offset of buffer[0]
    while True:
        chunk = source.read(at, at + SCAN_BYTES) if at < size else b""
        at += len(chunk)
        buffer += chunk
        if header is None:
            begin = buffer.find(b"<spectrumList")
            if begin < 0:
                if not chunk:
                    raise FormatError(f"{source.url}: byte {size}: no <spectrumList> (truncated?)")
                continue
            header = parse_header(buffer[:begin], source.url)
            cut = SPECTRUM_START.search(buffer, begin)
            keep = cut.start() if cut else buffer.find(LIST_END, begin)
            if keep < 0:
                keep = len(buffer) - 64
            base, buffer = base + keep, buffer[keep:]
        stop = buffer.find(LIST_END)
        starts = [
            m.start()
            for m in SPECTRUM_START.finditer(buffer, 0, stop if stop >= 0 else len(buffer))
        ]
        done = starts if stop >= 0 else starts[:-1]
        end = stop if stop >= 0 else (starts[-1] if starts else max(0, len(buffer) - 64))
        if done:
            rows.extend(pixel_table(buffer[done[0] : end], done, header, source.url, base))
        if stop >= 0:
            table = np.array(rows, dtype="i8").reshape(-1, len(_COLUMNS))
            return header, table, base + stop
        if not chunk:
            raise FormatError(
                f"{source.url}: byte {size}: the file ends inside its spectrum list, before"
                " </spectrumList> (truncated?)"
            )
        base, buffer = base + end, buffer[end:]


def parse_header(xml: bytes, url: str) -> Header:
    encoding = encoding_of(xml)
    found = _GROUPS.search(xml)
    groups = dict(param_groups(found.group(0), encoding, url)) if found else {}
    content = _FILE_CONTENT.search(xml)
    if content is None:
        raise FormatError(f"{url}: byte 0: no <fileContent> in the header")
    values = {
        p.get("accession"): p.get("value", "")
        for p in parse_fragment(content.group(0), encoding, url, content.start()).iter()
        if local(p.tag) == "cvParam"
    }
    if UUID not in values:
        raise FormatError(f"{url}: byte {content.start()}: no UUID ({UUID}) in <fileContent>")
    uuid = re.sub(r"[{}\-\s]", "", values[UUID]).lower()
    if not re.fullmatch(r"[0-9a-f]{32}", uuid):
        raise FormatError(f"{url}: byte {content.start()}: UUID {values[UUID]!r} is not 16 bytes")
    mode = "continuous" if CONTINUOUS in values else "processed" if PROCESSED in values else ""
    if not mode:
        raise FormatError(
            f"{url}: byte {content.start()}: <fileContent> names neither continuous"
            f" ({CONTINUOUS}) nor processed ({PROCESSED}) mode"
        )
    types = {kind: _group_type(groups, kind, url) for kind in (MZ_ARRAY, INTENSITY_ARRAY)}
    return Header(uuid, mode, types[MZ_ARRAY], types[INTENSITY_ARRAY], groups, encoding)


def _group_type(groups: Groups, kind: str, url: str) -> tuple[str, bool]:
    """The dtype and compression of the ``kind`` arrays, from the group that declares them."""
    for params_ in groups.values():
        accessions = dict(params_)
        if kind in accessions:
            return _array_type(accessions, url, kind)
    raise FormatError(
        f"{url}: no referenceableParamGroup declares the {kind} array's type (as imzML asks)"
    )


def _array_type(accessions: dict[str, str], url: str, where: Any) -> tuple[str, bool]:
    for accession, what in NUMPRESS.items():
        if accession in accessions:
            raise FormatError(
                f"{url}: {where}: arrays compressed with {what} ({accession}) are not read"
            )
    dtypes = [DTYPES[a] for a in accessions if a in DTYPES]
    if len(dtypes) != 1:
        raise FormatError(
            f"{url}: {where}: {len(dtypes)} precisions; expected one of {', '.join(DTYPES)}"
        )
    return dtypes[0], ZLIB in accessions


def pixel_table(
    xml: bytes, starts: Sequence[int], header: Header, url: str, base: int
) -> list[list[int]]:
    """A row per ``<spectrum>`` of ``xml`` (``starts``: their offsets in the buffer)."""
    first = starts[0]
    relative = [s - first for s in starts]
    elements = parse_elements(xml, relative, header.encoding, url, base + first)
    return [_row(e, header, url, base + s) for e, s in zip(elements, starts, strict=True)]


def _row(element: Any, header: Header, url: str, offset: int) -> list[int]:
    position = [0, 0, -1]
    arrays: dict[str, tuple[int, int, int]] = {}
    for child in element.iter():
        tag = local(child.tag)
        if tag == "scan":
            for accession, value, _ in params(child, header.groups):
                if accession in POSITION:
                    position[POSITION[accession]] = _int(value, url, offset, accession)
        elif tag == "binaryDataArray":
            found = {a: v for a, v, _ in params(child, header.groups)}
            kind = (
                MZ_ARRAY
                if MZ_ARRAY in found
                else INTENSITY_ARRAY
                if INTENSITY_ARRAY in found
                else ""
            )
            if not kind:
                continue
            want = header.mz_type if kind == MZ_ARRAY else header.int_type
            if (
                any(a in found for a in (*DTYPES, *NUMPRESS))
                and _array_type(found, url, f"byte {offset}") != want
            ):
                raise FormatError(
                    f"{url}: byte {offset}: this pixel's {kind} array has another type than"
                    " its referenceable parameter group"
                )
            place = tuple(_int(found.get(a, ""), url, offset, a) for a in (OFFSET, LENGTH, ENCODED))
            if min(place) < 0:
                raise FormatError(f"{url}: byte {offset}: a negative external offset or length")
            arrays[kind] = place  # type: ignore[assignment]
    for kind in (MZ_ARRAY, INTENSITY_ARRAY):
        if kind not in arrays:
            raise FormatError(f"{url}: byte {offset}: a pixel without an external {kind} array")
    return [*position, *arrays[MZ_ARRAY], *arrays[INTENSITY_ARRAY], offset]


def _int(value: str, url: str, offset: int, accession: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise FormatError(
            f"{url}: byte {offset}: {accession} {value!r} is not an integer"
        ) from None


def shared_mz(header: Header, table: Any, url: str) -> tuple[int, int, int] | None:
    """Continuous mode: the one m/z array every pixel names (checked to be one)."""
    if header.mode != "continuous" or not len(table):
        return None
    first = tuple(int(v) for v in table[0, 3:6])
    if not (table[:, 3:6] == first).all():
        k = int((table[:, 3:6] != first).any(axis=1).argmax())
        raise FormatError(
            f"{url}: byte {int(table[k, 9])}: a continuous imzML whose pixel {k} names another"
            " m/z array than pixel 0"
        )
    return first  # type: ignore[return-value]


def split_pixels(sizes: Sequence[int], n: int | None, target_bytes: int | None) -> list[int]:
    """Pixel numbers where partitions start, plus the pixel count, balanced by bytes (a
    pixel with no bytes counts as one)."""
    weights = [max(s, 1) for s in sizes]
    return balanced_bounds(weights, partition_count(sum(weights), n, target_bytes, len(sizes)))


# -- reading ------------------------------------------------------------------------


def pixel_rows(source: RangeSource, partition: Partition) -> Any:
    """The table rows of the partition's pixels: kept, or from its imzML byte range."""
    import numpy as np

    first, stop = partition["first"], partition["stop"]
    slot = _KEPT.slot(source)
    if "table" in slot:
        return slot["table"][first:stop]
    start, end = partition["xml_start"], partition["xml_end"]
    data = source.read(start, end)
    stop_at = data.find(LIST_END)
    data = data[:stop_at] if stop_at >= 0 else data
    starts = [m.start() for m in SPECTRUM_START.finditer(data)]
    if len(starts) != stop - first or (starts and starts[0] != 0):
        raise FormatError(
            f"{source.url}: byte {start}: expected {stop - first} pixels in bytes"
            f" {start}..{end}, found {len(starts)}; plan the partitions again"
        )
    mz_dtype, mz_zlib = partition["mz_type"]
    int_dtype, int_zlib = partition["int_type"]
    groups = dict(partition.options.get("groups") or ())
    header = Header(partition["uuid"], partition["mode"], (mz_dtype, mz_zlib),
                    (int_dtype, int_zlib), groups, partition["encoding"])  # fmt: skip
    rows = pixel_table(data, starts, header, source.url, start) if starts else []
    return np.array(rows, dtype="i8").reshape(-1, len(_COLUMNS))


def pixels_of(ibd: RangeSource, partition: Partition, rows: Any) -> list[Pixel]:
    """Fetch the pixels' arrays from the .ibd (nearby ranges merged) and decode them."""
    shared = partition.options.get("shared_mz")
    wanted: list[tuple[int, int]] = [(int(r[6]), int(r[6] + r[8])) for r in rows]
    if shared is None:
        wanted += [(int(r[3]), int(r[3] + r[5])) for r in rows]
    else:
        wanted.append((shared[0], shared[0] + shared[2]))
    fetched = fetch_arrays(ibd, wanted)
    mz_type, int_type = partition["mz_type"], partition["int_type"]
    where = f"(pixels of {partition.url})"
    common = decode(fetched, shared, mz_type, ibd.url, where) if shared is not None else None
    out = []
    for i, r in enumerate(rows):
        mz = common if common is not None else decode(fetched, r[3:6], mz_type, ibd.url, where)
        intensity = decode(fetched, r[6:9], int_type, ibd.url, where)
        z = int(r[2]) if r[2] >= 0 else None
        out.append(Pixel(partition["first"] + i, int(r[0]), int(r[1]), z, mz, intensity))
    return out


def fetch_arrays(source: RangeSource, wanted: list[tuple[int, int]]) -> Fetched:
    """The .ibd ranges ``wanted``, nearby ones merged; FormatError if the file ends first."""
    fetched = fetch(source, wanted, MERGE_GAP)
    short = fetched.short()
    if short is not None:
        stopped, end = short
        raise FormatError(
            f"{source.url}: byte {stopped}: the file ends there; arrays run to byte {end}"
            " (truncated?)"
        )
    return fetched


def decode(
    fetched: Fetched, where: Sequence[int], dtype_zlib: Sequence[Any], url: str, what: str
) -> Any:
    import numpy as np

    offset, length, encoded = (int(v) for v in where)
    dtype, compressed = dtype_zlib
    raw = fetched.get(offset, offset + encoded) if encoded else b""
    if compressed and raw:
        raw = inflate(raw, url, offset)
    return as_array(raw, dtype, length, url, offset, np)
