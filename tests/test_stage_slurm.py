"""Staging as a job step: ``aifdata stage ... --slurm`` and ``prefetch --slurm`` submit the copy
as a Slurm batch job; ``--script FILE`` writes its job script instead.

The script text and the argument handling are unit tests (sbatch is never run: ``submit``
is replaced); the jobs themselves run on the session's one-node Slurm cluster (lane slurm):
a training job submitted with ``--dependency=afterok:ID`` reads the staged copy from the PFS,
and a failed stage cancels it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

import aifdata
from aifdata import Catalog
from aifdata.cli import _slurm, main

from .conftest import two_tier_toml

PYTHON = sys.executable


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- the job script ------------------------------------------------------------


def test_the_job_script_runs_the_same_command_under_the_given_options():
    script = _slurm.job_script(
        ["stage", "genomics/run42", "--to", "pfs", "--catalog", "/data/cat.db", "--workers", "8"],
        ["--time=30", "-p", "io", "--comment", "staging for run 42"],
        config="/etc/aifdata/config.toml",
        exports={"AIFDATA_HOME": "/home/me/.aifdata", "AIFDATA_CONFIG": "/etc/aifdata/config.toml"},
        python="/opt/venv/bin/python",
    )
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert [line for line in lines if line.startswith("#SBATCH")] == [
        "#SBATCH --job-name=aifdata-stage-genomics-run42",
        "#SBATCH --output=aifdata-stage-%j.out",
        "#SBATCH --time=30",
        "#SBATCH -p io",
        "#SBATCH --comment 'staging for run 42'",
    ]
    # every #SBATCH line comes before the first command, or sbatch ignores it
    first_command = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    assert all(not line.startswith("#SBATCH") for line in lines[first_command:])
    assert "export AIFDATA_HOME=/home/me/.aifdata" in lines
    assert "export AIFDATA_CONFIG=/etc/aifdata/config.toml" in lines
    assert lines[-1] == (
        "exec /opt/venv/bin/python -m aifdata --config /etc/aifdata/config.toml"
        " stage genomics/run42 --to pfs --catalog /data/cat.db --workers 8"
    )


def test_a_given_output_or_job_name_replaces_the_default():
    argv = ["stage", "x", "--to", "pfs"]
    for options in (["-o", "/logs/%j.log"], ["-o/logs/%j.log"], ["--output=/logs/%j.log"]):
        script = _slurm.job_script(argv, options, python="python")
        assert "aifdata-stage-%j.out" not in script, options
        assert "/logs/%j.log" in script
    script = _slurm.job_script(argv, ["--job-name=warmup", "--open-mode=append"], python="python")
    assert "--job-name=aifdata-stage-x" not in script and "#SBATCH --job-name=warmup" in script
    assert "#SBATCH --output=aifdata-stage-%j.out" in script  # --open-mode is not -o


def test_every_word_is_shell_quoted():
    script = _slurm.job_script(
        ["stage", "lab/it's here", "--to", "pfs", "--catalog", "/my data/cat.db"],
        config="/my data/config.toml",
        exports={"AIFDATA_GROUPS": "lab,ops team"},
        python="/opt/my venv/bin/python",
    )
    exec_line = script.splitlines()[-1]
    assert shlex.split(exec_line) == [
        "exec", "/opt/my venv/bin/python", "-m", "aifdata", "--config", "/my data/config.toml",
        "stage", "lab/it's here", "--to", "pfs", "--catalog", "/my data/cat.db",
    ]  # fmt: skip
    assert "export AIFDATA_GROUPS='lab,ops team'" in script
    assert "#SBATCH --job-name=aifdata-stage-lab-it-s-here" in script


def test_job_names_are_made_of_safe_characters():
    assert _slurm.job_name(["stage", "genomics/run42@3"]) == "aifdata-stage-genomics-run42-3"
    assert _slurm.job_name(["prefetch", "aif://genomics/run42/"]) == (
        "aifdata-prefetch-genomics-run42"
    )


def test_sbatch_options_are_grouped_one_option_a_line():
    assert _slurm.sbatch_lines(["--time=5", "-p", "debug", "-N", "1", "--exclusive"]) == [
        ["--time=5"],
        ["-p", "debug"],
        ["-N", "1"],
        ["--exclusive"],
    ]


def test_the_job_id_is_read_from_sbatch_parsable():
    assert _slurm.parse_job_id("42\n") == 42
    assert _slurm.parse_job_id("1234;cluster-a\n") == 1234
    with pytest.raises(_slurm.SubmitError, match="not a job id"):
        _slurm.parse_job_id("Submitted batch job 42\n")


def test_sbatch_refusing_is_one_line_with_its_own_words(monkeypatch):
    stderr = (
        "sbatch: error: invalid partition specified: nonexistent\n"
        "sbatch: error: Batch job submission failed: Invalid partition name specified\n"
    )

    def refusing(argv, **kwargs):
        assert argv[1:] == ["--parsable"] and kwargs["input"].startswith("#!/bin/bash")
        return subprocess.CompletedProcess(argv, 1, "", stderr)

    monkeypatch.setattr(_slurm.subprocess, "run", refusing)
    with pytest.raises(_slurm.SubmitError) as caught:
        _slurm.submit("#!/bin/bash\ntrue\n")
    assert str(caught.value) == (
        "sbatch refused the job: invalid partition specified: nonexistent;"
        " Batch job submission failed: Invalid partition name specified"
    )


# -- the commands, with submission replaced ------------------------------------


@pytest.fixture
def lab(tmp_path, pfs_dir, monkeypatch):
    """Mount ``both`` over two directories, dataset ``lab/run1`` (two files) on the archive,
    and a fake ``sbatch`` on PATH (never run: ``submit`` records the script instead)."""
    archive = tmp_path / "archive"
    (archive / "run1").mkdir(parents=True)
    (archive / "run1" / "a.bin").write_bytes(b"a" * 100)
    (archive / "run1" / "b.bin").write_bytes(b"b" * 200)
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[mounts.both]
read_order = ["pfs", "archive"]
write_tier = "archive"
[mounts.both.pfs]
path = "{pfs_dir}"
[mounts.both.archive]
kind = "pfs"
path = "{archive}"
"""
    )
    catalog = Catalog(tmp_path / "catalog.db", config=aifdata.load_config(config))
    catalog.ingest("aif://both/run1", "lab/run1")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/sh\nexit 99\n")
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    submitted: list[str] = []

    def submit(script, sbatch_args=()):
        submitted.append(script)
        return 42

    monkeypatch.setattr(_slurm, "submit", submit)
    monkeypatch.chdir(tmp_path)
    return ["--config", str(config)], ["--catalog", str(catalog.path)], submitted


