"""`prn-prep build` spread out: a real Dask scheduler and workers, kill -9 and resume, SLURM job scripts.

Every run must end with the same shard bytes as a plain in-process run.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import psutil
import pytest
from click.testing import CliRunner

from prn.cli.prep import main
from prn.pipeline.build import BuildSettings, build
from prn.pipeline.stage import Cluster
from prn.pipeline.synthetic.synth import SynthSettings, synthesize

SAMPLES = 48
TIMEOUT = 240  # seconds for anything that waits on other processes; generous for a slow 2-core machine


@pytest.fixture(scope="module")
def source(tmp_path_factory, small_model_dir):
    folder = tmp_path_factory.mktemp("src")
    synthesize(SynthSettings(face_model_dir=small_model_dir, out_dir=folder, layout="300w-lp", image_size=160), SAMPLES,
               progress=False)
    return folder


def local_build(face_model_dir, src, out, shard_size, **options):
    settings = BuildSettings(face_model_dir=face_model_dir, out_dir=out, layout="300w-lp", shard_size=shard_size)
    return build(settings, src, progress=False, **options)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_model_dir, source):
    """In-process builds (--workers 1) with 8 and 4 samples per shard."""
    folders = {}
    for size in (8, 4):
        folders[size] = tmp_path_factory.mktemp(f"reference{size}")
        local_build(small_model_dir, source, folders[size], size, workers=1)
    return folders


def shard_bytes(folder):
    return {path.name: path.read_bytes() for path in sorted(Path(folder).glob("*.h5"))}


def different_shards(folder, reference):
    """{shard: datasets that differ (or 'bytes')} for the shards whose bytes differ from the reference's."""
    ours, theirs = shard_bytes(folder), shard_bytes(reference)
    assert sorted(ours) == sorted(theirs)
    different = {}
    for name in ours:
        if ours[name] != theirs[name]:
            with h5py.File(Path(folder) / name, "r") as a, h5py.File(Path(reference) / name, "r") as b:
                different[name] = [key for key in b if key not in a or not np.array_equal(a[key][:], b[key][:])
                                   ] or "bytes"
    return different


def shard_names(folder):
    names = {}
    for path in sorted(Path(folder).glob("shard-*.h5")):
        with h5py.File(path, "r") as handle:
            names[path.name] = [name.decode() for name in handle["name"][:]]
    return names


def manifest(folder):
    return json.loads((Path(folder) / "manifest.json").read_text())


def temporaries(folder):
    return [path for path in Path(folder).rglob("*") if path.name.endswith(".tmp")]


def stop(processes):
    """SIGKILL what is left of our own processes (and their children), then reap them."""
    family = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            family += [psutil.Process(process.pid)] + psutil.Process(process.pid).children(recursive=True)
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(family, timeout=30)
    for process in processes:
        process.wait(timeout=30)


# ---------------------------------------------------------------------------
# A real scheduler and two workers on 127.0.0.1


@pytest.fixture
def dask_scheduler(tmp_path):
    """`dask scheduler` plus two single-threaded `dask worker` processes; yields the scheduler address."""
    from dask.distributed import Client

    scheduler_file = tmp_path / "scheduler.json"
    # open for the processes' lifetime, closed in the finally block below
    logs = [open(tmp_path / f"{name}.log", "w") for name in ("scheduler", "worker0", "worker1")]  # noqa: SIM115
    python = [sys.executable, "-m"]
    processes = [subprocess.Popen(
        python + ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                  "--scheduler-file", str(scheduler_file)], stdout=logs[0], stderr=subprocess.STDOUT,
        cwd=tmp_path)]
    try:
        deadline = time.monotonic() + TIMEOUT
        while not scheduler_file.is_file() and time.monotonic() < deadline:
            assert processes[0].poll() is None, (tmp_path / "scheduler.log").read_text()
            time.sleep(0.1)
        time.sleep(0.2)  # the file is written in one go, but give it a moment to be complete
        address = json.loads(scheduler_file.read_text())["address"]
        for log in logs[1:]:
            processes.append(subprocess.Popen(
                python + ["distributed.cli.dask_worker", address, "--nthreads", "1", "--nworkers", "1",
                          "--host", "127.0.0.1", "--no-dashboard"], stdout=log, stderr=subprocess.STDOUT,
                cwd=tmp_path))
        with Client(address, timeout=TIMEOUT) as client:
            client.wait_for_workers(2, timeout=TIMEOUT)
            assert all(info["nthreads"] == 1 for info in client.scheduler_info()["workers"].values())
        yield address
    finally:
        stop(processes)
        for log in logs:
            log.close()


