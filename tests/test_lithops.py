"""Lithops over partitions on its localhost backend: the same results as a local read, in order.

Each test runs a short script in a fresh interpreter, as a user's driver would
be: Lithops makes its directories under the temporary directory and the home
directory it finds when it is imported, so the script's ``TMPDIR`` and ``HOME``
(under the test's ``tmp_path``) keep every file Lithops writes inside the test's
own directory. The Lithops workers, local
processes, read the partitions through ``aif://`` with the mount table that
``$AIFDATA_CONFIG`` names.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import subprocess
import sys
import textwrap

import pytest

from aifdata import _synthetic
from aifdata.formats import partition

pytestmark = pytest.mark.e2e

if importlib.util.find_spec("lithops") is None:  # not imported here: importing it makes directories
    pytest.skip("needs lithops (extra: lithops)", allow_module_level=True)

#: The executor every script uses: this interpreter's Python on this machine, two processes,
#: no configuration file, and no cleaner process left behind (tmp_path goes anyway).
PRELUDE = """
import json, pickle, sys
import lithops
import aifdata

executor = lithops.FunctionExecutor(config={
    "lithops": {"backend": "localhost", "storage": "localhost", "data_cleaner": False},
    "localhost": {"runtime": sys.executable, "worker_processes": 2},
})
parts = pickle.load(open(sys.argv[1], "rb"))
"""


def run(script, parts, tmp_path):
    """Run ``script`` (after PRELUDE) with ``parts``; what it prints, as JSON."""
    lithops_tmp, home = tmp_path / "lithops-tmp", tmp_path / "home"
    lithops_tmp.mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    (tmp_path / "parts.pickle").write_bytes(pickle.dumps(parts))
    (tmp_path / "driver.py").write_text(PRELUDE + textwrap.dedent(script))
    done = subprocess.run(
        [sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "parts.pickle")],
        env={**os.environ, "TMPDIR": str(lithops_tmp), "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def reads(genomics_fs):
    genomics_fs.pipe("genomics/run42/reads.fastq", _synthetic.fastq(3000, seed=11))
    return partition("aif://genomics/run42/reads.fastq", n=5)


def test_map_gives_each_partitions_records_in_order(reads, tmp_path):
    shown = run(
        """
        names = aifdata.lithops.map(lambda records: [r.name for r in records], parts,
                                    executor=executor)
        in_runs = aifdata.lithops.map(lambda records: [r.name for r in records], parts,
                                      executor=executor, per_call=2)
        # no glue: a partition binds to the function's first parameter
        futures = executor.map(lambda partition: len(partition.read()), parts)
        counts = executor.get_result(fs=futures)
        print(json.dumps({"names": names, "in_runs": in_runs, "counts": counts}))
        """,
        reads,
        tmp_path,
    )
    local = [[r.name for r in p.read()] for p in reads]
    assert shown["names"] == local
    assert shown["in_runs"] == local  # three calls (2, 2 and 1 partitions), a result each
    assert shown["counts"] == [len(names) for names in local]
    assert sum(shown["counts"]) == 3000
    assert any((tmp_path / "lithops-tmp").iterdir())  # Lithops worked in the test's directories
    assert any((tmp_path / "home").iterdir())  # (its runtime cache)


def test_a_partition_of_a_changed_file_is_refused_on_the_worker(genomics_fs, reads, tmp_path):
    genomics_fs.pipe("genomics/run42/reads.fastq", _synthetic.fastq(3100, seed=12))
    shown = run(
        """
        try:
            aifdata.lithops.map(len, parts, executor=executor)
        except Exception as exc:
            print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
        """,
        reads,
        tmp_path,
    )
    assert shown["error"] == "FormatError"
    assert "aif://genomics/run42/reads.fastq" in shown["message"]
    assert "changed since it was partitioned" in shown["message"]


def test_partitions_only():
    import aifdata.lithops

    with pytest.raises(TypeError, match="got str"):
        aifdata.lithops.map(len, ["aif://genomics/run42/reads.fastq"])
    assert aifdata.lithops.map(len, []) == []
    with pytest.raises(ValueError, match="per_call must be at least 1"):
        aifdata.lithops.map(len, [], per_call=0)