def test_stage_slurm_submits_the_same_command_and_shows_the_dependency(lab, capsys, tmp_path):
    cfg, cat, submitted = lab
    code, out, err = run(capsys, *cfg, "stage", "lab/run1", "--to", "pfs", *cat, "--slurm")
    assert code == 0, err
    assert out.splitlines() == [
        "submitted job 42: aifdata stage lab/run1 --to pfs",
        "run the next job after it: sbatch --dependency=afterok:42 train.sh",
    ]
    (script,) = submitted
    assert shlex.split(script.splitlines()[-1]) == [
        "exec", PYTHON, "-m", "aifdata", "--config", str(tmp_path / "config.toml"),
        "stage", "lab/run1", "--to", "pfs", "--catalog", str(tmp_path / "catalog.db"),
        "--workers", "8",
    ]  # fmt: skip
    assert f"export AIFDATA_HOME={os.environ['AIFDATA_HOME']}" in script
    assert f"export AIFDATA_CONFIG={tmp_path / 'config.toml'}" in script
    assert not list((tmp_path / "pfs").iterdir()), "nothing was copied here"


def test_relative_paths_become_absolute_in_the_job(lab, capsys, tmp_path):
    _, _, submitted = lab
    args = ["--config", "config.toml", "stage", "lab/run1@1", "--to", "pfs"]
    code, _, err = run(capsys, *args, "--catalog", "catalog.db", "--workers", "3", "--slurm")
    assert code == 0, err
    assert f"--catalog {tmp_path / 'catalog.db'} --workers 3" in submitted[0]
    assert f"--config {tmp_path / 'config.toml'} stage lab/run1@1 --to pfs" in submitted[0]


