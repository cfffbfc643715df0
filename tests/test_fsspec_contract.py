"""``aif://`` keeps fsspec's contract: each call is run on a reference filesystem and on
``aif://`` over the same bytes, and the answers are compared.

Three layouts, one tree (``d/a.txt``, ``d/sub/b.txt``, ``d/sub/deep/c.txt``):

- ``local~pfs`` (lane unit): fsspec's LocalFileSystem on a directory, and a mount whose only
  tier is that directory;
- ``s3fs~s3`` (lane s3): s3fs on a prefix of the session's SeaweedFS, and a mount whose only
  tier is that prefix;
- ``s3fs~pfs+s3``: the same, with a PFS tier read first that holds part of the tree too.

Names are compared relative to each side's root (``ROOT``); an error is compared by the
builtin it is (``NotFound`` is a ``FileNotFoundError``). Where the references disagree with
each other, the comparison says which one ``aif://`` follows.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fsspec.implementations.local import LocalFileSystem

import aifdata

from .conftest import s3_tier

TREE = {"d/a.txt": b"aaa", "d/sub/b.txt": b"bb", "d/sub/deep/c.txt": b"c"}
ON_PFS_TOO = ("d/a.txt", "d/sub/b.txt")  # the PFS tier of the mixed mount holds these


@dataclass(frozen=True)
class Pair:
    """A reference filesystem and ``aif://``, each with the path of the same tree's root."""

    ref: Any
    ref_root: str
    aif: aifdata.AifFileSystem
    aif_root: str

    def both(self, call: Callable[[Any, str], Any]) -> tuple[Any, Any]:
        """``call(fs, root)`` on the reference and on ``aif://``, names made root-relative."""
        return _outcome(call, self.ref, self.ref_root), _outcome(call, self.aif, self.aif_root)


def _outcome(call: Callable[[Any, str], Any], fs: Any, root: str) -> Any:
    try:
        return _relative(call(fs, root), root)
    except Exception as exc:
        return ("raises", _builtin(exc))


def _relative(value: Any, root: str) -> Any:
    if isinstance(value, str):
        if value == root or value.startswith(root + "/"):
            return "ROOT" + value[len(root) :]
        return value
    if isinstance(value, dict):
        return {_relative(k, root): _relative(v, root) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_relative(v, root) for v in value)
    if isinstance(value, BaseException):
        return ("error", _builtin(value))
    return value


def _builtin(exc: BaseException) -> str:
    """The builtin exception class ``exc`` is (its aifdata subclass left out)."""
    return next(c.__name__ for c in type(exc).__mro__ if c.__module__ == "builtins")


def _s3fs(server: Any) -> Any:
    import s3fs

    opts = server.storage_options
    return s3fs.S3FileSystem(
        key=opts["key"],
        secret=opts["secret"],
        endpoint_url=opts["endpoint_url"],
        client_kwargs={"region_name": opts["region"]},
        use_listings_cache=False,
        skip_instance_cache=True,
    )


def _write_tree(root: Path, names: Any) -> None:
    for name in names:
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(TREE[name])


@pytest.fixture(
    params=[
        "local~pfs",
        pytest.param("s3fs~s3", marks=pytest.mark.s3),
        pytest.param("s3fs~pfs+s3", marks=pytest.mark.s3),
    ]
)
def pair(request: pytest.FixtureRequest, pfs_dir: Path) -> Pair:
    if request.param == "local~pfs":
        _write_tree(pfs_dir, TREE)
        mount = aifdata.Mount("pfsonly", (aifdata.Tier.pfs(pfs_dir),))
        fs = aifdata.filesystem(aifdata.Config((mount,)), catalog=False)
        return Pair(LocalFileSystem(auto_mkdir=True), pfs_dir.as_posix(), fs, "pfsonly")
    server = request.getfixturevalue("seaweedfs")
    bucket = request.getfixturevalue("bucket")
    ref = _s3fs(server)
    for name, data in TREE.items():
        ref.pipe(f"{bucket}/data/{name}", data)
    tier = s3_tier(server, bucket)  # s3://BUCKET/data
    if request.param == "s3fs~s3":
        mount = aifdata.Mount("s3only", (tier,))
    else:
        _write_tree(pfs_dir, ON_PFS_TOO)
        mount = aifdata.Mount(
            "mixed", (aifdata.Tier.pfs(pfs_dir), tier), read_order=("pfs", "s3"), write_tier="s3"
        )
    fs = aifdata.filesystem(aifdata.Config((mount,)), catalog=False)
    return Pair(ref, f"{bucket}/data", fs, mount.prefix)


