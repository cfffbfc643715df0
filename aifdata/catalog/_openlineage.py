"""Runs as OpenLineage events (spec 2-0-2), written to a JSON-lines file or an HTTP endpoint.

Each run gives a ``START`` event at its start time and a ``COMPLETE`` (or
``FAIL``) event at its end. Datasets carry the standard ``version`` facet
(``DatasetVersionDatasetFacet``, the catalog's version number); the run
carries its parameters (``executionParameters``) and, for a failure, the
error (``errorMessage``); the job carries its script and git commit
(``sourceCodeLocation``) where there is one.
"""

from __future__ import annotations

import datetime
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._errors import AifDataError, StorageUnavailable
from .._version import __version__
from ._lineage import RunRecord

SPEC = "https://openlineage.io/spec"
RUN_EVENT_SCHEMA = f"{SPEC}/2-0-2/OpenLineage.json#/$defs/RunEvent"
VERSION_FACET_SCHEMA = (
    f"{SPEC}/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"
)
PARAMETERS_FACET_SCHEMA = (
    f"{SPEC}/facets/1-0-0/ExecutionParametersRunFacet.json#/$defs/ExecutionParametersRunFacet"
)
ERROR_FACET_SCHEMA = f"{SPEC}/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
SOURCE_FACET_SCHEMA = (
    f"{SPEC}/facets/1-1-0/SourceCodeLocationJobFacet.json#/$defs/SourceCodeLocationJobFacet"
)
PRODUCER = f"urn:aifdata:{__version__}"
#: Namespace of aifdata's jobs and datasets in the events (``$AIFDATA_LINEAGE_NAMESPACE``).
DEFAULT_NAMESPACE = "aifdata"


def namespace() -> str:
    return os.environ.get("AIFDATA_LINEAGE_NAMESPACE") or DEFAULT_NAMESPACE


def _time(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).isoformat()


def _facet(schema: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": schema, **fields}


def _dataset(name: str, version: int, role: str) -> dict[str, Any]:
    return {
        "namespace": namespace(),
        "name": name,
        "facets": {"version": _facet(VERSION_FACET_SCHEMA, datasetVersion=str(version))},
        f"{role}Facets": {},
    }


def _job(run: RunRecord) -> dict[str, Any]:
    facets: dict[str, Any] = {}
    if run.script and run.git_commit:
        facets["sourceCodeLocation"] = _facet(
            SOURCE_FACET_SCHEMA,
            type="git",
            url=Path(run.script).resolve().as_uri(),
            path=run.script,
            version=run.git_commit,
        )
    return {"namespace": namespace(), "name": run.job, "facets": facets}


def _run(run: RunRecord, error: str | None) -> dict[str, Any]:
    facets: dict[str, Any] = {}
    if run.params:
        parameters = [
            {"key": str(k), "value": v if isinstance(v, str) else json.dumps(v)}
            for k, v in sorted(run.params.items())
        ]
        facets["executionParameters"] = _facet(PARAMETERS_FACET_SCHEMA, parameters=parameters)
    if error is not None:
        facets["errorMessage"] = _facet(
            ERROR_FACET_SCHEMA, message=error, programmingLanguage="python"
        )
    return {"runId": run.run_id, "facets": facets}


def events_for(run: RunRecord) -> list[dict[str, Any]]:
    """START, then COMPLETE or FAIL if the run has ended (a RUNNING run: START only)."""
    inputs = [_dataset(n, v, "input") for n, v in run.inputs]
    start = {
        "eventType": "START",
        "eventTime": _time(run.started),
        "run": _run(run, None),
        "job": _job(run),
        "inputs": inputs,
        "outputs": [],
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT_SCHEMA,
    }
    if run.ended is None or run.state == "RUNNING":
        return [start]
    end = {
        **start,
        "eventType": "COMPLETE" if run.state == "COMPLETE" else "FAIL",
        "eventTime": _time(run.ended),
        "run": _run(run, run.error if run.state != "COMPLETE" else None),
        "outputs": [_dataset(n, v, "output") for n, v in run.outputs],
    }
    return [start, end]


def send(events: Iterable[dict[str, Any]], dest: str, timeout: float = 10.0) -> int:
    """Append events to a JSON-lines file, or POST each to an HTTP(S) endpoint.

    An endpoint given without a path gets OpenLineage's ``/api/v1/lineage``.
    A file line is written with one ``write`` on an ``O_APPEND`` descriptor, so
    concurrent writers do not interleave lines. Returns the number sent.
    """
    events = list(events)
    if dest.startswith(("http://", "https://")):
        bare = urllib.parse.urlparse(dest).path in ("", "/")
        url = dest.rstrip("/") + "/api/v1/lineage" if bare else dest
        for event in events:
            _post(url, event, timeout)
        return len(events)
    scheme = urllib.parse.urlsplit(dest).scheme
    if scheme == "file":
        dest = urllib.parse.unquote(urllib.parse.urlsplit(dest).path)
    elif "://" in dest:
        raise AifDataError(
            f"OpenLineage destination {dest!r}: expected an http(s):// endpoint or a file path"
        )
    path = Path(dest).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for event in events:
            os.write(fd, (json.dumps(event, sort_keys=True) + "\n").encode())
    finally:
        os.close(fd)
    return len(events)


def _post(url: str, event: dict[str, Any], timeout: float) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(event).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise StorageUnavailable(
            f"{url}: the lineage endpoint answered {exc.code} {exc.reason}"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise StorageUnavailable(f"{url}: cannot reach the lineage endpoint ({exc})") from exc
