"""Lineage: runs recorded in the catalog, the graph, OpenLineage events, concurrency."""

from __future__ import annotations

import http.server
import json
import multiprocessing
import shutil
import subprocess
import sys
import textwrap
import threading
from typing import ClassVar

import pytest

import aifdata
from aifdata import Catalog, lineage

from .test_catalog import make_tree


@pytest.fixture
def cat(catalog_url, tmp_path, monkeypatch):
    monkeypatch.setenv("AIFDATA_USER", "alice")
    catalog = Catalog(catalog_url)
    raw = make_tree(tmp_path / "raw", {"reads.fq": b"@r\nACGT\n+\nIIII\n"})
    catalog.ingest(str(raw), "genomics/run42", description="raw reads")
    return catalog


def derive(catalog, tmp_path, job, inputs, output, payload, **kwargs):
    with lineage.run(job, inputs=inputs, catalog=catalog, **kwargs) as run:
        out = make_tree(tmp_path / output.replace("/", "_"), {"part.bin": payload})
        run.output(output, source=str(out))
    return run


def test_a_run_records_inputs_outputs_params_and_state(cat, tmp_path):
    run = derive(
        cat, tmp_path, "trim-reads", ["genomics/run42"], "genomics/run42-trimmed", b"trimmed",
        params={"min_quality": 20, "adapter": "AGATCGG"},
    )  # fmt: skip
    ds = aifdata.open_dataset("genomics/run42-trimmed", catalog=cat)
    (made,) = ds.lineage
    assert made.run_id == run.run_id
    assert made.job == "trim-reads" and made.user == "alice" and made.state == "COMPLETE"
    assert made.inputs == (("genomics/run42", 1),)
    assert made.outputs == (("genomics/run42-trimmed", 1),)
    assert made.params == {"min_quality": 20, "adapter": "AGATCGG"}
    assert made.ended >= made.started
    assert cat.dataset("genomics/run42").lineage == ()


def test_inputs_resolve_to_the_version_read(cat, tmp_path):
    raw2 = make_tree(tmp_path / "raw2", {"reads.fq": b"@r\nTTTT\n+\nIIII\n"})
    cat.ingest(str(raw2), "genomics/run42")  # version 2
    derive(cat, tmp_path, "old", ["genomics/run42@1"], "derived/old", b"o")
    derive(cat, tmp_path, "new", ["genomics/run42"], "derived/new", b"n")
    assert cat.dataset("derived/old").lineage[0].inputs == (("genomics/run42", 1),)
    assert cat.dataset("derived/new").lineage[0].inputs == (("genomics/run42", 2),)
    with pytest.raises(aifdata.NotFound, match="versions: 1, 2"):
        derive(cat, tmp_path, "bad", ["genomics/run42@7"], "derived/bad", b"b")


def test_a_failed_run_is_recorded_with_its_error(cat, tmp_path):
    events = tmp_path / "events.jsonl"
    with (
        pytest.raises(RuntimeError, match="adapter file missing"),
        lineage.run("trim", inputs=["genomics/run42"], catalog=cat, emit=str(events)),
    ):
        raise RuntimeError("adapter file missing")
    (run,) = cat.runs("genomics/run42")
    assert run.state == "FAIL" and run.error == "RuntimeError: adapter file missing"
    kinds = [json.loads(line)["eventType"] for line in events.read_text().splitlines()]
    assert kinds == ["START", "FAIL"]


