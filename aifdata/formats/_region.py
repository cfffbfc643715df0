"""Region strings as samtools and tabix read them: ``chr1``, ``chr1:100``, ``chr1:100-200``.

One reading for FASTA, VCF and BAM: positions are 1-based and inclusive, commas
allowed (``chr1:1,000-2,000``), and either end may be left out (``chr1:100`` and
``chr1:100-`` run to the end of the sequence, ``chr1:-200`` starts at its first
position). A name that holds a colon (``HLA-A*01:01``) is taken whole when the file
knows it. Each format then checks the positions against what it knows (lengths,
contigs) and says what is wrong in its own terms.
"""

from __future__ import annotations

from collections.abc import Container

__all__ = ["split_region"]


def split_region(region: str, names: Container[str] = ()) -> tuple[str, int | None, int | None]:
    """``(name, first, last)`` of ``region``: 1-based and inclusive as written, None where
    left out. ValueError naming the region when its positions are not numbers."""
    if region in names or ":" not in region:
        return region, None, None
    name, _, span = region.rpartition(":")
    first, _, last = span.replace(",", "").partition("-")
    if not (first.isdigit() or not first) or not (last.isdigit() or not last):
        raise ValueError(
            f"region {region!r}: expected NAME, NAME:BEG or NAME:BEG-END (1-based, inclusive)"
        )
    return name, int(first) if first else None, int(last) if last else None