def _types(found: dict[str, Any]) -> dict[str, str]:
    return {name: info["type"] for name, info in found.items()}


def _join(root: str, *parts: str) -> str:
    return posixpath.join(root, *parts)


#: Listings: ``find``/``glob`` with ``withdirs`` list the directory they start at
#: (both s3fs and the local filesystem do; ``aif://`` left it out).
LISTINGS: dict[str, Callable[[Any, str], Any]] = {
    "find-withdirs": lambda fs, r: fs.find(_join(r, "d"), withdirs=True),
    "find-withdirs-detail": lambda fs, r: _types(
        fs.find(_join(r, "d"), withdirs=True, detail=True)
    ),
    "find-withdirs-maxdepth-1": lambda fs, r: fs.find(_join(r, "d"), withdirs=True, maxdepth=1),
    "find-withdirs-maxdepth-2": lambda fs, r: fs.find(_join(r, "d"), withdirs=True, maxdepth=2),
    "find-withdirs-trailing-slash": lambda fs, r: fs.find(_join(r, "d") + "/", withdirs=True),
    "find-withdirs-of-the-root": lambda fs, r: fs.find(r, withdirs=True, maxdepth=1),
    "find-withdirs-of-a-file": lambda fs, r: fs.find(_join(r, "d/a.txt"), withdirs=True),
    "find-withdirs-of-nothing": lambda fs, r: fs.find(_join(r, "nope"), withdirs=True),
    "find-files": lambda fs, r: fs.find(_join(r, "d")),
    "glob-doublestar": lambda fs, r: fs.glob(_join(r, "d/**")),
    "glob-doublestar-dirs": lambda fs, r: fs.glob(_join(r, "d/**/")),
    "glob-doublestar-maxdepth-1": lambda fs, r: fs.glob(_join(r, "d/**"), maxdepth=1),
    "glob-doublestar-detail": lambda fs, r: _types(fs.glob(_join(r, "d/**"), detail=True)),
    "glob-doublestar-below": lambda fs, r: fs.glob(_join(r, "d/sub/**")),
    "glob-doublestar-files": lambda fs, r: fs.glob(_join(r, "d/**/*.txt")),
    "glob-star-dirs": lambda fs, r: fs.glob(_join(r, "d/*/")),
    "glob-of-nothing": lambda fs, r: fs.glob(_join(r, "nope/**")),
    "expand-recursive": lambda fs, r: fs.expand_path(_join(r, "d"), recursive=True),
    "expand-recursive-maxdepth": lambda fs, r: fs.expand_path(
        _join(r, "d"), recursive=True, maxdepth=1
    ),
    "expand-recursive-list": lambda fs, r: fs.expand_path(
        [_join(r, "d/sub"), _join(r, "d/a.txt")], recursive=True
    ),
    "expand-recursive-missing": lambda fs, r: fs.expand_path(_join(r, "nope"), recursive=True),
    "walk": lambda fs, r: [(p, sorted(d), sorted(f)) for p, d, f in fs.walk(_join(r, "d"))],
    "du": lambda fs, r: fs.du(_join(r, "d")),
    "du-per-file": lambda fs, r: fs.du(_join(r, "d"), total=False),
    "du-of-nothing": lambda fs, r: fs.du(_join(r, "nope")),
    "ls-trailing-slash": lambda fs, r: sorted(fs.ls(_join(r, "d") + "/", detail=False)),
    "ls-of-the-root": lambda fs, r: sorted(fs.ls(r + "/", detail=False)),
    "ls-of-a-file": lambda fs, r: fs.ls(_join(r, "d/a.txt"), detail=False),
    "ls-of-nothing": lambda fs, r: fs.ls(_join(r, "nope"), detail=False),
}


