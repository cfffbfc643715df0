"""What each fault scenario ended in, collected for the table."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

#: The one promise every scenario keeps: the right bytes, or an error within this many seconds.
BUDGET = 30.0


@dataclass(frozen=True)
class Row:
    scenario: str
    outcome: str
    seconds: float
    bytes_lost: int


ROWS: list[Row] = []


def measure(scenario: str, call: Callable[[], bytes | None], expected: bytes | None) -> Row:
    """Run ``call``; the row says whether it gave ``expected`` or which error, and when.

    ``bytes_lost`` is what the caller was to receive (or store) and did not: after an
    error the caller is told so; only WRONG BYTES would be a silent loss.
    """
    started = time.monotonic()
    try:
        got = call()
    except Exception as exc:  # the scenario decides which errors are right
        seconds = time.monotonic() - started
        first = str(exc).splitlines()[0] if str(exc) else ""
        row = Row(scenario, f"{type(exc).__name__}: {first}", seconds, len(expected or b""))
    else:
        seconds = time.monotonic() - started
        right = expected is None or got == expected
        lost = 0 if right else len(expected or b"")
        row = Row(scenario, "right bytes" if right else "WRONG BYTES", seconds, lost)
    ROWS.append(row)
    return row


def record(scenario: str, outcome: str, seconds: float, bytes_lost: int) -> Row:
    row = Row(scenario, outcome, seconds, bytes_lost)
    ROWS.append(row)
    return row


def table() -> str:
    lines = [
        "| scenario | outcome | seconds to error | bytes not delivered (error said so) "
        "| bytes lost or altered silently |",
        "|---|---|---:|---:|---:|",
    ]
    for row in ROWS:
        outcome = row.outcome if len(row.outcome) <= 140 else row.outcome[:137] + "..."
        seconds = "-" if not row.seconds or outcome == "right bytes" else f"{row.seconds:.1f}"
        silent = row.bytes_lost if row.outcome.startswith("WRONG") else 0
        lines.append(f"| {row.scenario} | {outcome} | {seconds} | {row.bytes_lost} | {silent} |")
    return "\n".join(lines)