def test_build_on_a_running_scheduler_gives_the_local_bytes(tmp_path, small_model_dir, source, reference,
                                                             dask_scheduler, capfd):
    capfd.readouterr()
    out = tmp_path / "distributed"
    summary = local_build(small_model_dir, source, out, 8, scheduler=dask_scheduler)
    assert summary.written == SAMPLES and not summary.rejects
    local = shard_bytes(reference[8])
    assert len(local) == SAMPLES // 8
    assert shard_bytes(out) == local
    assert ([shard["checksum"] for shard in manifest(out)["shards"]]
            == [shard["checksum"] for shard in manifest(reference[8])["shards"]])
    dashboard = [line for line in capfd.readouterr().err.splitlines() if line.startswith("dask dashboard:")]
    # the scheduler was started with --no-dashboard: one line that says so
    assert len(dashboard) == 1 and "not available" in dashboard[0]


def test_in_process_run_prints_no_dashboard(tmp_path, small_model_dir, source, capfd):
    capfd.readouterr()
    local_build(small_model_dir, source, tmp_path / "out", 8, workers=1)
    assert "dask dashboard" not in capfd.readouterr().err


# ---------------------------------------------------------------------------
# Dask's log lines stay out of the terminal


NOISY_RUN = """
import logging
import sys

from prn.pipeline.stage import ChunkResult, run_chunks


def noisy(task, failing):
    # what Dask's own loggers say in a worker: a heartbeat that met a closed comm, a comm warning
    logging.getLogger("distributed.worker").error("Failed to communicate with scheduler during heartbeat.")
    logging.getLogger("distributed.core").warning("Lost connection")
    if task == [failing]:
        raise OSError(28, "No space left on device", "out/shard-00002.h5")
    return ChunkResult(written=list(task))


if __name__ == "__main__":
    try:
        summary = run_chunks(noisy, [[1], [2], [3], [4]], int(sys.argv[2]), sys.argv[1], workers=2, progress=False)
    except OSError as error:
        print(f"failed: {error.filename}: {error.strerror}")
    else:
        print(summary.line("noisy"))
"""


@pytest.mark.parametrize("failing, outcome", [(0, "noisy: 4 written, 0 already done, 0 rejected"),
                                              (3, "failed: out/shard-00002.h5: No space left on device")])
