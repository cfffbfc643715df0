"""Where a FASTA file's sequences lie: samtools faidx's index (``.fai``), read or built by a scan.

An entry says, for one sequence, what ``samtools faidx`` writes: its name, its
length in residues, the byte offset of its first residue, and its line layout
(residues per line, bytes per line with the line ending). With those, the byte
of any residue is arithmetic (:meth:`FaiEntry.byte`), which is how residue
ranges within one chromosome are planned without reading the chromosome.

A ``.fai`` beside the data file is never trusted as it stands: :func:`read_fai`
checks its columns and that its sequences lie in order inside the file, and the
planners check the bytes where they cut (a header line start, the end of a
sequence, the line ends around a residue range). Without a ``.fai``,
:func:`scan` builds the same entries in one pass over the text, and refuses a
sequence whose lines are not all of one width (but its last), as samtools
does: residue arithmetic needs that.
"""

from __future__ import annotations

import bisect
import itertools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._errors import FormatError
from ..codecs import ByteReader
from ..codecs.bgzf import MAX_BLOCK, decompress_blocks, inflate_first

#: Bytes read per request by :func:`scan` (one pass over the whole text).
SCAN_BLOCK = 8 * 2**20
#: What to do about an index that does not match its data file.
REBUILD = "make it again (samtools faidx FILE) or plan with index=False"


def mismatch(where: str) -> str:
    """What a refusal of the index named in ``where`` (``X.fai: line 3``) says to do."""
    index = where.split(": ")[0]
    data = index[:-4] if index.endswith((".fai", ".gzi")) else index
    return f"the index does not match the data file {data}; {REBUILD}"


#: Bytes after a sequence's computed end that may be blank lines before the next header.
BLANK_SLACK = 4 * 2**10


@dataclass(frozen=True, slots=True)
class FaiEntry:
    """One sequence as samtools faidx indexes it; ``stop`` is the byte after it
    (where the next header starts, trailing blank lines included when known)."""

    name: str
    length: int
    offset: int
    linebases: int
    linewidth: int
    stop: int

    def byte(self, residue: int) -> int:
        """The file (or uncompressed) offset of residue ``residue`` (0-based); the
        sequence's ``stop`` for ``residue == length``."""
        if residue >= self.length:
            return self.stop
        lines, column = divmod(residue, self.linebases)
        return self.offset + lines * self.linewidth + column

    @property
    def eol(self) -> int:
        """Bytes of each line ending (1: LF, 2: CRLF)."""
        return self.linewidth - self.linebases


def sequence_end(length: int, offset: int, linebases: int, linewidth: int) -> int:
    """The byte after a sequence's last line ending, by samtools' arithmetic."""
    if length == 0:
        return offset
    lines, column = divmod(length - 1, linebases)
    return offset + lines * linewidth + column + 1 + (linewidth - linebases)


def parse_fai(text: bytes, where: str, size: int) -> list[FaiEntry]:
    """The entries of a ``.fai`` (named ``where`` in errors) for a data file of ``size``
    bytes; FormatError at the first line that does not fit."""
    entries: list[FaiEntry] = []
    for number, line in enumerate(text.split(b"\n"), start=1):
        if not line.strip():
            continue
        entries.append(_fai_line(line, f"{where}: line {number}", entries, size))
    if not entries:
        raise FormatError(f"{where}: line 1: expected samtools faidx lines, the index is empty")
    return entries


