"""PSI XML (mzML, imzML): fragments of a document parsed alone, cvParams, binary arrays.

Both formats read a run of ``<spectrum>`` elements cut out of a large document:
:func:`parse_elements` parses them inside a dummy root (with the document's
encoding), with lxml when installed, else the standard library's ElementTree,
and names the byte offset of anything not well-formed. cvParams are looked up
by accession, with the referenceable parameter groups a partition carries
(only what reading needs). Binary arrays are base64, optionally zlib, of
32/64-bit floats or integers, or MS-Numpress (decoded with pynumpress when it
is installed, else refused naming the cvParam).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._errors import FormatError

if TYPE_CHECKING:
    import numpy as np


#: A cvParam of the imaging (IMS) vocabulary; attribute values in either quote.
_IMS_PARAM = re.compile(rb"""accession=["']IMS:""")
_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding=["']([A-Za-z0-9._-]+)["']""")


MZ_ARRAY, INTENSITY_ARRAY = "MS:1000514", "MS:1000515"


DTYPES = {"MS:1000521": "<f4", "MS:1000523": "<f8", "MS:1000519": "<i4", "MS:1000522": "<i8"}


ZLIB, NO_COMPRESSION = "MS:1000574", "MS:1000576"


NUMPRESS = {
    "MS:1002312": "MS-Numpress linear prediction compression",
    "MS:1002313": "MS-Numpress positive integer compression",
    "MS:1002314": "MS-Numpress short logged float compression",
    "MS:1002746": "MS-Numpress linear prediction compression followed by zlib compression",
    "MS:1002747": "MS-Numpress positive integer compression followed by zlib compression",
    "MS:1002748": "MS-Numpress short logged float compression followed by zlib compression",
}


#: MS-Numpress accessions: the pynumpress decoder, and whether zlib was applied after it.
NUMPRESS_CODING = {
    "MS:1002312": ("linear", False),
    "MS:1002313": ("pic", False),
    "MS:1002314": ("slof", False),
    "MS:1002746": ("linear", True),
    "MS:1002747": ("pic", True),
    "MS:1002748": ("slof", True),
}


MS_LEVEL, SCAN_START_TIME = "MS:1000511", "MS:1000016"


#: What a referenceable parameter group may carry that reading needs (the rest is dropped).
RELEVANT = frozenset(
    {MZ_ARRAY, INTENSITY_ARRAY, ZLIB, NO_COMPRESSION, MS_LEVEL, *DTYPES, *NUMPRESS}
)


Groups = Mapping[str, Sequence[tuple[str, str]]]


def is_mzml(head: bytes) -> bool:
    start = head.lstrip()[:1]
    return start == b"<" and (b"<mzML" in head or b"<indexedmzML" in head)


def is_imzml(head: bytes) -> bool:
    return _IMS_PARAM.search(head) is not None or b"imagingMS.obo" in head


def encoding_of(head: bytes) -> str:
    """The document's encoding, from its XML declaration (UTF-8 when it names none)."""
    found = _ENCODING.match(head)
    return found.group(1).decode("ascii") if found else "UTF-8"


def param_groups(xml: bytes, encoding: str, url: str) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """``(id, ((accession, value), ...))`` of each referenceable parameter group, keeping
    only what reading needs (array kind, precision, compression, MS level)."""
    root = parse_fragment(xml, encoding, url, 0)
    out = []
    for group in root.iter():
        if local(group.tag) == "referenceableParamGroup":
            params = tuple(
                (p.get("accession", ""), p.get("value", ""))
                for p in group
                if local(p.tag) == "cvParam" and p.get("accession") in RELEVANT
            )
            if params:  # a group of nothing reading needs is left out
                out.append((group.get("id", ""), params))
    return tuple(out)


def parse_elements(
    data: bytes, starts: Sequence[int], encoding: str, url: str, base: int
) -> list[Any]:
    """The elements of the XML ``data`` (consecutive elements starting at ``starts``)."""
    try:
        root = _fromstring(wrap(data, encoding))
    except _xml_errors():
        for a, b in zip(starts, [*starts[1:], len(data)], strict=True):
            parse_fragment(data[a:b], encoding, url, base + a)  # raises, naming the offset
        raise FormatError(f"{url}: byte {base}: not well-formed XML") from None
    elements = [e for e in root if isinstance(e.tag, str)]
    if len(elements) != len(starts):
        raise FormatError(
            f"{url}: byte {base}: {len(starts)} elements expected, {len(elements)} found"
        )
    return elements


def wrap(data: bytes, encoding: str) -> bytes:
    return b'<?xml version="1.0" encoding="%s"?><_>%s</_>' % (encoding.encode(), data)


def parse_fragment(data: bytes, encoding: str, url: str, offset: int) -> Any:
    """``data`` parsed inside a dummy root; FormatError naming the byte offset of an error."""
    wrapped = wrap(data, encoding)
    try:
        return _fromstring(wrapped)
    except _xml_errors() as exc:
        line, column = _position(exc)
        prefix = len(wrapped) - len(data) - len(b"</_>")
        at = _line_start(wrapped, line) + max(column - 1, 0) - prefix
        at = min(max(at, 0), len(data))
        message = str(exc).split(" (<string>")[0][:200]
        raise FormatError(f"{url}: byte {offset + at}: not well-formed XML: {message}") from None


def _line_start(data: bytes, line: int) -> int:
    at = 0
    for _ in range(max(line - 1, 0)):
        found = data.find(b"\n", at)
        if found < 0:
            break
        at = found + 1
    return at


def _position(exc: Exception) -> tuple[int, int]:
    position = getattr(exc, "position", None)  # ElementTree
    if position:
        return int(position[0]), int(position[1]) + 1
    return int(getattr(exc, "lineno", 1) or 1), int(getattr(exc, "offset", 1) or 1)


@functools.cache
def _parser() -> Any:
    try:
        from lxml import etree
    except ImportError:
        return None
    return etree.XMLParser(
        huge_tree=True, resolve_entities=False, no_network=True, remove_comments=True
    )


def _fromstring(data: bytes) -> Any:
    parser = _parser()
    if parser is None:
        import xml.etree.ElementTree as ElementTree

        return ElementTree.fromstring(data)
    from lxml import etree

    return etree.fromstring(data, parser)


@functools.cache
def _xml_errors() -> tuple[type[Exception], ...]:
    import xml.etree.ElementTree as ElementTree

    errors: list[type[Exception]] = [ElementTree.ParseError]
    try:
        from lxml import etree

        errors.append(etree.XMLSyntaxError)
    except ImportError:
        pass
    return tuple(errors)


def local(tag: Any) -> str:
    """An element's tag without its namespace."""
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def params(element: Any, groups: Groups) -> list[tuple[str, str, Any]]:
    """``(accession, value, element)`` of the cvParams of ``element`` and its groups."""
    out: list[tuple[str, str, Any]] = []
    for child in element:
        tag = local(child.tag)
        if tag == "cvParam":
            out.append((child.get("accession", ""), child.get("value", ""), child))
        elif tag == "referenceableParamGroupRef":
            out.extend((a, v, None) for a, v in groups.get(child.get("ref", ""), ()))
    return out


def array_type(accessions: Mapping[str, str], url: str, offset: int) -> tuple[str, bool]:
    """The numpy dtype of an array and whether it is zlib-compressed, from its cvParams."""
    dtypes = [DTYPES[a] for a in accessions if a in DTYPES]
    if len(dtypes) != 1:
        raise FormatError(
            f"{url}: byte {offset}: a binary array names {len(dtypes)} precisions; expected one"
            f" of {', '.join(DTYPES)}"
        )
    return dtypes[0], ZLIB in accessions


def numpress_of(accessions: Mapping[str, str], url: str, offset: int) -> str | None:
    """The MS-Numpress accession of an array, if any (checked to be decodable here)."""
    found = next((a for a in accessions if a in NUMPRESS), None)
    if found is not None and _pynumpress() is None:
        raise FormatError(
            f"{url}: byte {offset}: a binary array is compressed with {NUMPRESS[found]}"
            f" ({found}); decoding it needs pynumpress (pip install pynumpress)"
        )
    return found


@functools.cache
def _pynumpress() -> Any:
    try:
        import pynumpress
    except ImportError:
        return None
    return pynumpress


def decode_array(
    text: str, accessions: Mapping[str, str], expected: int, url: str, offset: int
) -> np.ndarray:
    """One base64 binary array, decompressed and checked to hold ``expected`` values."""
    import numpy as np

    numpress = numpress_of(accessions, url, offset)
    if numpress is None:
        dtype, compressed = array_type(accessions, url, offset)
    else:
        dtype, compressed = "<f8", NUMPRESS_CODING[numpress][1]
    compact = "".join(text.split())
    if not compact:
        raw = b""
    else:
        try:
            raw = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FormatError(
                f"{url}: byte {offset}: a binary array is not base64: {exc}"
            ) from None
        if compressed:
            raw = inflate(raw, url, offset)
    if numpress is not None and raw:
        raw = unpress(raw, numpress, url, offset)
    array: np.ndarray = as_array(raw, dtype, expected, url, offset, np)
    return array


def unpress(raw: bytes, accession: str, url: str, offset: int) -> bytes:
    """MS-Numpress bytes decoded (by pynumpress) to little-endian doubles."""
    import numpy as np

    decoder = getattr(_pynumpress(), f"decode_{NUMPRESS_CODING[accession][0]}")
    try:
        values = decoder(np.frombuffer(raw, np.uint8))
    except Exception as exc:  # pynumpress raises what its C++ library throws
        raise FormatError(
            f"{url}: byte {offset}: a binary array is not {NUMPRESS[accession]} data: {exc}"
        ) from None
    return bytes(np.asarray(values, "<f8").tobytes())


def inflate(raw: bytes, url: str, offset: int) -> bytes:
    try:
        return zlib.decompress(raw)
    except zlib.error as exc:
        raise FormatError(f"{url}: byte {offset}: a binary array is not zlib data: {exc}") from None


def as_array(raw: bytes, dtype: str, expected: int, url: str, offset: int, np: Any) -> Any:
    width = int(dtype[-1])
    if len(raw) != expected * width:
        raise FormatError(
            f"{url}: byte {offset}: a binary array holds {len(raw)} bytes; {expected} values of"
            f" {width} bytes were expected"
        )
    return np.frombuffer(raw, dtype)


def number(value: str, kind: type, url: str, offset: int, what: str) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise FormatError(f"{url}: byte {offset}: {what} {value!r} is not a number") from None


def arrow_table(columns: Mapping[str, list[Any]]) -> Any:
    """A pyarrow table: scalars as they are, arrays as list columns."""
    import numpy as np
    import pyarrow as pa

    out = {}
    for name, values in columns.items():
        if values and isinstance(values[0], np.ndarray):
            lengths = np.fromiter((len(v) for v in values), "i8", len(values))
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            flat = np.concatenate(values) if values else np.empty(0, "f8")
            out[name] = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat))
        else:
            out[name] = pa.array(values)
    return pa.table(out)