def test_worker_and_scheduler_logs_stay_out_of_the_terminal(tmp_path, failing, outcome):
    script = tmp_path / "noisy.py"
    script.write_text(NOISY_RUN)
    (tmp_path / "out").mkdir()
    run = subprocess.run([sys.executable, str(script), str(tmp_path / "out"), str(failing)], capture_output=True,
                         text=True, timeout=TIMEOUT, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [outcome]
    assert [line for line in run.stderr.splitlines() if not line.startswith("dask dashboard: ")] == []
    assert not temporaries(tmp_path / "out")


# ---------------------------------------------------------------------------
# kill -9 in the middle, then the same command again


def prn_prep():
    """The prn-prep script of the interpreter running the tests (PATH may not have it)."""
    beside = Path(sys.executable).with_name("prn-prep")
    return str(beside) if beside.is_file() else shutil.which("prn-prep") or "prn-prep"


def build_command(face_model_dir, src, out):
    return [prn_prep(), "build", "--src", str(src), "--model", str(face_model_dir), "--out", str(out),
            "--workers", "2", "--shard-size", "4"]


def finished_shards(out):
    """Shards with their record: the ones a rerun skips."""
    return sorted(path.name for path in Path(out).glob("shard-*.h5") if Path(f"{path}.json").is_file())


@pytest.mark.parametrize("victim", ["client", "worker"])
def test_killed_build_resumes_to_the_same_shards(tmp_path, small_model_dir, source, reference, victim):
    out = tmp_path / "out"
    command = build_command(small_model_dir, source, out)
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while run.poll() is None and time.monotonic() < deadline:
            if out.is_dir() and any(entry.name.startswith("shard-") and entry.name.endswith(".h5")
                                    for entry in os.scandir(out)):
                break
            time.sleep(0.002)
        assert run.poll() is None, f"the build ended before a shard appeared: {run.communicate()}"
        family = psutil.Process(run.pid).children(recursive=True)
        workers = [child for child in family if "spawn_main" in " ".join(child.cmdline())]
        assert len(workers) == 2, [child.cmdline() for child in family]
        if victim == "client":
            os.kill(run.pid, signal.SIGKILL)
            run.communicate(timeout=TIMEOUT)
            # orphaned workers notice their parent's death and exit; a slow one is killed here
            _, alive = psutil.wait_procs(family, timeout=60)
            assert not alive, "worker processes outlived their client"
            assert run.returncode == -signal.SIGKILL
        else:
            os.kill(workers[0].pid, signal.SIGKILL)
            run.communicate(timeout=TIMEOUT)  # Dask may retry the task on a restarted worker and finish
    finally:
        stop([run])
    done = finished_shards(out)
    if victim == "client":
        assert len(done) < SAMPLES // 4, "killed too late: every shard was already written"
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, start_new_session=True)
    assert rerun.returncode == 0, rerun.stderr
    line = re.search(r"(\d+) written, (\d+) already done, (\d+) rejected", rerun.stdout)
    assert line and int(line[2]) == 4 * len(done) and int(line[1]) == SAMPLES - 4 * len(done), rerun.stdout
    assert different_shards(out, reference[4]) == {}, f"finished before the kill: {done}"
    assert shard_names(out) == shard_names(reference[4])
    assert not temporaries(out)
    listed = manifest(out)
    assert listed["inputs"]["samples"] == SAMPLES and listed["samples"] == SAMPLES
    assert [shard["checksum"] for shard in listed["shards"]] == [
        shard["checksum"] for shard in manifest(reference[4])["shards"]]
    names = [name for shard in shard_names(out).values() for name in shard]
    assert len(names) == len(set(names)) == SAMPLES and names == sorted(names)


# ---------------------------------------------------------------------------
# SLURM job script, option conflicts, --strict


def test_slurm_dry_run_prints_the_job_script(tmp_path, small_model_dir, source):
    pytest.importorskip("dask_jobqueue")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "build", "--src", str(source), "--model", str(small_model_dir), "--out", str(out),
        "--cluster", "slurm", "--jobs", "3", "--cores", "4", "--memory", "6GiB", "--queue", "short",
        "--walltime", "00:20:00", "--dry-run"])
    assert result.exit_code == 0, result.output
    script = result.stdout
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --cpus-per-task=4" in directives
    assert "#SBATCH --mem=6G" in directives
    assert "#SBATCH -p short" in directives
    assert "#SBATCH -t 00:20:00" in directives
    assert "export OMP_NUM_THREADS=1" in script
    assert "--nthreads 1" in script and "--nworkers 4" in script
    assert not out.exists()  # nothing ran


FAKE_SBATCH = """#!/bin/bash
# Stands in for SLURM's sbatch: runs the job script (its last argument) on this machine, detached.
set -e
id=$$
cp "${@: -1}" "$FAKE_SLURM_DIR/job-$id.sh"
setsid bash "$FAKE_SLURM_DIR/job-$id.sh" > "$FAKE_SLURM_DIR/job-$id.log" 2>&1 < /dev/null &
echo $! > "$FAKE_SLURM_DIR/job-$id.pid"
echo "Submitted batch job $id"
"""