def test_graph_upstream_and_downstream(cat, tmp_path, capsys):
    derive(cat, tmp_path, "trim", ["genomics/run42"], "genomics/trimmed", b"t")
    derive(cat, tmp_path, "align", ["genomics/trimmed"], "genomics/aligned", b"a")
    derive(cat, tmp_path, "qc", ["genomics/run42"], "genomics/qc", b"q")
    trees = cat.lineage("genomics/trimmed")
    up, down = trees["upstream"], trees["downstream"]
    assert [(r.job, [(n.dataset, n.version) for n in nodes]) for r, nodes in up.runs] == [
        ("trim", [("genomics/run42", 1)])
    ]
    assert [(r.job, [n.dataset for n in nodes]) for r, nodes in down.runs] == [
        ("align", ["genomics/aligned"])
    ]
    full = cat.lineage("genomics/aligned")["upstream"]
    assert full.runs[0][1][0].runs[0][0].job == "trim"  # aligned <- trim... <- run42
    assert cat.lineage("genomics/aligned", depth=1)["upstream"].runs[0][1][0].runs == []
    roots = cat.lineage("genomics/run42")["downstream"]
    assert sorted(r.job for r, _ in roots.runs) == ["qc", "trim"]

    from aifdata.cli import main

    assert main(["lineage", "genomics/trimmed", "--catalog", str(cat.path)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == "genomics/trimmed@1"
    assert any(line.startswith("├── upstream") for line in lines)
    assert any("trim  [COMPLETE]  by alice" in line for line in lines)
    assert any(line.strip().endswith("genomics/run42@1") for line in lines)
    assert any(line.strip().endswith("genomics/aligned@1") for line in lines)
    assert main(["lineage", "genomics/trimmed", "--json", "--catalog", str(cat.path)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["upstream"]["runs"][0]["datasets"][0]["dataset"] == "genomics/run42"
    assert payload["downstream"]["runs"][0]["run"]["job"] == "align"


def test_show_has_a_lineage_summary_and_grants(cat, tmp_path, capsys):
    from aifdata.cli import main

    derive(cat, tmp_path, "trim", ["genomics/run42"], "genomics/trimmed", b"t")
    cat.grant("group:lab", "read", "genomics/*")
    assert main(["show", "genomics/trimmed", "--catalog", str(cat.path)]) == 0
    out = capsys.readouterr().out
    assert "made by trim (run" in out and "from genomics/run42@1" in out
    assert "owner alice (admin); group:lab read via genomics/*" in out
    assert main(["show", "genomics/run42", "--catalog", str(cat.path)]) == 0
    assert "used by trim" in capsys.readouterr().out
    assert main(["show", "genomics/trimmed", "--json", "--catalog", str(cat.path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["lineage"][0]["job"] == "trim"
    grant = {"principal": "group:lab", "privilege": "read", "pattern": "genomics/*"}
    assert shown["grants"] == [grant]


def test_a_hidden_upstream_stays_hidden(cat, tmp_path, monkeypatch):
    derive(cat, tmp_path, "trim", ["genomics/run42"], "shared/trimmed", b"t")
    cat.grant("bob", "read", "shared/*")
    monkeypatch.setenv("AIFDATA_USER", "bob")
    up = cat.lineage("shared/trimmed")["upstream"]
    run, parents = up.runs[0]
    assert parents == [] and run.inputs == () and run.hidden_inputs == 1  # counted, not named
    with pytest.raises(aifdata.AccessDenied):
        cat.lineage("genomics/run42")
    with pytest.raises(aifdata.AccessDenied):  # no write on a dataset: cannot claim to make it
        derive(cat, tmp_path, "fake", ["shared/trimmed"], "genomics/run42", b"x")


def test_script_and_git_commit_are_recorded(tmp_path):
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    script = repo / "trim.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import aifdata
            cat = aifdata.Catalog({str(tmp_path / "cat.db")!r})
            cat.ingest({str(repo / "trim.py")!r}, "code/input")
            with aifdata.lineage.run("trim", inputs=["code/input"], catalog=cat) as run:
                run.output("code/output", source={str(repo / "trim.py")!r})
            """
        )
    )
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    for args in (["init", "-q"], ["add", "trim.py"], ["commit", "-qm", "trim"]):
        subprocess.run([git, "-C", str(repo), *args], check=True, env={**env, "PATH": "/usr/bin"})
    head = subprocess.run(
        [git, "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run([sys.executable, str(script)], check=True, cwd=tmp_path)
    (run,) = Catalog(tmp_path / "cat.db").runs()
    assert run.script == str(script.resolve())
    assert run.git_commit == head
    (_, complete) = Catalog(tmp_path / "cat.db").openlineage_events([run])
    source = complete["job"]["facets"]["sourceCodeLocation"]
    assert source["version"] == head and source["type"] == "git"


# -- OpenLineage -------------------------------------------------------------


def official_model(event: dict) -> dict:
    """Rebuild an event with OpenLineage's spec-generated client classes and serialise it back."""
    from openlineage.client import event_v2 as ol
    from openlineage.client.generated import (
        dataset_version_dataset,
        error_message_run,
        execution_parameters_run,
        source_code_location_job,
    )
    from openlineage.client.serde import Serde

    def facets(raw: dict, kinds: dict) -> dict:
        out = {}
        for key, body in raw.items():
            fields = {k: v for k, v in body.items() if not k.startswith("_")}
            if key == "executionParameters":
                fields["parameters"] = [
                    execution_parameters_run.ExecutionParameter(**p) for p in fields["parameters"]
                ]
            out[key] = kinds[key](**fields, producer=body["_producer"])
            assert out[key]._schemaURL == body["_schemaURL"], key
        return out

    dataset_facets = {"version": dataset_version_dataset.DatasetVersionDatasetFacet}
    run_facets = {
        "executionParameters": execution_parameters_run.ExecutionParametersRunFacet,
        "errorMessage": error_message_run.ErrorMessageRunFacet,
    }
    job_facets = {"sourceCodeLocation": source_code_location_job.SourceCodeLocationJobFacet}
    rebuilt = ol.RunEvent(
        eventType=ol.RunState(event["eventType"]),
        eventTime=event["eventTime"],
        run=ol.Run(runId=event["run"]["runId"], facets=facets(event["run"]["facets"], run_facets)),
        job=ol.Job(
            namespace=event["job"]["namespace"],
            name=event["job"]["name"],
            facets=facets(event["job"]["facets"], job_facets),
        ),
        inputs=[
            ol.InputDataset(d["namespace"], d["name"], facets=facets(d["facets"], dataset_facets))
            for d in event["inputs"]
        ],
        outputs=[
            ol.OutputDataset(d["namespace"], d["name"], facets=facets(d["facets"], dataset_facets))
            for d in event["outputs"]
        ],
        producer=event["producer"],
    )
    return json.loads(Serde.to_json(rebuilt))


def test_openlineage_events_match_the_specs_model(cat, tmp_path):
    pytest.importorskip("openlineage.client")
    events = tmp_path / "ol" / "events.jsonl"
    derive(
        cat, tmp_path, "trim", ["genomics/run42"], "genomics/trimmed", b"t",
        params={"min_quality": 20, "tools": ["cutadapt"]}, emit=str(events),
    )  # fmt: skip
    with (
        pytest.raises(ValueError, match="boom"),
        lineage.run("broken", inputs=["genomics/trimmed"], catalog=cat, emit=str(events)),
    ):
        raise ValueError("boom")
    sent = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["eventType"] for e in sent] == ["START", "COMPLETE", "START", "FAIL"]
    for event in sent:
        assert official_model(event) == event
        assert event["schemaURL"].endswith("/OpenLineage.json#/$defs/RunEvent")
    start, complete = sent[0], sent[1]
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert start["inputs"][0]["name"] == "genomics/run42"
    assert start["inputs"][0]["facets"]["version"]["datasetVersion"] == "1"
    assert complete["outputs"][0]["name"] == "genomics/trimmed"
    params = complete["run"]["facets"]["executionParameters"]["parameters"]
    assert {"key": "tools", "value": '["cutadapt"]'} in params
    assert sent[3]["run"]["facets"]["errorMessage"]["message"] == "ValueError: boom"
    # The catalog can send the same events again, from its own records.
    again = cat.openlineage_events(cat.runs("genomics/run42"))
    assert again[:2] == sent[:2]


class _Collector(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, json.loads(body)))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector():
    _Collector.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Collector.received
    server.shutdown()
    server.server_close()


def test_events_go_to_an_http_endpoint_live_and_from_the_cli(cat, tmp_path, collector, capsys):
    url, received = collector
    derive(cat, tmp_path, "trim", ["genomics/run42"], "genomics/trimmed", b"t", emit=url)
    assert [(p, e["eventType"]) for p, e in received] == [
        ("/api/v1/lineage", "START"),
        ("/api/v1/lineage", "COMPLETE"),
    ]
    received.clear()
    from aifdata.cli import main

    code = main(["lineage", "genomics/trimmed", "--openlineage", url, "--catalog", str(cat.path)])
    assert code == 0
    assert [e["eventType"] for _, e in received] == ["START", "COMPLETE"]
    jsonl = tmp_path / "cli.jsonl"
    assert main(["lineage", "genomics/run42", "--openlineage", str(jsonl), "--catalog",
                 str(cat.path)]) == 0  # fmt: skip
    assert len(jsonl.read_text().splitlines()) == 2


def test_an_unreachable_sink_warns_and_the_job_still_completes(cat, tmp_path):
    from aifdata._seaweedfs import free_ports

    (port,) = free_ports(1)
    with pytest.warns(RuntimeWarning, match="lineage events not sent"):
        derive(
            cat, tmp_path, "trim", ["genomics/run42"], "genomics/trimmed", b"t",
            emit=f"http://127.0.0.1:{port}",
        )  # fmt: skip
    assert cat.runs("genomics/trimmed")[0].state == "COMPLETE"


def test_lineage_survives_a_parquet_snapshot(cat, tmp_path):
    pytest.importorskip("pyarrow")
    derive(cat, tmp_path, "trim", ["genomics/run42"], "genomics/trimmed", b"t")
    cat.export(str(tmp_path / "snap"))
    snap = Catalog.from_parquet(str(tmp_path / "snap"))
    assert snap.dataset("genomics/trimmed").lineage[0].job == "trim"
    assert snap.lineage("genomics/run42")["downstream"].runs[0][0].job == "trim"


# -- concurrency -------------------------------------------------------------


def _lineage_worker(args):
    db, root, i = args
    cat = Catalog(db)
    cat.ingest(root, f"parallel/raw{i}")
    inputs = ["shared/input", f"parallel/raw{i}"]
    with lineage.run(f"derive-{i}", inputs=inputs, catalog=cat) as run:
        run.output(f"parallel/derived{i}", source=root)
    return i


def test_eight_processes_ingest_and_record_lineage_at_once(tmp_path, catalog_url, monkeypatch):
    monkeypatch.setenv("AIFDATA_USER", "alice")
    db = catalog_url
    shared = make_tree(tmp_path / "shared", {"x.bin": b"x" * 100})
    Catalog(db).ingest(str(shared), "shared/input")
    jobs = []
    for i in range(8):
        root = make_tree(tmp_path / f"src{i}", {f"f{j}.bin": bytes([i, j]) * 50 for j in range(10)})
        jobs.append((str(db), str(root), i))
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        assert sorted(pool.map(_lineage_worker, jobs)) == list(range(8))
    conn = Catalog(db).conn
    assert conn.execute("SELECT count(*) FROM runs WHERE state = 'COMPLETE'").fetchone()[0] == 8
    assert conn.execute("SELECT count(*) FROM run_datasets").fetchone()[0] == 8 * 3
    assert conn.execute("SELECT count(*) FROM files").fetchone()[0] == 1 + 8 * 10 * 2
    downstream = Catalog(db).lineage("shared/input")["downstream"]
    assert sorted(r.job for r, _ in downstream.runs) == [f"derive-{i}" for i in range(8)]


def test_in_a_jupyter_kernel_the_script_is_the_notebook(tmp_path, monkeypatch):
    import types

    from aifdata import lineage

    launcher = types.ModuleType("__main__")
    launcher.__file__ = str(tmp_path / "site-packages" / "ipykernel_launcher.py")
    monkeypatch.setitem(sys.modules, "__main__", launcher)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert lineage._script() is None  # not the launcher's path
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "analysis.ipynb"))
    assert lineage._script() is None  # no such notebook (a relative API path, say)
    (tmp_path / "analysis.ipynb").write_text("{}")
    assert lineage._script() == str((tmp_path / "analysis.ipynb").resolve())
    monkeypatch.setenv("JPY_SESSION_NAME", "console-1")  # a console, not a notebook
    assert lineage._script() is None


def test_openlineage_goes_to_http_or_a_file_and_nowhere_else(tmp_path, monkeypatch):
    from aifdata import AifDataError
    from aifdata.catalog._openlineage import send

    monkeypatch.chdir(tmp_path)
    with pytest.raises(AifDataError, match="expected an http"):
        send([{"eventType": "START"}], "ftp://x")
    assert list(tmp_path.iterdir()) == []  # no ./ftp:/x file
    assert send([{"eventType": "START"}], f"file://{tmp_path}/events.jsonl") == 1
    assert (tmp_path / "events.jsonl").read_text().count("\n") == 1