def _fai_line(line: bytes, where: str, before: list[FaiEntry], size: int) -> FaiEntry:
    fields = line.rstrip(b"\r").split(b"\t")
    if len(fields) != 5:
        kind = " (a FASTQ index)" if len(fields) == 6 else ""
        raise FormatError(
            f"{where}: expected 5 tab-separated columns (name, length, offset, linebases,"
            f" linewidth), found {len(fields)}{kind}"
        )
    try:
        name = fields[0].decode()
        length, offset, linebases, linewidth = (int(f) for f in fields[1:])
    except ValueError:
        raise FormatError(
            f"{where}: expected a name and four integers, found {line[:80]!r}"
        ) from None
    if length < 0 or offset < 0 or linebases < (1 if length else 0):
        raise FormatError(f"{where}: impossible entry {line[:80]!r} (negative or zero widths)")
    if length and linewidth - linebases not in (1, 2):
        raise FormatError(
            f"{where}: linewidth {linewidth} for linebases {linebases}: a line ending is one"
            " or two bytes"
        )
    if before and offset < before[-1].stop:
        raise FormatError(
            f"{where}: sequence {name!r} starts at byte {offset}, inside the one before it"
            f" ({before[-1].name!r} ends at byte {before[-1].stop}): {mismatch(where)}"
        )
    stop = sequence_end(length, offset, linebases, linewidth)
    if stop > size + 1:  # the last line may lack its line ending
        raise FormatError(
            f"{where}: sequence {name!r} would end at byte {stop}, past the end of the data"
            f" file ({size} bytes): {mismatch(where)}"
        )
    return FaiEntry(name, length, offset, linebases, linewidth, min(stop, size))


class _Building:
    """One sequence's entry while :func:`scan` walks its lines."""

    def __init__(self, name: str, offset: int) -> None:
        self.name, self.offset = name, offset
        self.linebases: int | None = None
        self.eol = 1
        self.length = 0
        self.short_at: int | None = None  # a line shorter than the others: must be the last
        self.blank_at: int | None = None  # a blank line: only blank lines may follow
        self.linewise = False  # the bulk check failed once: go line by line

    def entry(self, stop: int) -> FaiEntry:
        lb = self.linebases or 0
        return FaiEntry(self.name, self.length, self.offset, lb, lb + self.eol, stop)

    def feed(self, seg: bytes, at: int, url: str) -> None:
        """Take ``seg``, whole lines of this sequence at byte ``at``."""
        i, n = 0, len(seg)
        while i < n:
            if self.linebases and self.short_at is None and self.blank_at is None:
                i += self._bulk(seg, i)
                if i >= n:
                    return
            i = self._line(seg, i, at, url)

    def _bulk(self, seg: bytes, i: int) -> int:
        """Bytes of full lines (all of one width) from ``seg[i]`` on, counted at C speed."""
        lb = self.linebases or 0
        lw = lb + self.eol
        k = (len(seg) - i) // lw
        if k == 0 or self.linewise:
            return 0
        chunk = seg[i : i + k * lw]
        ends = chunk[lw - 1 :: lw]
        good = len(ends) - len(ends.lstrip(b"\n"))
        if self.eol == 2:
            crs = chunk[lb::lw][:good]
            good = len(crs) - len(crs.lstrip(b"\r"))
        body = chunk[: good * lw]
        if body.count(b"\n") != good or body.count(b"\r") != good * (self.eol - 1):
            self.linewise = True  # a short line in there: find it line by line
            return 0
        self.length += good * lb
        return good * lw

    def _line(self, seg: bytes, i: int, at: int, url: str) -> int:
        e = seg.find(b"\n", i)
        end = len(seg) if e < 0 else e + 1
        line = seg[i : end - 1 if e >= 0 else end]
        cr = line.endswith(b"\r")
        body = len(line) - cr
        eol = (1 + cr) if e >= 0 else 0
        where = at + i
        if body == 0:
            if self.blank_at is None and eol:
                self.blank_at = where
            return end
        if self.blank_at is not None or self.short_at is not None:
            after = "a blank line" if self.blank_at is not None else "a shorter line"
            raise FormatError(
                f"{url}: byte {where}: residues of {self.name!r} after {after} (byte"
                f" {self.blank_at if self.blank_at is not None else self.short_at}): residue"
                " ranges need every line of a sequence but its last to hold the same number of"
                " residues, as samtools faidx does (partition by records instead)"
            )
        if self.linebases is None:
            self.linebases, self.eol = body, eol or 1
        elif body > self.linebases or (eol and eol != self.eol):
            raise FormatError(
                f"{url}: byte {where}: a line of {body} residues ending in"
                f" {'CRLF' if eol == 2 else 'LF'} in {self.name!r}, whose lines hold"
                f" {self.linebases} ending in {'CRLF' if self.eol == 2 else 'LF'}: residue"
                " ranges need lines of one width, as samtools faidx does (partition by"
                " records instead)"
            )
        if body < self.linebases or eol == 0:
            self.short_at = where
        self.length += body
        return end