#: Metadata: a directory's info, and existence of the root, a prefix and a partial name.
METADATA: dict[str, Callable[[Any, str], Any]] = {
    "info-of-a-directory": lambda fs, r: [
        (i["name"], i["type"]) for i in (fs.info(_join(r, "d")), fs.info(_join(r, "d") + "/"))
    ],
    "info-of-the-root": lambda fs, r: fs.info(r)["type"],
    "info-of-nothing": lambda fs, r: fs.info(_join(r, "nope")),
    "root-is-a-directory": lambda fs, r: [
        f(p) for p in (r, r + "/") for f in (fs.exists, fs.isdir, fs.isfile)
    ],
    "prefix-is-a-directory": lambda fs, r: [
        f(p)
        for p in (_join(r, "d/sub"), _join(r, "d/sub/"))
        for f in (fs.exists, fs.isdir, fs.isfile)
    ],
    "partial-name-is-nothing": lambda fs, r: [
        f(_join(r, "d/su")) for f in (fs.exists, fs.isdir, fs.isfile)
    ],
    "file-is-a-file": lambda fs, r: [
        f(_join(r, "d/a.txt")) for f in (fs.exists, fs.isdir, fs.isfile)
    ],
    "sizes": lambda fs, r: fs.sizes([_join(r, "d/a.txt"), _join(r, "d/sub/b.txt")]),
    "modified-of-a-file": lambda fs, r: type(fs.modified(_join(r, "d/a.txt"))).__name__,
    # a PFS directory has a time (local: a datetime); an S3 prefix none (IsADirectoryError)
    "modified-of-a-directory": lambda fs, r: type(fs.modified(_join(r, "d"))).__name__,
}


def _seek_end(fs: Any, r: str) -> list[Any]:
    with fs.open(_join(r, "d/a.txt"), mode="rb") as f:
        return [f.seek(0, 2), f.tell(), f.seek(-1, 2), f.read(), f.tell(), f.seek(9), f.read()]


#: Reads: several paths with one missing, ranges with one missing, seeks, head and tail.
READS: dict[str, Callable[[Any, str], Any]] = {
    "cat-omit": lambda fs, r: fs.cat([_join(r, "d/a.txt"), _join(r, "nope")], on_error="omit"),
    "cat-return": lambda fs, r: fs.cat([_join(r, "d/a.txt"), _join(r, "nope")], on_error="return"),
    "cat-raise": lambda fs, r: fs.cat([_join(r, "d/a.txt"), _join(r, "nope")]),
    "cat-glob-omit": lambda fs, r: fs.cat(_join(r, "d/*.txt"), on_error="omit"),
    "cat-one-missing-path": lambda fs, r: fs.cat(_join(r, "nope"), on_error="omit"),
    "cat-ranges-return": lambda fs, r: fs.cat_ranges(
        [_join(r, "d/a.txt"), _join(r, "nope"), _join(r, "d/sub/b.txt")],
        [0, 0, 1],
        [2, 2, 2],
        on_error="return",
    ),
    "cat-ranges-raise": lambda fs, r: fs.cat_ranges(
        [_join(r, "d/a.txt"), _join(r, "nope")], [0, 0], [2, 2], on_error="raise"
    ),
    "cat-ranges-negative": lambda fs, r: fs.cat_ranges(
        [_join(r, "d/a.txt"), _join(r, "d/sub/b.txt")], [-2, 0], [None, 1]
    ),
    "seek-end-and-tell": _seek_end,
    "head-and-tail": lambda fs, r: [
        fs.head(_join(r, "d/a.txt"), 2),
        fs.tail(_join(r, "d/a.txt"), 2),
        fs.head(_join(r, "d/a.txt"), 10),
        fs.tail(_join(r, "d/a.txt"), 10),
    ],
    "head-of-nothing": lambda fs, r: fs.head(_join(r, "nope")),
    "read-bytes": lambda fs, r: fs.read_bytes(_join(r, "d/a.txt"), 1, 3),
}


