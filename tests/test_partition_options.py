"""Options of ``aifdata.partition`` reach the format's plan, or are refused by name."""

from __future__ import annotations

import pytest

import aifdata
from aifdata import _synthetic
from aifdata.formats import get, plan_options


def test_an_option_the_format_does_not_take_is_refused_with_the_ones_it_does(tmp_path):
    path = tmp_path / "reads.fastq"
    path.write_bytes(_synthetic.fastq(10))
    with pytest.raises(
        ValueError, match=r"the fastq format takes no option 'region' \(it takes none\)"
    ):
        aifdata.partition(str(path), n=2, region="chr1")
    fasta = tmp_path / "genome.fa"
    fasta.write_bytes(b">chr1\nACGT\n")
    with pytest.raises(
        ValueError, match=r"no option 'variable' \(its options: by, region, index\)"
    ):
        aifdata.partition(str(fasta), variable="x")


def test_options_reach_the_plan():
    assert plan_options(get("hdf5")) == ["variable"]
    assert "region" in plan_options(get("bam"))


def test_the_cli_passes_region_variable_and_by(tmp_path, capsys):
    from aifdata.cli import main

    fasta = tmp_path / "genome.fa"
    fasta.write_bytes(b">chr1\n" + b"ACGT" * 100 + b"\n")
    code = main(["partition", str(fasta), "--n", "4", "--by", "residues", "--region", "chr1:1-200"])
    assert code in (0, None)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4
    assert "chr1" in out[0]