def scan(reader: ByteReader, url: str, block: int = SCAN_BLOCK) -> list[FaiEntry]:
    """Every sequence's entry, by one pass over ``reader`` (a whole FASTA text)."""
    size = reader.size
    entries: list[FaiEntry] = []
    current: list[_Building] = []
    pos, carry = 0, b""
    while pos < size or carry:
        data = reader.read(pos, pos + block) if pos < size else b""
        if pos < size and not data:
            raise FormatError(f"{url}: byte {pos}: the file ended early")
        base = pos - len(carry)
        text = carry + data
        pos += len(data)
        cut = len(text) if pos >= size else text.rfind(b"\n") + 1
        if cut == 0:  # one line longer than a block: read on
            carry = text
            continue
        _scan_lines(text[:cut], base, url, entries, current)
        carry = text[cut:]
    if current:
        entries.append(current[0].entry(size))
    return entries


def _scan_lines(
    text: bytes, base: int, url: str, entries: list[FaiEntry], current: list[_Building]
) -> None:
    """Feed whole lines ``text`` (at byte ``base``) to the sequences they belong to."""
    i, n = 0, len(text)
    while i < n:
        if text[i] == 62:  # '>': a header line
            e = text.find(b"\n", i)
            end = n if e < 0 else e + 1
            if current:
                entries.append(current.pop().entry(base + i))
            header = text[i + 1 : end].rstrip(b"\r\n")
            current.append(_Building(_name(header, url, base + i), base + end))
            i = end
            continue
        if not current:
            raise FormatError(f"{url}: byte {base + i}: expected a header line starting with '>'")
        k = text.find(b"\n>", i)
        stop = n if k < 0 else k + 1
        current[0].feed(text[i:stop], base + i, url)
        i = stop


def _name(header: bytes, url: str, at: int) -> str:
    """A header's first word (split at ASCII whitespace, as samtools)."""
    words = header.split(None, 1)
    try:
        return words[0].decode() if words else ""
    except UnicodeDecodeError as exc:
        raise FormatError(f"{url}: byte {at + 1 + exc.start}: header is not UTF-8") from None


def check_sequence(entry: FaiEntry, read: Callable[[int, int], bytes], where: str) -> None:
    """Spot-check that ``entry`` matches the data: its header line names it, its first
    residue follows that header, and its last line ends where the entry says."""
    low = max(0, entry.offset - 1 - len(entry.name.encode()) - 2 - BLANK_SLACK)
    before = read(low, entry.offset)
    start = before.rfind(b"\n", 0, len(before) - 1) + 1
    if low > 0 and start == 0:
        start = -1
    header = before[start:].rstrip(b"\r\n")[1:] if start >= 0 else b""
    if start < 0 or before[start : start + 1] != b">" or _name(header, where, low) != entry.name:
        raise FormatError(
            f"{where}: byte {entry.offset}: the index says {entry.name!r} starts here, but the"
            f" line before it is {before[max(0, start) :][-80:]!r}, not its header:"
            f" {mismatch(where)}"
        )
    if entry.length == 0:
        return
    last = entry.byte(entry.length - 1)
    tail = read(last, last + 1 + entry.eol + 1)
    ending = b"\n" if entry.eol == 1 else b"\r\n"
    ok = tail[1 : 1 + entry.eol] in (ending, b"") and tail[:1] not in (b"\n", b"\r", b">", b"")
    follows = tail[1 + entry.eol :]
    if not ok or follows not in (b"", b">", b"\n", b"\r"):
        raise FormatError(
            f"{where}: byte {last}: the index says the last residue of {entry.name!r} is here"
            f" and its line ends after it, found {tail!r}: {mismatch(where)}"
        )


# -- BGZF: the .gzi beside the .fai ----------------------------------------------------------

#: bgzip's end-of-file block (an empty block), the last bytes of every BGZF file.
EOF_BLOCK = 28