def _cases(calls: dict[str, Callable[[Any, str], Any]]) -> Any:
    return pytest.mark.parametrize("call", list(calls.values()), ids=list(calls))


@_cases(LISTINGS)
def test_listings_match(pair, call):
    ref, aif = pair.both(call)
    assert aif == ref


@_cases(METADATA)
def test_metadata_matches(pair, call):
    ref, aif = pair.both(call)
    assert aif == ref


@_cases(READS)
def test_reads_match(pair, call):
    ref, aif = pair.both(call)
    assert aif == ref


def test_rmdir_refuses_what_is_missing_or_not_empty(pair):
    """Both references: rmdir of a missing directory is a FileNotFoundError, of one that
    holds a file an OSError (local: ENOTEMPTY; s3fs: FileExistsError), and the file stays."""
    for fs, root in ((pair.ref, pair.ref_root), (pair.aif, pair.aif_root)):
        with pytest.raises(FileNotFoundError):
            fs.rmdir(_join(root, "nope"))
        with pytest.raises(OSError) as refused:
            fs.rmdir(_join(root, "d/sub/deep"))
        assert not isinstance(refused.value, FileNotFoundError), fs
        assert fs.cat(_join(root, "d/sub/deep/c.txt")) == b"c"
        with pytest.raises(OSError):
            fs.rmdir(_join(root, "d/a.txt"))
        assert fs.cat(_join(root, "d/a.txt")) == b"aaa"


def test_rmdir_removes_an_empty_directory(pfs_dir):
    """An empty PFS directory goes, as a local one does."""
    mount = aifdata.Mount("pfsonly", (aifdata.Tier.pfs(pfs_dir),))
    fs = aifdata.filesystem(aifdata.Config((mount,)), catalog=False)
    (pfs_dir / "mine" / "empty").mkdir(parents=True)
    (pfs_dir / "theirs" / "empty").mkdir(parents=True)
    fs.rmdir("pfsonly/mine/empty")
    LocalFileSystem().rmdir((pfs_dir / "theirs" / "empty").as_posix())
    assert fs.ls("pfsonly/mine") == fs.ls("pfsonly/theirs") == []


def test_a_missing_range_slot_holds_the_exception(pair):
    """Under ``on_error="return"`` the slot of a path that fails holds the exception itself,
    one a caller can raise, and the other slots their bytes."""
    for fs, root in ((pair.ref, pair.ref_root), (pair.aif, pair.aif_root)):
        paths = [_join(root, "nope"), _join(root, "d/a.txt")]
        missing, data = fs.cat_ranges(paths, [0, 0], [2, 2], on_error="return")
        assert isinstance(missing, FileNotFoundError), fs
        assert data == b"aa"


def test_a_directory_in_cat_ranges_fills_its_slot(pair):
    """A directory is not a file: its slot holds an OSError (s3fs: FileNotFoundError,
    local: IsADirectoryError); ``aif://`` follows each mount's storage."""
    ref, aif = pair.both(
        lambda fs, r: fs.cat_ranges([_join(r, "d"), _join(r, "d/a.txt")], 0, 1, on_error="return")
    )
    assert aif == ref


def test_the_directory_found_is_the_one_info_describes(pair):
    """fsspec's own ``find`` takes the start directory's entry from ``info``: so does aif://."""
    fs, root = pair.aif, pair.aif_root
    for top in (_join(root, "d"), _join(root, "d/sub"), root):
        found = fs.find(top, withdirs=True, detail=True)
        assert found[top] == fs.info(top)


