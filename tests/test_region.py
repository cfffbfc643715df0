"""Region strings read once for FASTA, VCF and BAM (aifdata/formats/_region.py)."""

from __future__ import annotations

import pytest

from aifdata.formats._region import split_region


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("chr1", ("chr1", None, None)),
        ("chr1:100", ("chr1", 100, None)),
        ("chr1:100-", ("chr1", 100, None)),
        ("chr1:-200", ("chr1", None, 200)),
        ("chr1:1,000-2,000", ("chr1", 1000, 2000)),
        ("chr1:", ("chr1", None, None)),
        ("a:b:5-6", ("a:b", 5, 6)),
    ],
)
def test_samtools_regions(region, expected):
    assert split_region(region) == expected


def test_a_known_name_with_a_colon_is_taken_whole():
    assert split_region("HLA-A*01:01", {"HLA-A*01:01"}) == ("HLA-A*01:01", None, None)
    assert split_region("HLA-A*01:01:5-9", {"HLA-A*01:01"}) == ("HLA-A*01:01", 5, 9)


@pytest.mark.parametrize("region", ["chr1:abc", "chr1:5-x", "chr1:-5-10", "chr1:1.5"])
def test_positions_that_are_not_numbers_are_refused(region):
    with pytest.raises(ValueError, match=r"expected NAME, NAME:BEG or NAME:BEG-END"):
        split_region(region)
