"""Print shell ``export`` lines that point uv at the package indexes pip is set up to use.

CI's lanes that run uv (.ci/lowest, .ci/resolve_newest.py) must reach the same indexes as pip on
whatever machine runs them, so nothing here names an index: it reads pip's own configuration
(``pip config list``: the config files and ``PIP_*`` variables, later ones winning) at run time.

    eval "$(python3 .ci/uv_env.py [PYTHON])"

PYTHON is the interpreter whose pip to ask (default: this one). A ``UV_*`` variable already set is
left as it is.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

_LINE = re.compile(r"^[^.]*\.([a-z-]+)='(.*)'$")


def pip_settings(python: str) -> dict[str, str]:
    """pip's effective settings, by option name (``extra-index-url``, ``find-links``, ...)."""
    out = subprocess.run(
        [python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    settings: dict[str, str] = {}
    for line in out.splitlines():
        if match := _LINE.match(line.strip()):
            settings[match.group(1)] = match.group(2)  # later sources override earlier ones
    return settings


def uv_variables(pip: dict[str, str]) -> dict[str, str]:
    """The uv settings that make uv resolve from what pip resolves from."""
    env = {
        # pip takes the best version across all its indexes; uv's default takes the first
        # index that has the package at all.
        "UV_INDEX_STRATEGY": "unsafe-best-match",
        "UV_PYTHON_DOWNLOADS": "never",
    }
    if url := pip.get("index-url"):
        env["UV_DEFAULT_INDEX"] = url
    if urls := pip.get("extra-index-url", "").split():
        env["UV_INDEX"] = " ".join(urls)  # uv: space-separated
    if links := pip.get("find-links", "").split():
        env["UV_FIND_LINKS"] = ",".join(links)  # uv: comma-separated
    if files := pip.get("constraint", "").split():
        env["UV_CONSTRAINT"] = " ".join(files)  # uv: space-separated
    if pip.get("no-index", "").lower() in {"1", "true", "yes", "on"}:
        env["UV_NO_INDEX"] = "1"
    if cert := pip.get("cert"):
        env["SSL_CERT_FILE"] = cert
    if timeout := pip.get("default-timeout") or pip.get("timeout"):
        env["UV_HTTP_TIMEOUT"] = timeout
    return {name: value for name, value in env.items() if name not in os.environ}


def main() -> None:
    python = sys.argv[1] if len(sys.argv) > 1 else sys.executable
    for name, value in uv_variables(pip_settings(python)).items():
        print(f"export {name}={shlex.quote(value)}")


if __name__ == "__main__":
    main()