def test_stage_slurm_json(lab, capsys, who):
    cfg, cat, submitted = lab
    Catalog(cat[1]).grant("group:lab", "write", "lab/*")
    who("alice", "lab", "ops")
    args = [*cfg, "stage", "lab/run1", "--to", "pfs", *cat, "--slurm", "--json"]
    code, out, err = run(capsys, *args, "--", "--time=5", "--partition", "io")
    assert code == 0, err
    answer = json.loads(out)
    assert answer == {"job_id": 42, "dependency": "afterok:42", "script": submitted[0]}
    assert "#SBATCH --time=5\n#SBATCH --partition io\n" in answer["script"]
    assert "export AIFDATA_USER=alice\nexport AIFDATA_GROUPS=lab,ops\n" in answer["script"]


def test_prefetch_slurm_submits_a_prefetch(lab, capsys, tmp_path):
    cfg, cat, submitted = lab
    code, out, err = run(capsys, *cfg, "prefetch", "aif://both/run1", *cat, "--slurm")
    assert code == 0, err
    assert out.splitlines()[0] == "submitted job 42: aifdata prefetch aif://both/run1"
    assert "#SBATCH --job-name=aifdata-prefetch-both-run1" in submitted[0]
    assert "#SBATCH --output=aifdata-prefetch-%j.out" in submitted[0]
    assert (
        submitted[0]
        .splitlines()[-1]
        .endswith(f"prefetch aif://both/run1 --catalog {tmp_path / 'catalog.db'} --workers 8")
    )


def test_script_writes_the_job_script_and_submits_nothing(lab, capsys, tmp_path):
    cfg, cat, submitted = lab
    args = [*cfg, "stage", "lab/run1", "--to", "pfs", *cat]
    code, out, err = run(capsys, *args, "--script", "-", "--", "--time=5")
    assert code == 0, err
    to_stdout = out
    assert to_stdout.startswith("#!/bin/bash\n") and "#SBATCH --time=5\n" in to_stdout

    code, out, err = run(capsys, *args, "--script", "stage.sh", "--", "--time=5")
    assert code == 0, err
    assert (tmp_path / "stage.sh").read_text() == to_stdout
    assert os.access(tmp_path / "stage.sh", os.X_OK)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".stage.sh")]
    assert out.splitlines() == [
        "wrote job script stage.sh: aifdata stage lab/run1 --to pfs",
        "submit it: sbatch stage.sh; run the next job after it with --dependency=afterok:JOBID",
    ]
    code, out, _ = run(capsys, *args, "--script", "stage.sh", "--json")
    assert json.loads(out)["submit"] == "sbatch stage.sh"
    assert submitted == []
    assert not list((tmp_path / "pfs").iterdir())


def test_script_needs_no_sbatch(lab, capsys, monkeypatch, tmp_path):
    cfg, cat, _ = lab
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    code, out, err = run(capsys, *cfg, "stage", "lab/run1", "--to", "pfs", *cat, "--script", "-")
    assert code == 0, err
    assert out.startswith("#!/bin/bash\n")


def test_slurm_without_sbatch_is_a_usage_error_in_one_line(lab, capsys, monkeypatch, tmp_path):
    cfg, cat, submitted = lab
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    for command in (["stage", "lab/run1", "--to", "pfs"], ["prefetch", "lab/run1"]):
        code, out, err = run(capsys, *cfg, *command, *cat, "--slurm", "--", "--time=5")
        assert code == 2
        assert out == ""
        assert err.count("\n") == 1 and err.startswith("aifdata: error: ")
        assert "sbatch, which is not on PATH" in err and "--script FILE" in err
    assert submitted == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["lab/nope", "--to", "pfs", "--slurm"], 3, "no dataset 'lab/nope'"),
        (["lab/run1@7", "--to", "pfs", "--slurm"], 3, "has no version 7"),
        (["lab/run1", "--to", "tape", "--slurm"], 3, "no tier 'tape'"),
        (["lab/run1", "--to", "tape", "--script", "x.sh"], 3, "no tier 'tape'"),
        (["lab/run1", "--to", "pfs", "--", "--time=5"], 2, "unexpected extra argument"),
        (["lab/run1", "--to", "pfs", "--slurm", "--script", "x.sh"], 2, "not both"),
        (["lab/run1", "--to", "pfs", "--slurm", "--", "debug"], 2, "not an sbatch option"),
        (["lab/run1", "--to", "pfs", "--time=5", "--slurm"], 2, "No such option: --time"),
    ],
)
def test_mistakes_fail_here_before_anything_is_submitted(
    lab, capsys, tmp_path, args, code, message
):
    cfg, cat, submitted = lab
    got, _, err = run(capsys, *cfg, "stage", *cat, *args)
    assert got == code, err
    assert message in err and err.count("\n") == 1
    assert submitted == [] and not (tmp_path / "x.sh").exists()


