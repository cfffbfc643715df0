"""Record which dataset versions were made from which, by what code, with what parameters.

::

    with aifdata.lineage.run("trim-reads", inputs=["genomics/run42"], params={"q": 20}) as run:
        ...  # read the inputs, write the result under aif://genomics/run42-trimmed
        run.output("genomics/run42-trimmed", source="aif://genomics/run42-trimmed")

The run is recorded in the catalog when it starts (with its inputs, resolved
to their current versions), each output when it is declared, and its end
state (COMPLETE, or FAIL with the error) when the block exits. With
``emit=`` (or ``$AIFDATA_OPENLINEAGE``) the run also sends OpenLineage START
and COMPLETE/FAIL events to a JSON-lines file or an HTTP endpoint; a sink
that cannot be reached is reported as a warning and never fails the job (the
catalog keeps the run, and ``aifdata lineage NAME --openlineage DEST`` can
send it again).

Lineage never names what the reader may not read: a run's inputs and outputs
they may not read are counted (``RunRecord.hidden_inputs``,
``hidden_outputs``), and ``aifdata lineage`` prints "1 ancestor hidden".
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._errors import AifDataError
from .catalog import (
    Catalog,
    Dataset,
    LineageNode,
    RunRecord,
    openlineage_events_of,
    send_openlineage,
)

__all__ = ["LineageNode", "Run", "RunRecord", "run"]


class Run:
    """A run in progress: declare more inputs, and the outputs it made."""

    def __init__(self, catalog: Catalog, key: int, run_id: str, job: str) -> None:
        self.catalog = catalog
        self.run_id = run_id
        self.job = job
        self.inputs: list[tuple[str, int]] = []
        self.outputs: list[tuple[str, int]] = []
        self._key = key

    def input(self, dataset: str) -> tuple[str, int]:
        """Also read ``dataset`` (``name`` = latest version, or ``name@N``)."""
        ref = self.catalog.add_run_dataset(self._key, dataset, "input")
        self.inputs.append(ref)
        return ref

    def output(self, dataset: str, source: str | None = None, **ingest: Any) -> Dataset:
        """Record that this run made ``dataset`` (its latest version, or ``name@N``).

        With ``source``, the files there are ingested first (as a new version
        unless unchanged); ``ingest`` options go to :meth:`Catalog.ingest`.
        """
        if source is not None:
            self.catalog.ingest(source, dataset, **ingest)
        name, number = self.catalog.add_run_dataset(self._key, dataset, "output")
        self.outputs.append((name, number))
        return self.catalog.dataset(name, number)

    def __repr__(self) -> str:
        return f"Run({self.job!r}, run_id={self.run_id!r})"


@contextlib.contextmanager
def run(
    job: str,
    inputs: Sequence[str] = (),
    *,
    params: Mapping[str, Any] | None = None,
    catalog: Catalog | None = None,
    emit: str | None = None,
) -> Iterator[Run]:
    """Record a run of ``job`` that reads ``inputs`` (dataset names, or ``name@N``)."""
    catalog = catalog or Catalog()
    sink = emit if emit is not None else os.environ.get("AIFDATA_OPENLINEAGE") or None
    script = _script()
    run_id = str(uuid.uuid4())
    key, resolved = catalog.begin_run(
        run_id, job, list(inputs), dict(params or {}), script, _git_commit(script)
    )
    handle = Run(catalog, key, run_id, job)
    handle.inputs.extend(resolved)
    if sink is not None:
        _send(openlineage_events_of(catalog.run_record(key)), sink)  # a running run: START only
    try:
        yield handle
    except BaseException as exc:
        record = catalog.end_run(key, "FAIL", f"{type(exc).__name__}: {exc}")
        if sink is not None:
            _send(openlineage_events_of(record)[1:], sink)
        raise
    record = catalog.end_run(key, "COMPLETE")
    if sink is not None:
        _send(openlineage_events_of(record)[1:], sink)


def _send(events: list[dict[str, Any]], sink: str) -> None:

    try:
        send_openlineage(events, sink)
    except (AifDataError, OSError) as exc:
        warnings.warn(f"lineage events not sent: {exc}", RuntimeWarning, stacklevel=4)


def _script() -> str | None:
    """The running script's path (None in an interactive session)."""
    main = sys.modules.get("__main__")
    candidate = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv else None)
    if candidate and _is_ipykernel(Path(candidate)):
        # a Jupyter kernel: the notebook (Jupyter names it for its kernels), not the launcher
        notebook = Path(os.environ.get("JPY_SESSION_NAME", ""))
        is_notebook = notebook.suffix == ".ipynb" and notebook.is_file()
        return str(notebook.resolve()) if is_notebook else None
    if not candidate or not Path(candidate).is_file():
        return None
    return str(Path(candidate).resolve())


def _is_ipykernel(path: Path) -> bool:
    return path.name == "ipykernel_launcher.py" or path.parts[-2:] == ("ipykernel", "__main__.py")


def _git_commit(script: str | None) -> str | None:
    """The commit checked out where ``script`` lives, if it is in a git work tree.

    Read from the repository's files (``HEAD``, the branch's ref, ``packed-refs``;
    a linked work tree through its ``gitdir`` and ``commondir``), so recording a
    run starts no process.
    """
    if script is None:
        return None
    git_dir = _git_dir(Path(script).resolve().parent)
    if git_dir is None:
        return None
    try:
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref: "):
            return head if _is_sha(head) else None
        return _resolve_ref(git_dir, head.removeprefix("ref: ").strip())
    except (OSError, UnicodeDecodeError):
        return None


def _git_dir(start: Path) -> Path | None:
    """The ``.git`` directory of the work tree holding ``start`` (following a ``gitdir:`` file)."""
    for folder in (start, *start.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():
            text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
            if text.startswith("gitdir: "):
                return (folder / text.removeprefix("gitdir: ").strip()).resolve()
            return None
    return None


def _resolve_ref(git_dir: Path, ref: str) -> str | None:
    """The commit a ref names: its loose file, else its line in ``packed-refs``."""
    common = git_dir
    if (git_dir / "commondir").is_file():
        common = (git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()).resolve()
    for root in dict.fromkeys((git_dir, common)):
        loose = root / ref
        if loose.is_file():
            sha = loose.read_text(encoding="utf-8").strip()
            return sha if _is_sha(sha) else None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            sha, _, name = line.partition(" ")
            if name.strip() == ref and _is_sha(sha):
                return sha
    return None


def _is_sha(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)