FAKE_SCANCEL = """#!/bin/bash
# Stands in for SLURM's scancel: kills the job's process group.
for id in "$@"; do kill -TERM -- "-$(cat "$FAKE_SLURM_DIR/job-$id.pid")" 2>/dev/null || true; done
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """sbatch / scancel on PATH that run the batch jobs as local processes; yields the jobs' folder."""
    bin_dir, jobs = tmp_path / "bin", tmp_path / "jobs"
    bin_dir.mkdir()
    jobs.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("scancel", FAKE_SCANCEL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(jobs))
    try:
        yield jobs
    finally:
        for pid_file in jobs.glob("*.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)


def test_slurm_cluster_runs_the_build_through_its_job_script(tmp_path, small_model_dir, source, reference,
                                                              fake_slurm, capfd):
    pytest.importorskip("dask_jobqueue")
    capfd.readouterr()
    out = tmp_path / "out"
    summary = local_build(small_model_dir, source, out, 8,
                          scheduler=Cluster("slurm", jobs=1, cores=2, memory="2GiB", walltime="00:05:00"))
    assert summary.written == SAMPLES
    assert shard_bytes(out) == shard_bytes(reference[8])
    scripts = sorted(fake_slurm.glob("job-*.sh"))
    assert len(scripts) == 1
    assert "export OMP_NUM_THREADS=1" in scripts[0].read_text()
    err = capfd.readouterr().err
    assert "dask: 1 slurm job(s) of 2 worker(s) submitted" in err and "dask dashboard: " in err


def test_cluster_without_dask_jobqueue_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # import fails as if not installed
    result = CliRunner().invoke(main, ["build", "--src", str(tmp_path), "--out", str(tmp_path / "o"), "--cluster",
                                       "slurm", "--jobs", "1", "--cores", "1", "--memory", "1GiB", "--dry-run"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: --cluster slurm needs dask-jobqueue: pip install 'prn-toolkit[slurm]'"]


@pytest.mark.parametrize("options, message", [
    (["--cluster", "slurm", "--jobs", "1", "--cores", "1", "--memory", "1GiB", "--scheduler", "tcp://a:1"],
     "--cluster and --scheduler are mutually exclusive"),
    (["--cluster", "slurm", "--jobs", "1", "--cores", "1", "--memory", "1GiB", "--workers", "2"],
     "--cluster and --workers are mutually exclusive"),
    (["--cluster", "slurm", "--jobs", "2"], "--cluster slurm needs --cores, --memory"),
    (["--jobs", "2"], "--jobs needs --cluster"),
    (["--dry-run"], "--dry-run needs --cluster"),
])
def test_conflicting_options_are_one_line(tmp_path, options, message):
    result = CliRunner().invoke(main, ["build", "--src", str(tmp_path), "--out", str(tmp_path / "o"), *options])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"Error: {message}"]


def test_strict_exits_3_on_a_rejected_sample(tmp_path, small_model_dir, source):
    src = tmp_path / "src"
    shutil.copytree(source, src)
    victim = sorted(src.rglob("*.jpg"))[5]
    victim.write_bytes(b"\xff\xd8\xff\xe0 not a JPEG after all")
    common = ["build", "--src", str(src), "--model", str(small_model_dir), "--shard-size", "8", "--workers", "1"]
    strict = CliRunner().invoke(main, common + ["--out", str(tmp_path / "strict"), "--strict"])
    assert strict.exit_code == 3, strict.output
    assert "1 rejected" in strict.stdout
    lenient = CliRunner().invoke(main, common + ["--out", str(tmp_path / "lenient")])
    assert lenient.exit_code == 0, lenient.output
    rejects = manifest(tmp_path / "lenient")["rejects"]
    assert len(rejects) == 1 and victim.stem in rejects[0]["sample"]


def test_only_this_tools_stale_temporaries_are_removed(tmp_path):
    """A dead process's temporary of atomic_path goes; a user's file named alike, or a live writer's, stays."""
    from prn.pipeline.stage import remove_stale_temporaries
    from prn.rendering.util.atomic import atomic_path

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / "sub").mkdir()
    ours = tmp_path / "sub" / f".shard-00001.h5.{pid}.0123abcd.prn.tmp"
    users = [tmp_path / f".notes.txt.{pid}.0123abcd.tmp", tmp_path / "sub" / f".data.{pid}.89abcdef.tmp"]
    for path in [ours, *users]:
        path.write_text("partial")
    with atomic_path(tmp_path / "live.json") as live:
        live.write_text("being written")
        assert live.name.endswith(".prn.tmp")
        assert remove_stale_temporaries(tmp_path) == [ours]
        assert live.exists()
    assert all(path.read_text() == "partial" for path in users) and not ours.exists()
