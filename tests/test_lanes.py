"""The test lanes: every test is marked by what it needs, and the unit lane keeps its promise."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from . import conftest

pytest_plugins = ["pytester"]

HERE = Path(__file__).parent

INI = """
[pytest]
addopts = --strict-markers -p no:cacheprovider
markers =
    unit: no server, no process
    s3: the S3 server
    e2e: processes
"""


@pytest.fixture
def lanes(pytester: pytest.Pytester) -> pytest.Pytester:
    """A scratch project with this suite's conftest and lanes."""
    pytester.makeini(INI)
    pytester.makeconftest((HERE / "conftest.py").read_text(encoding="utf-8"))
    return pytester


def lanes_of(pytester: pytest.Pytester) -> dict[str, list[str]]:
    """Each collected test's lanes, by node id."""
    items, _ = pytester.inline_genitems()
    marks = ("unit", "s3", "e2e")
    return {i.nodeid: [m for m in marks if i.get_closest_marker(m)] for i in items}


def test_each_test_gets_the_lanes_of_what_it_needs(lanes):
    lanes.makepyfile(
        test_mixed="""
        import pytest

        def test_pure():
            pass

        def test_server(seaweedfs):
            pass

        def test_bucket(bucket):
            pass

        @pytest.mark.e2e
        def test_process():
            pass
        """,
        test_processes="""
        import pytest

        pytestmark = pytest.mark.e2e

        def test_one():
            pass

        def test_with_server(seaweedfs):
            pass
        """,
    )
    assert lanes_of(lanes) == {
        "test_mixed.py::test_pure": ["unit"],
        "test_mixed.py::test_server": ["s3"],
        "test_mixed.py::test_bucket": ["s3"],
        "test_mixed.py::test_process": ["e2e"],
        "test_processes.py::test_one": ["e2e"],
        "test_processes.py::test_with_server": ["s3", "e2e"],
    }


def test_a_unit_test_that_asks_for_the_server_fails(lanes, monkeypatch):
    monkeypatch.delenv("AIFDATA_TEST_S3_ENDPOINT", raising=False)
    lanes.makepyfile(
        test_sneaky="""
        import pytest

        @pytest.mark.unit
        def test_by_argument(seaweedfs):
            pass

        def test_by_name(request):
            request.getfixturevalue("seaweedfs")
        """
    )
    result = lanes.runpytest("-m", "unit")
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_by_argument is in the unit lane but asks for the seaweedfs fixture*",
            "*test_by_name is in the unit lane but asks for the seaweedfs fixture*",
        ]
    )
    result.stdout.no_fnmatch_line("*started a process*")  # refused before any server starts


def test_a_unit_test_that_starts_a_process_fails_even_when_it_swallows_the_failure(lanes):
    lanes.makepyfile(
        test_spawning="""
        import multiprocessing
        import os
        import subprocess
        import sys

        import pytest

        def test_run():
            subprocess.run([sys.executable, "-c", "pass"], check=True)

        def test_swallowed():
            try:
                subprocess.run([sys.executable, "-c", "pass"], check=True)
            except BaseException:
                pass

        def test_pool():
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                pool.map(abs, [1])

        def test_system():
            os.system("true")

        @pytest.fixture
        def server():
            subprocess.Popen([sys.executable, "-c", "pass"]).wait()

        def test_fixture(server):
            pass
        """
    )
    result = lanes.runpytest()
    result.assert_outcomes(failed=4, errors=1)
    for name, how in [
        ("test_run", "subprocess.Popen"),
        ("test_swallowed", "subprocess.Popen"),
        ("test_pool", "multiprocessing"),
        ("test_system", "os.system"),
        ("test_fixture", "subprocess.Popen"),
    ]:
        result.stdout.fnmatch_lines([f"*{name} is in the unit lane but started a process ({how})*"])


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


@pytest.mark.parametrize("key", sorted(conftest.NEEDS))
def test_every_test_the_table_names_exists(key):
    """A renamed test would drop out of its lane silently: the table names real tests."""
    filename, _, function = key.partition("::")
    assert (HERE / filename).is_file(), key
    if function:
        assert function in _functions(HERE / filename), key