def test_maxdepth_below_one_is_refused(pair):
    """fsspec's ``walk`` and ``glob`` refuse ``maxdepth=0`` (the local filesystem does);
    s3fs takes 0 as no limit, which is an accident of its ``if maxdepth:``. aif:// refuses it."""
    with pytest.raises(ValueError, match="maxdepth"):
        LocalFileSystem().find("/nonexistent", maxdepth=0)
    with pytest.raises(ValueError, match="maxdepth"):
        pair.aif.find(_join(pair.aif_root, "d"), maxdepth=0)


def test_an_empty_directory_finds_itself(pfs_dir):
    """An empty directory exists on a PFS (not on S3): find and glob list it, as local does."""
    (pfs_dir / "d" / "empty").mkdir(parents=True)
    mount = aifdata.Mount("pfsonly", (aifdata.Tier.pfs(pfs_dir),))
    pair = Pair(
        LocalFileSystem(),
        pfs_dir.as_posix(),
        aifdata.filesystem(aifdata.Config((mount,)), catalog=False),
        "pfsonly",
    )
    for call in (
        lambda fs, r: fs.find(_join(r, "d/empty"), withdirs=True),
        lambda fs, r: fs.find(_join(r, "d"), withdirs=True),
        lambda fs, r: fs.glob(_join(r, "d/empty/**")),
        lambda fs, r: fs.glob(_join(r, "d/**/")),
    ):
        ref, aif = pair.both(call)
        assert aif == ref


def test_directories_above_mounts_find_themselves(tmp_path):
    """``ns`` holds the mounts ``ns/x`` and ``ns/y``: it is a directory like any other,
    as the same layout of local directories shows; the namespace root ``""`` is never listed."""
    local_root = tmp_path / "local"
    for name in ("x", "y"):
        _write_tree(local_root / "ns" / name, ["d/a.txt"])
    mounts = tuple(
        aifdata.Mount(f"ns/{name}", (aifdata.Tier.pfs(local_root / "ns" / name),))
        for name in ("x", "y")
    )
    fs = aifdata.filesystem(aifdata.Config(mounts), catalog=False)
    local = LocalFileSystem().find((local_root / "ns").as_posix(), withdirs=True)
    assert fs.find("ns", withdirs=True) == [n.removeprefix(f"{local_root}/") for n in local]
    assert fs.glob("ns/**/") == ["ns", "ns/x", "ns/x/d", "ns/y", "ns/y/d"]
    assert fs.find("", withdirs=True, maxdepth=1) == ["ns"]


def test_read_block_reads_the_block(pair):
    """``read_block`` asks the open file for its ``size``."""
    ref, aif = pair.both(lambda fs, r: fs.read_block(_join(r, "d/a.txt"), 1, 5))
    assert aif == ref


def test_a_tier_that_is_down_fills_every_slot_at_once(pfs_dir, monkeypatch):
    """Under ``on_error="return"`` an unreachable tier is each of its slots' error, found
    once: the ranges are not retried one by one (each would wait for the same timeout)."""
    from aifdata.connectors.pfs import PFSConnector

    _write_tree(pfs_dir, TREE)
    down = aifdata.StorageUnavailable("cannot reach the tier")
    asked = []

    def unreachable(self, *args):
        asked.append(args)
        raise down

    monkeypatch.setattr(PFSConnector, "cat_ranges", unreachable)
    monkeypatch.setattr(PFSConnector, "cat_file", unreachable)
    mount = aifdata.Mount("pfsonly", (aifdata.Tier.pfs(pfs_dir),))
    fs = aifdata.filesystem(aifdata.Config((mount,)), catalog=False)
    paths = ["pfsonly/d/a.txt", "pfsonly/d/sub/b.txt"]
    assert fs.cat_ranges(paths, 0, 1, on_error="return") == [down, down]
    assert len(asked) == 1
    with pytest.raises(ConnectionError):
        fs.cat_ranges(paths, 0, 1, on_error="raise")
