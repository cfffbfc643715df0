"""The fault suite's table: printed at the end of the run and written to a file in $TMPDIR."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from .report import ROWS, table


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return
    text = table()
    path = Path(os.environ.get("TMPDIR") or tempfile.gettempdir()) / "aifdata-faults-last-run.md"
    path.write_text(text + "\n")
    terminalreporter.write_sep("=", "fault suite (seconds to error: time.monotonic)")
    terminalreporter.write_line(text)
    terminalreporter.write_line(f"(also written to {path})")
