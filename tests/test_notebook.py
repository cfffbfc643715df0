"""``notebooks/quickstart.ipynb``: committed clean, and runs top to bottom against SeaweedFS."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from aifdata import _seaweedfs

pytestmark = pytest.mark.e2e

nbformat = pytest.importorskip("nbformat", reason="needs nbformat (extra: test)")

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"
FASTQ = "aif://lab/genomics/run1/reads.fastq"


def test_the_notebook_is_committed_valid_and_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code"
    for cell in code:
        assert cell.execution_count is None, cell.source[:80]
        assert cell.outputs == [], cell.source[:80]


@pytest.mark.s3
@pytest.mark.timeout(300)
def test_the_notebook_runs_top_to_bottom(
    seaweedfs: _seaweedfs.SeaweedFS,
    tmp_path: Path,
    isolated_home: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    pytest.importorskip("nbclient", reason="needs nbclient to run notebooks (extra: test)")
    pytest.importorskip("ipykernel", reason="needs ipykernel for the kernel (extra: notebook)")
    pytest.importorskip("matplotlib", reason="needs matplotlib for the plots (extra: notebook)")
    pytest.importorskip("uproot", reason="needs uproot for the ROOT file (extra: formats)")
    pytest.importorskip("tifffile", reason="needs tifffile for the GeoTIFF (extra: formats)")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    which_python = "import sys\nprint(sys.executable, sys.prefix, sep='\\n')"
    nb.cells.append(nbformat.v4.new_code_cell(which_python))
    scratch = tmp_path / "scratch"  # the notebook's temporary home is made in here
    scratch.mkdir()
    _use_this_python_as_the_kernel(tmp_path / "jupyter", monkeypatch)
    try:
        _execute(nb, _kernel_environment(seaweedfs, isolated_home, scratch, tmp_path), tmp_path)
    finally:
        left_behind = _stop_weed_under(tmp_path)
    assert not left_behind, f"a weed server outlived the notebook: {left_behind}"

    out = _text(nb)
    executable, prefix = out.strip().splitlines()[-2:]
    assert (executable, prefix) == (sys.executable, sys.prefix)  # the kernel ran this venv
    assert f"using the S3 server at {seaweedfs.endpoint_url}" in out  # the session's server
    before, after = out.split("before staging:")[1].split("after staging:")
    assert f"  s3   {FASTQ}" in before and "pfs: no copy" in before  # read from S3 ...
    assert f"  pfs  {FASTQ}" in after  # ... then from the PFS copy, once staged
    assert "  s3   aif://lab/physics/run7/events.root" in after  # not staged: still S3
    assert "found 'genomics/run1'" in out  # search
    assert "records: 5000" in out  # Dask
    if importlib.util.find_spec("torch") is not None:
        assert "5 batches, 5,000 reads" in out  # PyTorch
    assert (
        "genomics/run1@1 --[quickstart/read-length-histogram, COMPLETE]--> genomics/read-lengths@1"
        in out
    )
    assert "alice reads: b'@read0" in out
    assert "refused: user:alice may not read aif://lab/physics/run7/events.root" in out
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert not list(scratch.glob("aifdata-quickstart-*")), "the last cell left its home behind"


def _use_this_python_as_the_kernel(jupyter: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``python3`` kernelspec that runs ``sys.executable``, found before any other."""
    from ipykernel.kernelspec import write_kernel_spec

    write_kernel_spec(jupyter / "kernels" / "python3")
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter))  # searched first
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # no jupyter_core deprecation warning


def _kernel_environment(
    server: _seaweedfs.SeaweedFS, home: Path, scratch: Path, tmp_path: Path
) -> dict[str, str]:
    """The session's S3 server and a scratch home; nothing of the user's setup."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIFDATA_", "AWS_"))}
    env.update(
        AIFDATA_S3_ENDPOINT=server.endpoint_url,
        AWS_ACCESS_KEY_ID=server.access_key,
        AWS_SECRET_ACCESS_KEY=server.secret_key,
        AWS_EC2_METADATA_DISABLED="true",
        AIFDATA_HOME=str(home),
        TMPDIR=str(scratch),
        IPYTHONDIR=str(tmp_path / "ipython"),
    )
    return env


def _execute(nb: Any, env: dict[str, str], cwd: Path) -> None:
    from nbclient import NotebookClient

    client = NotebookClient(
        nb, kernel_name="python3", timeout=150, resources={"metadata": {"path": str(cwd)}}
    )
    client.execute(env=env)


def _text(nb: Any) -> str:
    """Everything the cells printed or displayed as text."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif "text/plain" in output.get("data", {}):
                parts.append(output.data["text/plain"] + "\n")
    return "".join(parts)


def _stop_weed_under(root: Path) -> list[str]:
    """Kill any weed server whose command line names ``root``; return their command lines."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        text = b" ".join(args).decode(errors="replace")
        if args and Path(args[0].decode(errors="replace")).name == "weed" and str(root) in text:
            found.append(text)
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
    return found
