"""The connector contract as a pytest test class (see :class:`ConnectorTests`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

from ..connectors import Connector, FileStat, Tier, TierWriter, connector_for
from ._escapes import (
    PWNED,
    Attempt,
    Outside,
    assert_reads_refused,
    assert_writes_contained,
    attempt,
    leaf,
    local_root,
    parent_tier,
    reveals,
    write_and_close,
)

__all__ = ["ConnectorTests"]

#: 1 KiB of every byte value, then a short tail: ranges never land on round numbers.
DATA = bytes(range(256)) * 4 + b"tail!"
OTHER = b"the other file"

#: (start, end) pairs and the slice of DATA each must return, as Python slices do.
RANGES = [
    (None, None),
    (0, 10),
    (10, 20),
    (None, 5),
    (1000, None),
    (-5, None),
    (-20, -10),
    (3, -3),
    (-3, 3),
    (20, 10),
    (7, 7),
    (len(DATA) - 2, len(DATA) + 100),
    (len(DATA), None),
    (len(DATA) + 50, None),
    (len(DATA) + 50, len(DATA) + 60),
    (-len(DATA) - 50, 4),
]


class ConnectorTests:
    """What every :class:`~aifdata.connectors.Connector` promises, as pytest tests.

    Subclass it in a test module and provide a fresh, empty tier; pytest then runs
    every test below on the connector of that tier::

        import pytest
        from aifdata import Tier
        from aifdata.testing import ConnectorTests

        class TestMyConnector(ConnectorTests):
            @pytest.fixture
            def tier(self, tmp_path):  # fresh and empty for every test
                return Tier("mykind", f"mykind://{tmp_path}/root")

            @pytest.fixture
            def unreachable_tier(self):  # optional: storage that cannot be reached
                return Tier("mykind", "mykind://down.invalid/x")

    What a subclass can provide:

    * ``tier`` (fixture, required): a :class:`~aifdata.Tier` whose storage is empty;
    * ``unreachable_tier`` (fixture): a tier whose storage cannot be reached, for the
      :class:`ConnectionError` tests; the default ``None`` skips them, saying why;
    * ``outside_tier`` (fixture): a tier over the storage just around ``tier``
      (its parent directory or prefix), through which the path-escape tests check
      that nothing outside was read or changed; the default is ``tier``'s parent;
    * ``make_connector(tier)`` (method): how a connector is made; the default is
      :func:`aifdata.connectors.connector_for` (the registry and entry points).

    The connector's capability attributes decide which checks apply:
    ``supports_empty_directories`` tells real directories (a POSIX tree: they exist
    empty, a directory is not a file) from implicit ones (object stores: a
    directory exists while something is below it). A tier whose ``url`` is a local
    directory is also tested with symbolic links that lead out of it.

    Importing this needs pytest (a test dependency only).
    """

    # -- what a subclass provides ---------------------------------------------

    @pytest.fixture
    def tier(self) -> Tier:
        """A tier over fresh, empty storage (override this)."""
        pytest.fail(f"{type(self).__name__} must provide a `tier` fixture")

    @pytest.fixture
    def unreachable_tier(self) -> Tier | None:
        """A tier whose storage cannot be reached, or None if the kind has no such notion."""
        return None

    @pytest.fixture
    def outside_tier(self, tier: Tier) -> Tier | None:
        """A tier over the storage that holds ``tier`` (its parent), or None if it has none."""
        return parent_tier(tier)

    def make_connector(self, tier: Tier) -> Connector:
        """The connector under test for ``tier``."""
        return connector_for(tier)

    # -- fixtures built on those ------------------------------------------------

    @pytest.fixture
    def connector(self, tier: Tier) -> Iterator[Connector]:
        made = self.make_connector(tier)
        yield made
        made.close()

    @pytest.fixture
    def filled(self, connector: Connector) -> Connector:
        """The connector with ``a.bin``, ``d/b.txt`` and ``d/e/c.txt`` written."""
        connector.pipe_file("a.bin", DATA)
        connector.pipe_file("d/b.txt", OTHER)
        connector.pipe_file("d/e/c.txt", b"c")
        return connector

    @pytest.fixture
    def outside(self, outside_tier: Tier | None, tier: Tier) -> Iterator[Outside]:
        if outside_tier is None:
            pytest.skip(f"tier {tier.url} has no enclosing storage to watch for escapes")
        made = self.make_connector(outside_tier)
        yield Outside.planted(made, leaf(tier.url))
        made.close()

    @pytest.fixture
    def pwned(self, tmp_path_factory: pytest.TempPathFactory) -> str:
        """A local file that escapes try to upload."""
        local = tmp_path_factory.mktemp("local") / "pwned.bin"
        local.write_bytes(PWNED)
        return str(local)

    @pytest.fixture
    def unreachable(self, unreachable_tier: Tier | None, tier: Tier) -> Iterator[Connector]:
        if unreachable_tier is None:
            pytest.skip(
                f"the {tier.kind!r} kind has no unreachable storage"
                " (provide `unreachable_tier` to test ConnectionError)"
            )
        made = self.make_connector(unreachable_tier)
        yield made
        made.close()

    # -- the connector itself ---------------------------------------------------

    def test_is_a_connector_of_its_tier(self, connector: Connector, tier: Tier) -> None:
        assert isinstance(connector, Connector)
        assert connector.tier == tier
        assert isinstance(connector.supports_empty_directories, bool)

    def test_url_names_the_path(self, connector: Connector) -> None:
        assert connector.url("d/b.txt").endswith("d/b.txt")
        assert connector.url("d/b.txt") != connector.url("d/c.txt")

    # -- listing ----------------------------------------------------------------

    def test_empty_tier_lists_nothing(self, connector: Connector) -> None:
        assert connector.find("") == {}
        assert connector.find("", withdirs=True) == {}
        assert _ls_or_missing(connector, "") == []

    def test_ls_lists_direct_children_with_relative_names(self, filled: Connector) -> None:
        top = {i["name"]: i for i in filled.ls("")}
        assert sorted(top) == ["a.bin", "d"]
        assert (top["a.bin"]["type"], top["a.bin"]["size"]) == ("file", len(DATA))
        assert top["d"]["type"] == "directory"
        below = {i["name"]: i["type"] for i in filled.ls("d")}
        assert below == {"d/b.txt": "file", "d/e": "directory"}

    def test_ls_of_a_file_is_that_file(self, filled: Connector) -> None:
        (entry,) = filled.ls("d/b.txt")
        assert (entry["name"], entry["type"], entry["size"]) == ("d/b.txt", "file", len(OTHER))

    def test_ls_of_a_missing_path_raises_file_not_found(self, filled: Connector) -> None:
        _raises_not_found(lambda: filled.ls("nowhere"), "nowhere")

    def test_find_lists_every_file_below(self, filled: Connector) -> None:
        found = filled.find("")
        assert sorted(found) == ["a.bin", "d/b.txt", "d/e/c.txt"]
        assert all(i["type"] == "file" and i["name"] == n for n, i in found.items())
        assert found["a.bin"]["size"] == len(DATA)
        assert sorted(filled.find("d")) == ["d/b.txt", "d/e/c.txt"]

    def test_find_with_dirs_adds_the_directories(self, filled: Connector) -> None:
        found = filled.find("", withdirs=True)
        assert sorted(found) == ["a.bin", "d", "d/b.txt", "d/e", "d/e/c.txt"]
        assert found["d/e"]["type"] == "directory"
        assert sorted(filled.find("d", withdirs=True)) == ["d/b.txt", "d/e", "d/e/c.txt"]

    def test_find_of_a_file_or_missing_path(self, filled: Connector) -> None:
        assert list(filled.find("d/b.txt")) == ["d/b.txt"]
        assert filled.find("nowhere") == {}

    def test_info_of_a_file(self, filled: Connector) -> None:
        info = filled.info("d/b.txt")
        assert (info["name"], info["type"], info["size"]) == ("d/b.txt", "file", len(OTHER))
        assert FileStat.of(info).size == len(OTHER)

    def test_info_of_a_directory(self, filled: Connector) -> None:
        info = filled.info("d/e")
        assert (info["name"], info["type"]) == ("d/e", "directory")

    def test_info_of_a_missing_path_raises_file_not_found(self, filled: Connector) -> None:
        _raises_not_found(lambda: filled.info("d/missing.txt"), "d/missing.txt")

    def test_exists(self, filled: Connector) -> None:
        assert filled.exists("a.bin")
        assert filled.exists("d")
        assert filled.exists("d/e/c.txt")
        assert not filled.exists("missing")
        assert not filled.exists("d/missing")

    def test_stat_or_none(self, filled: Connector) -> None:
        st = filled.stat_or_none("a.bin")
        assert st is not None
        assert st.size == len(DATA)
        assert st.mtime is not None or st.etag is not None  # something that tells versions apart
        assert filled.stat_or_none("d") is None
        assert filled.stat_or_none("missing") is None

    def test_stats_keeps_the_files_that_exist(self, filled: Connector) -> None:
        wanted = ["a.bin", "d/b.txt", "d/e/c.txt", "d/e", "d/missing", "gone/x"]
        got = filled.stats(wanted)
        assert {rel: st.size for rel, st in got.items()} == {
            "a.bin": len(DATA),
            "d/b.txt": len(OTHER),
            "d/e/c.txt": 1,
        }
        assert filled.stats([]) == {}

    def test_stats_see_a_new_version(self, filled: Connector) -> None:
        filled.pipe_file("d/b.txt", b"longer than before")
        assert filled.stats(["d/b.txt", "a.bin"])["d/b.txt"].size == len(b"longer than before")

    # -- reads --------------------------------------------------------------------

    @pytest.mark.parametrize(("start", "end"), RANGES)
    def test_cat_file_range_is_a_slice(
        self, filled: Connector, start: int | None, end: int | None
    ) -> None:
        assert filled.cat_file("a.bin", start, end) == DATA[start:end]

    def test_cat_file_of_an_empty_file(self, connector: Connector) -> None:
        connector.pipe_file("empty", b"")
        assert connector.cat_file("empty") == b""
        assert connector.cat_file("empty", 0, 10) == b""
        assert connector.info("empty")["size"] == 0

    def test_cat_file_of_a_missing_file_raises_file_not_found(self, filled: Connector) -> None:
        _raises_not_found(lambda: filled.cat_file("d/missing.txt"), "d/missing.txt")
        _raises_not_found(lambda: filled.cat_file("d/missing.txt", 2, 5), "d/missing.txt")

    def test_cat_ranges_in_order(self, filled: Connector) -> None:
        rels = ["a.bin", "d/b.txt", "a.bin", "a.bin", "a.bin"]
        starts: list[int | None] = [0, 4, -10, 100, len(DATA) + 5]
        ends: list[int | None] = [10, None, None, 90, None]
        sources = {"a.bin": DATA, "d/b.txt": OTHER}
        expected = [sources[r][s:e] for r, s, e in zip(rels, starts, ends, strict=True)]
        assert filled.cat_ranges(rels, starts, ends) == expected
        assert filled.cat_ranges([], [], []) == []

    def test_cat_ranges_of_a_missing_file_raises(self, filled: Connector) -> None:
        _raises_not_found(lambda: filled.cat_ranges(["a.bin", "nope"], [0, 0], [5, 5]), "nope")

    def test_cat_files_reports_each_failure_in_place(self, filled: Connector) -> None:
        got = filled.cat_files(["a.bin", "d/missing.txt", "d/b.txt"])
        assert list(got) == ["a.bin", "d/missing.txt", "d/b.txt"]
        assert (got["a.bin"], got["d/b.txt"]) == (DATA, OTHER)
        error = got["d/missing.txt"]
        assert isinstance(error, FileNotFoundError)
        assert "d/missing.txt" in str(error)
        assert filled.cat_files([]) == {}

    def test_open_read_reads_seeks_and_tells(self, filled: Connector) -> None:
        with filled.open_read("a.bin") as f:
            assert f.seekable()
            assert f.read(10) == DATA[:10]
            assert f.tell() == 10
            f.seek(500)
            assert f.read(24) == DATA[500:524]
            f.seek(-5, os.SEEK_END)
            assert f.read() == DATA[-5:]
            assert f.read(10) == b""
            f.seek(3)
            f.seek(4, os.SEEK_CUR)
            assert f.read(3) == DATA[7:10]

    def test_open_read_with_small_blocks_and_a_known_size(self, filled: Connector) -> None:
        with filled.open_read("a.bin", block_size=64, size=len(DATA)) as f:
            assert f.read() == DATA
            f.seek(60)
            assert f.read(10) == DATA[60:70]  # across a block edge

    def test_open_read_of_a_missing_file_raises_file_not_found(self, filled: Connector) -> None:
        def read() -> bytes:
            with filled.open_read("d/missing.txt") as f:
                return f.read()

        _raises_not_found(read, "d/missing.txt")

    def test_reading_a_directory_fails(self, filled: Connector) -> None:
        if filled.supports_empty_directories:
            with pytest.raises(IsADirectoryError):
                filled.cat_file("d")
            with pytest.raises(IsADirectoryError):
                filled.cat_file("d", 0, 2)
            return
        with pytest.raises(FileNotFoundError):  # a directory is only a prefix: no object there
            filled.cat_file("d")

    def test_reading_below_a_file_fails(self, filled: Connector) -> None:
        for call in (lambda: filled.cat_file("a.bin/x"), lambda: filled.info("a.bin/x")):
            with pytest.raises((FileNotFoundError, NotADirectoryError)):
                call()

    # -- writes -----------------------------------------------------------------------

    def test_open_write_returns_a_tier_writer(self, connector: Connector) -> None:
        writer = connector.open_write("w.bin")
        try:
            assert isinstance(writer, TierWriter)
        finally:
            writer.discard()

    def test_written_bytes_appear_only_on_close(self, connector: Connector) -> None:
        connector.pipe_file("old.txt", OTHER)
        writer = connector.open_write("d/new.bin")
        assert writer.write(DATA[:100]) == 100
        writer.write(memoryview(DATA)[100:])
        assert not connector.exists("d/new.bin")
        assert sorted(connector.find("")) == ["old.txt"]
        assert _files(connector.ls("")) == ["old.txt"]
        writer.close()
        assert connector.cat_file("d/new.bin") == DATA
        assert sorted(connector.find("")) == ["d/new.bin", "old.txt"]

    def test_replacing_a_file_keeps_the_old_bytes_until_close(self, connector: Connector) -> None:
        connector.pipe_file("f.bin", OTHER)
        with connector.open_write("f.bin") as writer:
            writer.write(DATA)
            assert connector.cat_file("f.bin") == OTHER
        assert connector.cat_file("f.bin") == DATA

    def test_discard_leaves_nothing(self, connector: Connector) -> None:
        writer = connector.open_write("d/e/dropped.bin")
        writer.write(DATA)
        writer.discard()
        assert not connector.exists("d/e/dropped.bin")
        _assert_no_files(connector)
        writer.close()  # after discard: nothing to publish
        writer.discard()
        assert not connector.exists("d/e/dropped.bin")
        _assert_no_files(connector)

    def test_discard_keeps_the_previous_version(self, connector: Connector) -> None:
        connector.pipe_file("f.bin", OTHER)
        writer = connector.open_write("f.bin")
        writer.write(DATA)
        writer.discard()
        assert connector.cat_file("f.bin") == OTHER
        assert sorted(connector.find("")) == ["f.bin"]

    def test_discard_after_close_changes_nothing(self, connector: Connector) -> None:
        writer = connector.open_write("f.bin")
        writer.write(DATA)
        writer.close()
        writer.discard()
        writer.close()
        assert connector.cat_file("f.bin") == DATA

    def test_an_exception_in_the_with_block_discards(self, connector: Connector) -> None:
        connector.pipe_file("f.bin", OTHER)
        with pytest.raises(KeyError):
            _write_then_fail(connector, "f.bin", KeyError("stop"))
        with pytest.raises(RuntimeError):
            _write_then_fail(connector, "new/g.bin", RuntimeError("stop"))
        assert connector.cat_file("f.bin") == OTHER
        assert sorted(connector.find("")) == ["f.bin"]

    def test_an_empty_write_makes_an_empty_file(self, connector: Connector) -> None:
        with connector.open_write("empty.bin"):
            pass
        assert connector.cat_file("empty.bin") == b""
        assert connector.info("empty.bin")["size"] == 0

    def test_writers_never_show_in_listings(self, connector: Connector) -> None:
        connector.pipe_file("d/kept.txt", OTHER)
        writers = [connector.open_write(rel) for rel in ("d/w1", "d/sub/w2", "w3")]
        for writer in writers:
            writer.write(DATA)
        assert _files(connector.ls("d")) == ["d/kept.txt"]
        assert sorted(connector.find("")) == ["d/kept.txt"]
        assert _files(connector.find("", withdirs=True).values()) == ["d/kept.txt"]
        for writer in writers:
            writer.discard()
        assert sorted(connector.find("")) == ["d/kept.txt"]

    def test_pipe_file_makes_parents_and_replaces(self, connector: Connector) -> None:
        connector.pipe_file("x/y/z.bin", DATA)
        assert connector.cat_file("x/y/z.bin") == DATA
        connector.pipe_file("x/y/z.bin", OTHER)
        assert connector.cat_file("x/y/z.bin") == OTHER
        assert connector.info("x/y")["type"] == "directory"

    def test_put_file_uploads_a_local_file(
        self, connector: Connector, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        local = tmp_path_factory.mktemp("local") / "upload.bin"
        local.write_bytes(DATA)
        connector.put_file(str(local), "up/loaded.bin")
        assert connector.cat_file("up/loaded.bin") == DATA
        local.write_bytes(OTHER)
        connector.put_file(str(local), "up/loaded.bin")
        assert connector.cat_file("up/loaded.bin") == OTHER
        assert local.read_bytes() == OTHER

    def test_writing_onto_a_directory_fails(self, filled: Connector) -> None:
        if not filled.supports_empty_directories:
            pytest.skip("directories are prefixes here: an object may share a directory's name")
        with pytest.raises(IsADirectoryError):
            filled.pipe_file("d", DATA)
        with pytest.raises(IsADirectoryError):
            filled.open_write("d/e").close()
        assert filled.info("d")["type"] == "directory"

    def test_writing_below_a_file_fails(self, filled: Connector) -> None:
        if not filled.supports_empty_directories:
            pytest.skip("directories are prefixes here: a key may extend a file's name")
        with pytest.raises(NotADirectoryError):
            filled.pipe_file("a.bin/x", OTHER)
        with pytest.raises(NotADirectoryError):
            filled.pipe_file("a.bin/x/y", OTHER)
        assert filled.cat_file("a.bin") == DATA

    # -- copy, move, delete ------------------------------------------------------

    def test_copy(self, filled: Connector) -> None:
        filled.copy("a.bin", "copies/a.bin")
        filled.copy("d/b.txt", "a.bin")  # replaces
        assert filled.cat_file("copies/a.bin") == DATA
        assert filled.cat_file("a.bin") == OTHER
        assert filled.cat_file("d/b.txt") == OTHER

    def test_copy_of_a_missing_file_raises_file_not_found(self, filled: Connector) -> None:
        _raises_not_found(lambda: filled.copy("missing.bin", "x.bin"), "missing.bin")
        assert not filled.exists("x.bin")

    def test_move(self, filled: Connector) -> None:
        filled.move("a.bin", "moved/a.bin")
        assert filled.cat_file("moved/a.bin") == DATA
        assert not filled.exists("a.bin")
        filled.move("d/b.txt", "moved/a.bin")  # replaces
        assert filled.cat_file("moved/a.bin") == OTHER
        assert sorted(filled.find("")) == ["d/e/c.txt", "moved/a.bin"]

    def test_move_of_a_missing_file_raises_file_not_found(self, filled: Connector) -> None:
        _raises_not_found(lambda: filled.move("missing.bin", "x.bin"), "missing.bin")
        assert not filled.exists("x.bin")

    def test_rm_file(self, filled: Connector) -> None:
        filled.rm_file("d/b.txt")
        assert not filled.exists("d/b.txt")
        assert sorted(filled.find("")) == ["a.bin", "d/e/c.txt"]

    def test_rm_file_of_a_missing_file_raises_file_not_found(self, filled: Connector) -> None:
        _raises_not_found(lambda: filled.rm_file("d/missing.txt"), "d/missing.txt")

    def test_rm_many_removes_files_then_directories(self, filled: Connector) -> None:
        filled.rm_many(["d", "d/e", "d/e/c.txt", "d/b.txt", "missing", "d/missing/x"])
        assert sorted(filled.find("", withdirs=True)) == ["a.bin"]
        filled.rm_many([])
        assert filled.cat_file("a.bin") == DATA

    def test_rmdir_of_an_emptied_directory(self, filled: Connector) -> None:
        filled.rm_file("d/e/c.txt")
        filled.rmdir("d/e")
        assert not filled.exists("d/e")
        assert sorted(filled.find("", withdirs=True)) == ["a.bin", "d", "d/b.txt"]

    def test_rmdir_never_deletes_files(self, filled: Connector) -> None:
        for rel in ("d", ""):
            with contextlib.suppress(OSError):  # a directory that is not empty may refuse
                filled.rmdir(rel)
        assert sorted(filled.find("")) == ["a.bin", "d/b.txt", "d/e/c.txt"]

    # -- directories --------------------------------------------------------------

    def test_makedirs_then_write_below(self, connector: Connector) -> None:
        connector.makedirs("m/n")
        connector.makedirs("m/n")  # already there: fine
        connector.pipe_file("m/n/f.txt", OTHER)
        assert connector.cat_file("m/n/f.txt") == OTHER

    def test_empty_directories_exist(self, connector: Connector) -> None:
        if not connector.supports_empty_directories:
            pytest.skip("supports_empty_directories is False (see test_directories_are_implicit)")
        connector.makedirs("m/n")
        assert connector.info("m/n")["type"] == "directory"
        assert connector.ls("m/n") == []
        assert [i["name"] for i in connector.ls("m")] == ["m/n"]
        assert sorted(connector.find("", withdirs=True)) == ["m", "m/n"]
        assert connector.find("") == {}
        connector.pipe_file("m/n/f", b"x")
        connector.rm_file("m/n/f")
        assert connector.ls("m/n") == []  # emptied, still there
        connector.rmdir("m/n")
        assert not connector.exists("m/n")
        connector.rm_many(["m"])
        assert not connector.exists("m")

    def test_rmdir_of_a_missing_directory(self, connector: Connector) -> None:
        if not connector.supports_empty_directories:
            connector.rmdir("missing")  # implicit directories: nothing to do
            return
        _raises_not_found(lambda: connector.rmdir("missing"), "missing")

    def test_directories_are_implicit(self, connector: Connector) -> None:
        if connector.supports_empty_directories:
            pytest.skip("supports_empty_directories is True (see test_empty_directories_exist)")
        connector.makedirs("m/n")
        assert connector.find("", withdirs=True) == {}
        connector.pipe_file("m/n/f", b"x")
        assert connector.info("m/n")["type"] == "directory"
        connector.rm_file("m/n/f")
        assert not connector.exists("m/n")
        assert not connector.exists("m")
        assert _ls_or_missing(connector, "") == []

    # -- errors ------------------------------------------------------------------

    @pytest.mark.parametrize(
        "operation", ["info", "ls", "cat_file", "cat_files", "open_read", "pipe_file", "open_write"]
    )
    def test_unreachable_storage_raises_connection_error(
        self, unreachable: Connector, operation: str
    ) -> None:
        calls: dict[str, Attempt] = {
            "info": lambda: unreachable.info("a.bin"),
            "ls": lambda: unreachable.ls(""),
            "cat_file": lambda: unreachable.cat_file("a.bin", 0, 10),
            "cat_files": lambda: _raise_first(unreachable.cat_files(["a.bin"])),
            "open_read": lambda: unreachable.open_read("a.bin").read(),
            "pipe_file": lambda: unreachable.pipe_file("a.bin", DATA),
            "open_write": lambda: write_and_close(unreachable, "a.bin"),
        }
        with pytest.raises(ConnectionError):
            calls[operation]()

    # -- paths that would leave the tier ---------------------------------------------

    @pytest.mark.parametrize("escape", ["../secret.txt", "d/../../secret.txt", "/secret.txt"])
    def test_reads_never_leave_the_tier(
        self, filled: Connector, outside: Outside, escape: str
    ) -> None:
        for path in (escape, outside.absolute(escape)):
            if path is not None:
                assert_reads_refused(filled, path)
        outside.assert_untouched()

    @pytest.mark.parametrize("escape", ["../secret.txt", "d/../../secret.txt", "/secret.txt"])
    def test_writes_never_leave_the_tier(
        self, filled: Connector, outside: Outside, escape: str, pwned: str
    ) -> None:
        for path in (escape, outside.absolute(escape)):
            if path is not None:
                assert_writes_contained(filled, path, pwned, outside)

    def test_listing_the_parent_is_refused_or_empty(
        self, filled: Connector, outside: Outside
    ) -> None:
        for call in (lambda: filled.ls(".."), lambda: filled.find("..", withdirs=True)):
            listed = attempt(call)
            assert not reveals(listed), listed
        outside.assert_untouched()

    def test_symlinks_out_of_the_root_are_refused(
        self, filled: Connector, outside: Outside, tier: Tier, pwned: str
    ) -> None:
        root = local_root(tier)
        if root is None or outside.root is None:
            pytest.skip(f"{tier.url} is not a local directory: no symbolic links to follow")
        os.symlink(os.path.join(outside.root, "secret.txt"), os.path.join(root, "file-link"))
        os.symlink(os.path.join(outside.root, outside.sibling), os.path.join(root, "dir-link"))
        for path in ("file-link", "dir-link/secret.txt", "dir-link/new.txt", "dir-link/a/b"):
            assert_reads_refused(filled, path)
            assert_writes_contained(filled, path, pwned, outside)


# -- helpers ---------------------------------------------------------------------------


def _write_then_fail(connector: Connector, rel: str, exc: Exception) -> None:
    with connector.open_write(rel) as writer:
        writer.write(DATA)
        raise exc


def _raise_first(results: dict[str, bytes | Exception]) -> None:
    for value in results.values():
        if isinstance(value, Exception):
            raise value


def _raises_not_found(call: Attempt, rel: str) -> None:
    """``call`` raises FileNotFoundError, and its message names ``rel``."""
    with pytest.raises(FileNotFoundError) as caught:
        call()
    assert rel in str(caught.value), f"the error does not name {rel!r}: {caught.value}"


def _ls_or_missing(connector: Connector, rel: str) -> list[Any]:
    """``ls`` of a directory that may not exist yet (an empty object-store prefix)."""
    try:
        return connector.ls(rel)
    except FileNotFoundError:
        return []


def _files(infos: Any) -> list[str]:
    return sorted(i["name"] for i in infos if i["type"] == "file")


def _assert_no_files(connector: Connector) -> None:
    assert connector.find("") == {}
    assert _files(connector.find("", withdirs=True).values()) == []
    for info in connector.find("", withdirs=True).values():
        assert _files(connector.ls(info["name"])) == []
