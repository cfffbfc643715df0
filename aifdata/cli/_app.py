"""The ``aifdata`` application: global options, error handling, exit codes.

Errors print one line (``aifdata: error: ...``) and exit with a code scripts
can trust; ``--debug`` shows the traceback instead. This module imports no
command module: each command module imports :data:`app` and registers its
commands on it, and :mod:`aifdata.cli` imports them all.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from .. import (
    AccessDenied,
    AifDataError,
    BadArgument,
    BadName,
    BadURL,
    Config,
    ConfigError,
    NotFound,
    StorageUnavailable,
    __version__,
    load_config,
    one_line,
)

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_ACCESS_DENIED = 4
EXIT_CONFIG = 5
EXIT_UNAVAILABLE = 6

_EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (ConfigError, EXIT_CONFIG),
    (BadURL, EXIT_USAGE),
    (BadName, EXIT_USAGE),
    (BadArgument, EXIT_USAGE),
    (NotADirectoryError, EXIT_NOT_FOUND),  # a file where the path needs a directory
    (FileNotFoundError, EXIT_NOT_FOUND),
    (NotFound, EXIT_NOT_FOUND),
    (PermissionError, EXIT_ACCESS_DENIED),
    (AccessDenied, EXIT_ACCESS_DENIED),
    (StorageUnavailable, EXIT_UNAVAILABLE),
    (ConnectionError, EXIT_UNAVAILABLE),
)


# typer raises click's usage errors (from its own copy of click in newer typer): find the
# classes through the public BadParameter rather than a private module path.
_click_exceptions = sys.modules[typer.BadParameter.__module__]
UsageError: type[Exception] = _click_exceptions.UsageError
NoArgsIsHelp: type[Exception] = getattr(_click_exceptions, "NoArgsIsHelpError", UsageError)


@dataclass
class State:
    """Options given before the command."""

    config_path: Path | None = None
    debug: bool = False
    _config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config


state = State()

app = typer.Typer(
    name="aifdata",
    help="One namespace over S3 object storage and parallel file systems.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"aifdata {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    config: Annotated[
        Path | None,
        typer.Option("--config", envvar="AIFDATA_CONFIG", help="Mount table (TOML)."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="Show the version."),
    ] = False,
) -> None:
    state.config_path, state.debug, state._config = config, debug, None


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error: specific codes for the errors scripts care about."""
    for cls, code in _EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return EXIT_ERROR


def _usage_line(exc: Exception) -> str:
    """A usage error in one line, with the command whose ``--help`` explains it."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "aifdata"
    message = exc.format_message()  # type: ignore[attr-defined]
    return f"aifdata: error: {message} (see {command} --help)"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return (and, run as a script, exit with) its exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args
    try:
        result = app(args=args, prog_name="aifdata", standalone_mode=False)
        code: int = result if isinstance(result, int) else 0
    except UsageError as exc:
        if NoArgsIsHelp is not UsageError and isinstance(exc, NoArgsIsHelp):
            exc.show()  # type: ignore[attr-defined]  # no arguments at all: the help
        else:
            print(_usage_line(exc), file=sys.stderr)
        code = EXIT_USAGE
    except typer.Abort:
        code = EXIT_ERROR
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BrokenPipeError:
        code = 0
    except Exception as exc:
        if debug:
            raise
        hint = "" if isinstance(exc, AifDataError | OSError) else " (--debug shows the traceback)"
        print(f"aifdata: error: {one_line(exc)}{hint}", file=sys.stderr)
        code = exit_code_for(exc)
    if argv is None:
        sys.exit(code)
    return code