def parse_gzi(blob: bytes, where: str, size: int) -> list[tuple[int, int]]:
    """The block starts a ``.gzi`` lists, ``(compressed, uncompressed)`` offsets, with the
    first block's ``(0, 0)`` that it leaves out, for a BGZF file of ``size`` bytes;
    FormatError at the first entry that does not fit."""
    if len(blob) < 8:
        raise FormatError(f"{where}: byte 0: the index is cut short (expected a count)")
    (count,) = struct.unpack_from("<Q", blob)
    if len(blob) != 8 + 16 * count:
        raise FormatError(f"{where}: byte 8: the index counts {count} blocks, which take"
                          f" {8 + 16 * count} bytes; it has {len(blob)}")  # fmt: skip
    flat = struct.unpack_from(f"<{2 * count}Q", blob, 8)
    pairs = [(0, 0), *zip(flat[::2], flat[1::2], strict=True)]
    for k, ((c0, u0), (c1, u1)) in enumerate(itertools.pairwise(pairs)):
        if not (c0 < c1 < size and 0 <= u1 - u0 <= MAX_BLOCK):
            raise FormatError(
                f"{where}: byte {8 + 16 * k}: a block at byte {c1} holding uncompressed byte"
                f" {u1} cannot follow one at byte {c0} holding {u0} in a file of {size} bytes:"
                f" {mismatch(where)}"
            )
    return pairs


class GziText:
    """The uncompressed bytes of a BGZF file, read through its ``.gzi`` (a
    :class:`~aifdata.codecs.ByteReader`): a range is one read of the blocks that hold it.

    Made by :meth:`open`, which checks the file's end against the index first."""

    def __init__(self, source: Any, where: str, blocks: list[tuple[int, int]], size: int):
        self.source, self.where, self.blocks, self.size = source, where, blocks, size
        self._starts = [u for _, u in blocks]

    @classmethod
    def open(cls, source: Any, where: str, blocks: list[tuple[int, int]]) -> GziText:
        """The text of ``source`` through ``blocks`` (the ``.gzi`` at ``where``), whose last
        block must be the file's last block of data: after it, only empty blocks (one read
        of at most a block and bgzip's end-of-file block). Data appended or rewritten after
        the index was made fails this."""
        last, base = blocks[-1]
        tail = source.size - last
        if tail > MAX_BLOCK + EOF_BLOCK:
            raise _stale_at(where, source.url, last, f"its last block is there, but the file"
                                                     f" goes on for {tail:,} bytes")  # fmt: skip
        raw = source.read(last, source.size)
        found = inflate_first(raw, source.url, last)
        if found is None:
            raise _stale_at(where, source.url, last, "no BGZF block starts there")
        data, size = found
        rest, used = decompress_blocks(raw[size:], source.url, last + size)
        if rest or size + used != len(raw):
            raise _stale_at(where, source.url, last, "its last block is there, but more data"
                                                     " follows it")  # fmt: skip
        return cls(source, where, blocks, base + len(data))

    def span(self, start: int, end: int) -> tuple[int, int, int]:
        """``(first block, its uncompressed offset, file end of the last block)`` of the
        blocks holding uncompressed bytes ``[start, end)``."""
        first = max(0, bisect.bisect_right(self._starts, start) - 1)
        last = max(first, bisect.bisect_left(self._starts, end) - 1)
        stop = self.blocks[last + 1][0] if last + 1 < len(self.blocks) else self.source.size
        return self.blocks[first][0], self.blocks[first][1], stop

    def read(self, start: int, end: int) -> bytes:
        start, end = max(0, start), min(end, self.size)
        if start >= end:
            return b""
        c0, u0, c1 = self.span(start, end)
        data, used = decompress_blocks(self.source.read(c0, c1), self.source.url, c0)
        if used != c1 - c0 or len(data) < end - u0:
            raise _stale_at(self.where, self.source.url, c0, f"the blocks from there to byte"
                                                             f" {c1} do not hold uncompressed"
                                                             f" bytes {u0}-{end}")  # fmt: skip
        return data[start - u0 : end - u0]


def _stale_at(where: str, url: str, at: int, problem: str) -> FormatError:
    return FormatError(f"{where}: byte {at} of {url}: {problem}: {mismatch(where)}")