def test_prefetch_of_an_unknown_dataset_is_refused_before_submitting(lab, capsys):
    cfg, cat, submitted = lab
    code, _, err = run(capsys, *cfg, "prefetch", "lab/nope", *cat, "--slurm")
    assert code == 3 and "lab/nope" in err
    assert submitted == []


# -- on the session's Slurm cluster ---------------------------------------------

#: Job states after which a job never runs again (``scontrol show job``).
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"}


def job_state(job_id: int) -> str:
    shown = subprocess.run(
        ["scontrol", "show", "job", str(job_id)], capture_output=True, text=True, check=True
    )
    found = re.search(r"JobState=(\w+)", shown.stdout)
    assert found, shown.stdout
    return found.group(1)


def wait_for(job_id: int, timeout: float = 180.0) -> str:
    """The final state of job ``job_id`` (polled; fails the test after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while (state := job_state(job_id)) not in FINAL:
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} still {state} after {timeout:.0f} s")
        time.sleep(0.5)
    return state


def sbatch(*args: str, cwd: Path) -> int:
    done = subprocess.run(
        ["sbatch", "--parsable", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().split(";")[0])


#: The training job: where the staged file is served from, and its bytes.
TRAIN = (
    "import aifdata; fs = aifdata.filesystem(); url = 'aif://genomics/run42/reads.fastq';"
    " print('served from', fs.where(url).tier, fs.cat(url).splitlines()[1].decode())"
)


@pytest.fixture
def genomics(seaweedfs, bucket, pfs_dir, tmp_path, isolated_home, monkeypatch):
    """Dataset ``genomics/run42`` on S3 under mount ``genomics`` (PFS read first), recorded in
    ``$AIFDATA_HOME/catalog.db``; the mount table in ``$AIFDATA_CONFIG`` (jobs inherit both)."""
    config = tmp_path / "config.toml"
    config.write_text(two_tier_toml(seaweedfs, f"s3://{bucket}/lake", pfs_dir, "genomics"))
    monkeypatch.setenv("AIFDATA_CONFIG", str(config))
    aifdata.AifFileSystem.clear_instance_cache()
    fs = aifdata.filesystem(str(config), catalog=False)
    fs.pipe("genomics/run42/reads.fastq", b"@r1\nACGT\n+\nIIII\n")
    fs.pipe("genomics/run42/more.fastq", b"@r2\nTTGA\n+\nIIII\n")
    catalog = Catalog(isolated_home / "catalog.db", config=fs.config)
    catalog.ingest("aif://genomics/run42", "genomics/run42")
    assert aifdata.filesystem().where("aif://genomics/run42/reads.fastq").tier == "s3"
    work = tmp_path / "work"
    work.mkdir()
    return config, catalog, fs, work


def aifdata_cli(config: Path, catalog: Catalog, command: str, name: str, *args: str, cwd: Path):
    """``aifdata --config CONFIG COMMAND NAME --catalog CATALOG ARGS...`` run as a process."""
    argv = [PYTHON, "-m", "aifdata", "--config", str(config), command, name]
    argv += ["--catalog", str(catalog.path), *args]
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=120)


def tiers_of(catalog: Catalog, path: str = "reads.fastq") -> set[str]:
    """The tiers the catalog records a copy of ``path`` of ``genomics/run42`` on."""
    (record,) = [f for f in catalog.dataset("genomics/run42").files if f.path == path]
    return {tier for tier, _ in record.replicas}


def test_a_training_job_after_the_stage_job_reads_the_pfs_copy(slurm, genomics, pfs_dir):
    config, catalog, _, work = genomics
    args = ("stage", "genomics/run42", "--to", "pfs", "--slurm", "--json", "--", "--time=5")
    done = aifdata_cli(config, catalog, *args, cwd=work)
    assert done.returncode == 0, done.stderr
    job_id = json.loads(done.stdout)["job_id"]
    train = sbatch(
        f"--dependency=afterok:{job_id}",
        f"--output={work / 'train.out'}",
        "--wrap",
        shlex.join([PYTHON, "-c", TRAIN]),
        cwd=work,
    )
    assert wait_for(job_id) == "COMPLETED", (work / f"aifdata-stage-{job_id}.out").read_text()
    assert wait_for(train) == "COMPLETED", (work / "train.out").read_text()
    assert (work / "train.out").read_text() == "served from pfs ACGT\n"
    stage_log = (work / f"aifdata-stage-{job_id}.out").read_text()
    assert "genomics/run42 -> pfs: 2 copied" in stage_log
    assert (pfs_dir / "run42" / "reads.fastq").read_bytes() == b"@r1\nACGT\n+\nIIII\n"
    assert tiers_of(catalog) == {"s3", "pfs"}


def test_a_failed_stage_job_cancels_the_training_job(slurm, genomics, pfs_dir):
    config, catalog, fs, work = genomics
    fs.pipe("genomics/run42/reads.fastq", b"@r1\nACGA\n+\nIIII\n")  # S3 changed behind the catalog
    done = aifdata_cli(
        config, catalog, "stage", "genomics/run42", "--to", "pfs", "--slurm", cwd=work
    )
    assert done.returncode == 0, done.stderr
    job_id = int(re.match(r"submitted job (\d+): ", done.stdout).group(1))
    assert f"--dependency=afterok:{job_id}" in done.stdout
    train_out = work / "train.out"
    train = sbatch(
        f"--dependency=afterok:{job_id}", f"--output={train_out}", "--wrap", "true", cwd=work
    )
    assert wait_for(job_id) == "FAILED"
    assert "differs from the catalog" in (work / f"aifdata-stage-{job_id}.out").read_text()
    assert wait_for(train) == "CANCELLED"
    assert not train_out.exists(), "the training job ran"
    assert tiers_of(catalog) == {"s3"}


def test_a_written_script_runs_under_sbatch(slurm, genomics, pfs_dir):
    config, catalog, _, work = genomics
    args = ("stage", "genomics/run42", "--to", "pfs", "--script", "stage.sh", "--", "--time=5")
    done = aifdata_cli(config, catalog, *args, cwd=work)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].startswith("submit it: sbatch stage.sh")
    job_id = sbatch("stage.sh", cwd=work)
    assert wait_for(job_id) == "COMPLETED", (work / f"aifdata-stage-{job_id}.out").read_text()
    assert tiers_of(catalog) == {"s3", "pfs"}
    assert fs_tier(config) == "pfs"


def fs_tier(config: Path) -> str:
    aifdata.AifFileSystem.clear_instance_cache()
    return aifdata.filesystem(str(config)).where("aif://genomics/run42/reads.fastq").tier


def test_sbatch_refusing_an_option_submits_nothing(slurm, genomics):
    config, catalog, _, work = genomics
    before = stage_jobs()
    args = ("stage", "genomics/run42", "--to", "pfs", "--slurm", "--", "--partition=nonexistent")
    done = aifdata_cli(config, catalog, *args, cwd=work)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("aifdata: error: sbatch refused the job: ")
    assert "nonexistent" in done.stderr and "Invalid partition" in done.stderr
    assert stage_jobs() == before


def stage_jobs() -> list[str]:
    """The ids of the jobs named ``aifdata-stage-genomics-run42`` that Slurm still knows."""
    queued = subprocess.run(
        ["squeue", "-h", "-t", "all", "-n", "aifdata-stage-genomics-run42", "-o", "%i"],
        capture_output=True,
        text=True,
        check=True,
    )
    return queued.stdout.split()
