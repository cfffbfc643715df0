"""The catalog is never silently lost: empty and foreign files are refused, a read-only
catalog answers queries and refuses writes by name, a catalog deleted or replaced
under a writer fails that writer, and backups restore what they hold."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import aifdata.catalog._catalog as catalog_module
from aifdata import AccessDenied, Catalog, CatalogError, NotFound
from aifdata.catalog import _store
from aifdata.cli import main

AIFDATA = Path(sys.executable).with_name("aifdata")


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def made(tmp_path):
    """A catalog with one dataset, a grant and a lineage run, closed."""
    db = tmp_path / "catalog.db"
    cat = Catalog(db)
    cat.ingest(str(make_tree(tmp_path / "src", {"a.txt": b"alpha"})), "lab/one")
    cat.grant("user:bob", "read", "lab/*")
    key, _ = cat.begin_run("run-1", "job", ["lab/one"], {}, None, None)
    cat.end_run(key, "COMPLETE")
    cat.close()
    return db


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


# -- what is not a catalog is refused, never initialised ---------------------


def test_a_zero_byte_file_is_refused_and_left_empty(tmp_path, capsys):
    empty = tmp_path / "catalog.db"
    empty.touch()
    with pytest.raises(CatalogError, match=r"catalog\.db: not an aifdata catalog: an empty file"):
        Catalog(empty).datasets()
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    for args in (["search"], ["policy", "list"], ["ingest", str(src), "-d", "x"]):
        assert main([*args, "--catalog", str(empty)]) == 1, args
        assert f"{empty}: not an aifdata catalog: an empty file" in one_line_error(capsys)
    assert empty.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.db", "src"]


def test_an_empty_default_catalog_stops_aif_instead_of_turning_checks_off(tmp_path, monkeypatch):
    import aifdata

    monkeypatch.setenv("AIFDATA_HOME", str(tmp_path))
    (tmp_path / "catalog.db").touch()  # every grant gone: aif:// must not go on unchecked
    fs = aifdata.filesystem()
    with pytest.raises(CatalogError, match=r"catalog\.db: not an aifdata catalog: an empty file"):
        fs.ls("aif://local/")
    assert (tmp_path / "catalog.db").stat().st_size == 0


def test_a_sqlite_database_of_another_kind_is_refused_and_left_alone(tmp_path):
    other = tmp_path / "notes.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.close()
    before = digest(other)
    with pytest.raises(CatalogError, match=r"notes\.db: not an aifdata catalog: .*tables: notes"):
        Catalog(other).datasets()
    assert digest(other) == before
    marked = tmp_path / "marked.db"
    with sqlite3.connect(marked) as conn:
        conn.execute("PRAGMA application_id = 1234")
        conn.execute("CREATE TABLE datasets (id INTEGER)")
    conn.close()
    with pytest.raises(CatalogError, match=r"application_id 0x000004d2"):
        Catalog(marked).datasets()


def test_a_new_catalog_is_marked_and_one_made_before_the_mark_still_opens(made):
    conn = sqlite3.connect(made)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == _store.APPLICATION_ID
    conn.execute("PRAGMA application_id = 0")  # as aifdata made catalogs before the mark
    conn.close()
    assert Catalog(made).datasets() == ["lab/one"]  # recognised by its tables, and marked
    conn = sqlite3.connect(made)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == _store.APPLICATION_ID
    conn.close()


def test_a_new_catalog_appears_whole_and_only_where_no_file_is(tmp_path, monkeypatch):
    db = tmp_path / "deep" / "catalog.db"
    seen = []
    real_link = os.link

    def watching_link(src, dst):
        seen.append((Path(dst).exists(), Path(src).stat().st_size))
        real_link(src, dst)

    monkeypatch.setattr(_store.os, "link", watching_link)
    assert Catalog(db).datasets() == []
    [(existed, size)] = seen
    assert not existed and size > 0  # linked in only once it was made, and never replaced
    assert sorted(p.name for p in db.parent.iterdir()) == ["catalog.db", "catalog.db-lock",
                                                           "catalog.db-shm",
                                                           "catalog.db-wal"]  # fmt: skip


def _locks_held_on(path: Path) -> list[str]:
    inode, pid = os.stat(path).st_ino, str(os.getpid())
    with open("/proc/locks", encoding="ascii") as locks:
        return [
            line
            for line in locks
            if line.split()[4] == pid and line.split()[5].endswith(f":{inode}")
        ]


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="no /proc/locks here")
def test_opening_the_catalog_again_keeps_the_locks_sqlite_holds(made):
    """Checking a file by opening it would drop every POSIX lock of the process on it,
    SQLite's too, and let another process corrupt the catalog (as the demo's workers did)."""
    first = Catalog(made)
    assert first.datasets() == ["lab/one"]
    held = _locks_held_on(made)
    assert held  # a WAL catalog's connection holds a shared lock while it is open
    assert Catalog(made).datasets() == ["lab/one"]
    assert _locks_held_on(made) == held


# -- read-only catalogs: queries work, writes are refused by name ------------


def test_a_catalog_without_write_bits_answers_queries_and_refuses_writes(made, tmp_path, capsys):
    made.chmod(0o444)  # read-only even for root, who could write it: its owner meant it so
    before = digest(made)
    cat = Catalog(made)
    assert cat.read_only
    assert cat.datasets() == ["lab/one"]
    assert [h.name for h in cat.search("lab")] == ["lab/one"]
    assert [g.principal for g in cat.grants()] == ["user:bob"]
    assert cat.lineage("lab/one")["upstream"] is not None
    refused = r"catalog\.db: the catalog is read-only here \(the file's mode is -r--r--r--\)"
    src = make_tree(tmp_path / "more", {"b.txt": b"beta"})
    with pytest.raises(CatalogError, match=refused):
        cat.ingest(str(src), "lab/two")
    with pytest.raises(CatalogError, match=refused):
        cat.grant("user:eve", "read", "lab/*")
    for args in (
        ["search", "lab"],
        ["policy", "list"],
        ["lineage", "lab/one"],
        ["show", "lab/one"],
    ):
        assert main([*args, "--catalog", str(made)]) == 0, args
        assert "lab/one" in capsys.readouterr().out or args[0] == "policy"
    assert main(["ingest", str(src), "-d", "lab/two", "--catalog", str(made)]) == 1
    assert f"{made}: the catalog is read-only here" in one_line_error(capsys)
    assert digest(made) == before


def test_a_refusal_on_a_read_only_catalog_is_still_a_refusal(made, monkeypatch):
    made.chmod(0o444)
    monkeypatch.setenv("AIFDATA_USER", "mallory")
    with pytest.raises(AccessDenied, match="that user:mallory may read"):
        Catalog(made).dataset("lab/one")  # its audit row cannot be written; the answer stands


def test_a_directory_where_no_journal_can_be_made_opens_read_only(made, monkeypatch):
    # tests run as root, whom directory modes do not stop: the check is asked as a user's
    real_access = os.access
    parent = str(made.parent.absolute())
    monkeypatch.setattr(
        _store.os, "access", lambda p, mode: str(p) != parent and real_access(p, mode)
    )
    cat = Catalog(made)
    assert cat.datasets() == ["lab/one"]
    with pytest.raises(CatalogError, match=f"may not create files in {parent}, where SQLite"):
        cat.grant("user:eve", "read", "lab/*")


def test_a_catalog_is_not_made_where_this_user_may_not_write(tmp_path, monkeypatch):
    monkeypatch.setattr(_store.os, "access", lambda path, mode: False)
    with pytest.raises(CatalogError, match=r"new\.db: cannot create the catalog: this user may"):
        Catalog(tmp_path / "new.db").datasets()
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_catalog_of_an_older_schema_says_so(made):
    conn = sqlite3.connect(made)
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    made.chmod(0o444)
    with pytest.raises(CatalogError, match=r"read-only .* older aifdata \(schema 2"):
        Catalog(made).datasets()


# -- deleted or replaced while a command writes ------------------------------


def _scan_then(monkeypatch, act):
    """Make ingest run ``act`` after it listed and hashed its files, before it writes."""
    real_scan = catalog_module.scan

    def scan_then_act(*args, **kwargs):
        found = real_scan(*args, **kwargs)
        act()
        return found

    monkeypatch.setattr(catalog_module, "scan", scan_then_act)


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_a_catalog_deleted_during_an_ingest_fails_the_ingest(made, tmp_path, monkeypatch, journal):
    monkeypatch.setenv("AIFDATA_CATALOG_JOURNAL", journal)
    cat = Catalog(made)
    assert cat.datasets() == ["lab/one"]  # open before the deletion, as a running command is
    _scan_then(monkeypatch, made.unlink)
    src = make_tree(tmp_path / "two", {"b.txt": b"beta"})
    with pytest.raises(CatalogError, match=r"catalog\.db: the catalog file was deleted while"):
        cat.ingest(str(src), "lab/two")
    assert not made.exists()


def test_a_catalog_deleted_inside_the_write_transaction_is_caught_before_commit(
    made, tmp_path, monkeypatch
):
    real_reindex = catalog_module.reindex

    def reindex_then_delete(conn, dataset_id):
        real_reindex(conn, dataset_id)
        made.unlink()

    monkeypatch.setattr(catalog_module, "reindex", reindex_then_delete)
    cat = Catalog(made)
    src = make_tree(tmp_path / "two", {"b.txt": b"beta"})
    with pytest.raises(CatalogError, match="was deleted while this command wrote to it; nothing"):
        cat.ingest(str(src), "lab/two")


def test_a_catalog_replaced_during_an_ingest_fails_and_the_next_use_opens_the_new_file(
    made, tmp_path, monkeypatch
):
    cat = Catalog(made)
    assert cat.datasets() == ["lab/one"]
    spare = tmp_path / "spare.db"
    shutil.copyfile(made, spare)
    _scan_then(monkeypatch, lambda: os.replace(spare, made))
    src = make_tree(tmp_path / "two", {"b.txt": b"beta"})
    with pytest.raises(CatalogError, match="was replaced by another file while this command"):
        cat.ingest(str(src), "lab/two")
    monkeypatch.undo()
    assert Catalog(made).datasets() == ["lab/one"]  # the replacement has no lab/two
    assert cat.ingest(str(src), "lab/two").version == 1  # reopened: written to the new file
    assert Catalog(made).datasets() == ["lab/one", "lab/two"]


def test_cli_ingest_into_a_catalog_deleted_meanwhile_exits_non_zero(
    made, tmp_path, monkeypatch, capsysbinary
):
    _scan_then(monkeypatch, made.unlink)
    src = make_tree(tmp_path / "two", {"b.txt": b"beta"})
    code = main(["ingest", str(src), "-d", "lab/two", "--catalog", str(made)])
    out, err = capsysbinary.readouterr()
    assert code == 1
    assert out == b""  # no success line
    assert f"{made}: the catalog file was deleted while this command wrote to it".encode() in err


# -- backup, restore, check --------------------------------------------------


def test_backup_restores_what_it_held(made, tmp_path):
    cat = Catalog(made)
    backup = cat.backup(tmp_path / "backup.db")
    assert not list(tmp_path.glob("*.aif-tmp*")) and not list(tmp_path.glob("backup.db-*"))
    assert Catalog(backup).datasets() == ["lab/one"]  # one file, a catalog
    with pytest.raises(CatalogError, match=r"backup\.db: exists; --force"):
        cat.backup(backup)
    cat.ingest(str(make_tree(tmp_path / "two", {"b.txt": b"beta"})), "lab/two")
    cat.revoke("user:bob", "read", "lab/*")
    assert cat.backup(backup, force=True) == backup
    cat.ingest(str(make_tree(tmp_path / "three", {"c.txt": b"gamma"})), "lab/three")
    cat.restore(backup)
    assert cat.datasets() == ["lab/one", "lab/two"]
    assert cat.grants() == []
    assert Catalog(made).datasets() == ["lab/one", "lab/two"]  # what a new process sees
    assert cat.check() == []


def test_a_backup_is_no_easier_to_read_than_the_catalog(made, tmp_path):
    made.chmod(0o600)
    old = os.umask(0o022)
    try:
        backup = Catalog(made).backup(tmp_path / "backup.db")
    finally:
        os.umask(old)
    assert backup.stat().st_mode & 0o777 == 0o600


def test_backup_and_restore_are_for_admins(made, tmp_path, monkeypatch):
    backup = Catalog(made).backup(tmp_path / "backup.db")
    monkeypatch.setenv("AIFDATA_USER", "bob")
    with pytest.raises(AccessDenied):
        Catalog(made).backup(tmp_path / "mine.db")
    with pytest.raises(AccessDenied):
        Catalog(made).restore(backup)
    assert not (tmp_path / "mine.db").exists()


def test_restore_checks_the_backup_first(made, tmp_path):
    cat = Catalog(made)
    text = tmp_path / "notes.txt"
    text.write_text("not a catalog\n")
    with pytest.raises(CatalogError, match=r"notes\.txt: not an aifdata catalog"):
        cat.restore(text)
    damaged = cat.backup(tmp_path / "damaged.db")
    conn = sqlite3.connect(damaged)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'datasets'").fetchone()[0]
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(damaged, "r+b") as file:  # the table's page: no longer a b-tree page
        file.seek((root - 1) * page)
        file.write(b"\xff" * 16)
    with pytest.raises(CatalogError, match=r"damaged\.db: the backup is damaged"):
        cat.restore(damaged)
    with pytest.raises(NotFound, match="no such backup file"):
        cat.restore(tmp_path / "missing.db")
    assert cat.datasets() == ["lab/one"]


def test_restore_replaces_an_empty_file_and_another_kind_only_with_force(made, tmp_path):
    backup = Catalog(made).backup(tmp_path / "backup.db")
    empty = tmp_path / "empty.db"
    empty.touch()
    Catalog(empty).restore(backup)
    assert Catalog(empty).datasets() == ["lab/one"]
    other = tmp_path / "other.db"
    other.write_bytes(b"precious data\n")
    with pytest.raises(CatalogError, match=r"other\.db: exists and is no aifdata catalog"):
        Catalog(other).restore(backup)
    assert other.read_bytes() == b"precious data\n"
    Catalog(other).restore(backup, force=True)
    assert Catalog(other).datasets() == ["lab/one"]
    missing = tmp_path / "new" / "catalog.db"
    missing.parent.mkdir()
    Catalog(missing).restore(backup)
    assert Catalog(missing).datasets() == ["lab/one"]


def test_cli_backup_restore_and_check(made, tmp_path, capsys):
    backup = tmp_path / "backup.db"
    assert main(["catalog", "backup", str(backup), "--catalog", str(made)]) == 0
    assert f"backed up {made} to {backup}" in capsys.readouterr().out
    assert main(["catalog", "backup", str(backup), "--catalog", str(made)]) == 1
    assert f"{backup}: exists; --force" in one_line_error(capsys)
    assert main(["catalog", "backup", str(backup), "--force", "--catalog", str(made)]) == 0
    assert main(["catalog", "check", "--catalog", str(backup)]) == 0
    assert f"{backup}: intact" in capsys.readouterr().out
    made.write_bytes(b"")  # every grant gone: restore them
    assert main(["policy", "list", "--catalog", str(made)]) == 1
    capsys.readouterr()
    assert main(["catalog", "restore", str(backup), "--catalog", str(made)]) == 0
    assert main(["policy", "list", "--catalog", str(made)]) == 0
    assert "user:bob" in capsys.readouterr().out
    missing = str(tmp_path / "none.db")
    assert main(["catalog", "check", "--catalog", missing]) == 3
    assert main(["catalog", "backup", str(tmp_path / "b2.db"), "--catalog", missing]) == 3
    assert not Path(missing).exists()


def test_check_names_what_is_damaged(made, capsys):
    conn = sqlite3.connect(made)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("INSERT INTO tags (dataset_id, key, value) VALUES (999, 'k', 'v')")
    conn.commit()
    conn.close()
    assert main(["catalog", "check", "--catalog", str(made)]) == 1
    assert "row 1 of tags refers to a missing row of datasets" in one_line_error(capsys)


# -- as the issue saw it: real read-only mounts and real users ---------------


def _can(*command: str) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _shared_directory() -> Path:
    """A directory outside pytest's (root-only) temporary tree, readable by all."""
    where = Path(tempfile.mkdtemp(prefix="aif-catalog-"))
    where.chmod(0o755)
    return where


