"""``--slurm`` and ``--script``: a command (``stage``, ``prefetch``) as a Slurm job step.

The job script is bash: ``#SBATCH`` lines (a job name, an output file, then every sbatch
option given after ``--``), the environment the job needs exported by name, and ``exec``
of the same command with this interpreter and absolute paths. The sbatch options go into
the script rather than onto sbatch's command line so that a script written with
``--script FILE`` and submitted later with ``sbatch FILE`` is the very job ``--slurm``
would have submitted. Credentials are never written: the job inherits them from the
submitting environment (sbatch's ``--export=ALL``) or reads them from a profile file.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated

import typer

from .. import AifDataError
from ._app import EXIT_USAGE, UsageError, state
from ._options import print_json

SlurmFlag = Annotated[
    bool,
    typer.Option(
        "--slurm",
        help="Submit this command as a Slurm batch job (sbatch) instead of running it here; "
        "sbatch options go after --, e.g. -- --time=30 --partition=io.",
    ),
]
ScriptOption = Annotated[
    str | None,
    typer.Option(
        "--script",
        metavar="FILE",
        help="Write the Slurm job script to FILE (- for standard output) instead of running "
        "or submitting it; sbatch options go after --.",
    ),
]

#: What a command that can run as a job passes to ``app.command``: the words after ``--``
#: reach it as ``ctx.args`` (an unknown option before ``--`` is still a usage error).
JOB_CONTEXT: dict[str, object] = {"allow_extra_args": True}

#: Variables the job gets from this process by name, when they are set here.
PASSED_ON = ("AIFDATA_USER", "AIFDATA_GROUPS")

_NO_SBATCH = (
    "--slurm submits with sbatch, which is not on PATH (run on a Slurm login node,"
    " or use --script FILE to write the job script)"
)


class SubmitError(AifDataError):
    """sbatch refused the job, or answered with no job id."""


def job_options(ctx: typer.Context, slurm: bool, script: str | None) -> list[str] | None:
    """The sbatch options (the words after ``--``) when the command is to become a job
    (``--slurm`` or ``--script``), else None; a usage error for words after ``--``
    without either, for both flags at once, and for ``--slurm`` without sbatch."""
    options = list(ctx.args)
    if not slurm and script is None:
        if options:
            raise _usage(
                ctx,
                f"Got unexpected extra argument(s) ({' '.join(options)}): words after --"
                " are sbatch options, for --slurm or --script",
            )
        return None
    if slurm and script is not None:
        raise _usage(
            ctx,
            "--script writes the job script instead of submitting it: give --slurm or"
            " --script, not both",
        )
    if options and not options[0].startswith("-"):
        raise _usage(
            ctx,
            f"{options[0]!r} after -- is not an sbatch option: aifdata writes the job"
            " script itself; give options only, e.g. -- --time=30",
        )
    if slurm and shutil.which("sbatch") is None:
        typer.echo(f"aifdata: error: {_NO_SBATCH}", err=True)
        raise typer.Exit(EXIT_USAGE)
    return options


def _usage(ctx: typer.Context, message: str) -> Exception:
    """A usage error of this command (printed with its ``--help`` hint)."""
    return UsageError(message, ctx)  # click's UsageError(message, ctx)


def run_as_job(
    argv: Sequence[str], options: Sequence[str], script: str | None, as_json: bool
) -> None:
    """Write (``script``) or submit the job that runs ``aifdata ARGV``; print what was
    done and how the next job waits for it."""
    text = job_script(argv, options, config=_config_file(), exports=job_environment())
    shown = shlex.join(["aifdata", *_shown(argv)])
    if script == "-":
        sys.stdout.write(text)
    elif script is not None:
        write_script(text, Path(script))
        submit_line = f"sbatch {shlex.quote(script)}"
        if as_json:
            print_json({"script_file": script, "submit": submit_line, "script": text})
            return
        typer.echo(f"wrote job script {script}: {shown}")
        typer.echo(
            f"submit it: {submit_line}; run the next job after it with --dependency=afterok:JOBID"
        )
    else:
        job_id = submit(text)
        if as_json:
            print_json({"job_id": job_id, "dependency": f"afterok:{job_id}", "script": text})
            return
        typer.echo(f"submitted job {job_id}: {shown}")
        typer.echo(f"run the next job after it: sbatch --dependency=afterok:{job_id} train.sh")


def job_script(
    argv: Sequence[str],
    options: Sequence[str] = (),
    *,
    config: str | None = None,
    exports: Mapping[str, str] | None = None,
    name: str | None = None,
    python: str | None = None,
) -> str:
    """The bash job script that runs ``python -m aifdata [--config CONFIG] ARGV`` under the
    sbatch ``options`` (each option with its words on one ``#SBATCH`` line), as job
    ``name`` (default :func:`job_name`), with ``exports`` set; every word shell-quoted."""
    lines = ["#!/bin/bash"]
    given = sbatch_lines(options)
    if not any(_is_option(words[0], "-J", "--job-name") for words in given):
        lines.append(f"#SBATCH --job-name={shlex.quote(name or job_name(argv))}")
    if not any(_is_option(words[0], "-o", "--output") for words in given):
        lines.append(f"#SBATCH --output={_command_word(argv)}-%j.out")
    lines += [f"#SBATCH {shlex.join(words)}" for words in given]
    lines.append(f"# a job step written by aifdata: {shlex.join(['aifdata', *argv])}")
    lines += [f"export {key}={shlex.quote(value)}" for key, value in (exports or {}).items()]
    config_args = ["--config", config] if config is not None else []
    command = [python or sys.executable, "-m", "aifdata", *config_args, *argv]
    lines.append(f"exec {shlex.join(command)}")
    return "\n".join(lines) + "\n"


def sbatch_lines(options: Sequence[str]) -> list[list[str]]:
    """The options grouped one per ``#SBATCH`` line: an option and the words that follow it
    up to the next option (``-p debug`` stays together; ``--time=5`` is alone)."""
    lines: list[list[str]] = []
    for word in options:
        if word.startswith("-") or not lines:
            lines.append([word])
        else:
            lines[-1].append(word)
    return lines


def _is_option(word: str, short: str, long: str) -> bool:
    """Whether ``word`` sets option ``short`` or ``long`` (``-o F``, ``-oF``, ``--output=F``)."""
    if word.startswith("--"):
        return word.split("=", 1)[0] == long
    return word.startswith(short)


def job_name(argv: Sequence[str]) -> str:
    """``aifdata-stage-genomics-run42`` for ``stage genomics/run42 ...``."""
    target = argv[1].removeprefix("aif://") if len(argv) > 1 else ""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", target).strip("-")
    return f"{_command_word(argv)}-{slug}" if slug else _command_word(argv)


def _command_word(argv: Sequence[str]) -> str:
    return f"aifdata-{argv[0]}"


def job_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the job gets by name: ``AIFDATA_HOME`` and ``AIFDATA_CONFIG`` as absolute paths
    (the latter when a mount table file is in use), ``AIFDATA_USER``/``AIFDATA_GROUPS``
    when set here."""
    env = os.environ if environ is None else environ
    home = os.path.expanduser(env.get("AIFDATA_HOME") or "~/.aifdata")  # as aifdata finds it
    out = {"AIFDATA_HOME": os.path.abspath(home)}
    config = _config_file()
    if config is not None:
        out["AIFDATA_CONFIG"] = config
    out.update({key: env[key] for key in PASSED_ON if key in env})
    return out


def _config_file() -> str | None:
    """The absolute path of the mount table in use, or None for the built-in default."""
    source = state.config.source
    return os.path.abspath(Path(source).expanduser()) if source is not None else None


def _shown(argv: Sequence[str]) -> list[str]:
    """The command as a user would type it: without the paths and defaults added for the job."""
    out, words = [], iter(argv)
    for word in words:
        if word in ("--catalog", "--workers"):
            next(words, None)
            continue
        out.append(word)
    return out


def write_script(text: str, dest: Path) -> None:
    """Write ``text`` to ``dest`` whole or not at all (a temporary file renamed into place),
    executable as the umask allows."""
    dest = dest.expanduser()
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def submit(script: str, sbatch_args: Sequence[str] = ()) -> int:
    """Submit ``script`` (on sbatch's standard input) with ``sbatch --parsable``; the job id."""
    sbatch = shutil.which("sbatch") or "sbatch"
    done = subprocess.run(
        [sbatch, "--parsable", *sbatch_args],
        input=script,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        why = sbatch_error(done.stderr) or f"exit status {done.returncode}"
        raise SubmitError(f"sbatch refused the job: {why}")
    return parse_job_id(done.stdout)


def sbatch_error(stderr: str) -> str:
    """sbatch's error lines in one line, without their ``sbatch: error:`` prefixes."""
    lines: list[str] = []
    for raw in stderr.splitlines():
        line = re.sub(r"^sbatch:\s*(error:\s*)?", "", raw.strip())
        if line and line not in lines:
            lines.append(line)
    return "; ".join(lines)


def parse_job_id(stdout: str) -> int:
    """The job id of ``sbatch --parsable``'s answer: ``ID`` or ``ID;CLUSTER``."""
    answer = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    head = answer.split(";", 1)[0].strip()
    if not head.isdigit():
        raise SubmitError(f"sbatch --parsable answered {answer!r}, not a job id")
    return int(head)