@pytest.fixture
def shared_catalog(request):
    where = _shared_directory()
    try:
        yield _made_in(where, getattr(request, "param", "wal"))
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _made_in(where: Path, journal: str) -> tuple[Path, dict[str, str]]:
    env = {**os.environ, "AIFDATA_CATALOG_JOURNAL": journal, "AIFDATA_HOME": str(where / "home")}
    src = make_tree(where / "src", {"a.txt": b"alpha"})
    db = where / "catalog" / "catalog.db"
    made = subprocess.run(
        [str(AIFDATA), "ingest", str(src), "-d", "lab/one", "--catalog", str(db)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    db.parent.chmod(0o755)
    return db, env


@pytest.mark.e2e
@pytest.mark.parametrize("shared_catalog", ["wal", "delete"], indirect=True)
def test_a_catalog_on_a_read_only_mount(shared_catalog):
    if not _can("unshare", "-m", "true"):
        pytest.skip("no mount namespace here (unshare -m)")
    db, env = shared_catalog
    probe = db.parent.parent / "probe.py"  # aifdata's own checks see nothing: SQLite decides
    probe.write_text(
        "import sys, aifdata, aifdata.catalog._store as store\n"
        "store.read_only_reason = lambda path: ''\n"
        "catalog = aifdata.Catalog(sys.argv[1])\n"
        "print(catalog.datasets())\n"
        "try:\n"
        "    catalog.grant('user:x', 'read', 'lab/*')\n"
        "except aifdata.CatalogError as exc:\n"
        "    print('refused:', exc)\n"
    )
    script = (
        f"mount --bind -o ro {db.parent} {db.parent} || exit 99\n"
        f"{AIFDATA} search lab --catalog {db} || exit 1\n"
        f"{AIFDATA} policy list --catalog {db} || exit 2\n"
        f"{AIFDATA} ingest {db.parent.parent / 'src'} -d lab/two --catalog {db}\n"
        "test $? = 1 || exit 3\n"
        f"{sys.executable} {probe} {db} || exit 4\n"
    )
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    if done.returncode == 99:
        pytest.skip(f"cannot bind-mount read-only here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lab/one" in done.stdout
    assert f"{db}: the catalog is read-only here (its file system is mounted read-only)" in (
        done.stderr
    )
    assert "['lab/one']" in done.stdout
    assert f"refused: {db}: the catalog is read-only here (SQLite" in done.stdout


@pytest.mark.e2e
def test_a_catalog_another_user_may_only_read(shared_catalog):
    if not _can("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "true"):
        pytest.skip("cannot run as another user here (setpriv)")
    db, env = shared_catalog
    db.chmod(0o644)
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(AIFDATA)]
    env = {**env, "AIFDATA_USER": "root", "HOME": str(db.parent)}
    searched = subprocess.run(
        [*as_nobody, "search", "lab", "--catalog", str(db)], env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert searched.returncode == 0, searched.stderr
    assert "lab/one" in searched.stdout
    granted = subprocess.run(
        [*as_nobody, "policy", "grant", "user:x", "read", "lab/*", "--catalog", str(db)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert granted.returncode == 1
    assert f"{db}: the catalog is read-only here (this user may not write the file)" in (
        granted.stderr
    )
