"""One run per output folder: a second run stops naming the holder; a killed run's lock is taken over."""

import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import synthetic_shards

from prn.cli.prep import main
from prn.pipeline.lock import LOCK_FILE, output_lock
from prn.pipeline.verify import verify_shards
from prn.rendering.util.errors import InputError

TIMEOUT = 240
HOLD = """
import sys
from prn.pipeline.lock import output_lock
with output_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory, small_model_dir):
    """(raw 300W-LP folder, its shards) of 8 synthetic samples."""
    root = tmp_path_factory.mktemp("lock-data")
    shards = synthetic_shards(root, small_model_dir, 8, image_size=120, shard_size=4)
    return root / "raw-0", shards


def prn_prep():
    beside = Path(sys.executable).with_name("prn-prep")
    return str(beside) if beside.is_file() else "prn-prep"


def hold(folder):
    """A process that holds the lock of `folder` until its stdin closes."""
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "locked\n"
    return process


def release(process):
    process.stdin.close()
    assert process.wait(timeout=TIMEOUT) == 0


def stage_command(stage, data, face_model_dir, out):
    raw, shards = data
    common = ["--model", str(face_model_dir), "--out", str(out), "--workers", "1"]
    return {
        "build": ["build", "--src", str(raw), "--shard-size", "4"],
        "augment": ["augment", "--src", str(shards), "--yaw", "0:10:10"],
        "synth": ["synth", "--layout", "300w-lp", "--count", "2", "--image-size", "120"],
        "fit": ["fit", "--src", str(raw / "300W_LP" / "AFW")],
    }[stage] + common


def test_a_second_build_into_a_folder_in_use_stops_naming_the_holder(tmp_path, data, small_model_dir):
    out = tmp_path / "out"
    holder = hold(out)
    try:
        second = subprocess.run([prn_prep(), *stage_command("build", data, small_model_dir, out)],
                                capture_output=True, text=True, timeout=TIMEOUT)
        assert second.returncode == 1, second.stderr
        assert second.stderr.splitlines() == [
            f"Error: {out}: in use by another run (pid {holder.pid} on host {socket.gethostname()}); "
            "wait for it to finish or choose another output folder"]
        assert sorted(path.name for path in out.iterdir()) == [LOCK_FILE]
    finally:
        release(holder)
    assert not (out / LOCK_FILE).exists()
    after = subprocess.run([prn_prep(), *stage_command("build", data, small_model_dir, out)], capture_output=True,
                           text=True, timeout=TIMEOUT)
    assert after.returncode == 0, after.stderr
    assert verify_shards(out) == [] and not (out / LOCK_FILE).exists()


@pytest.mark.parametrize("stage", ["augment", "synth", "fit"])
def test_every_stage_refuses_a_folder_in_use_and_leaves_it_untouched(tmp_path, data, small_model_dir, stage):
    out = tmp_path / "out"
    holder = hold(out)
    try:
        result = CliRunner().invoke(main, stage_command(stage, data, small_model_dir, out))
        assert result.exit_code == 1, result.output
        assert result.output.splitlines() == [
            f"Error: {out}: in use by another run (pid {holder.pid} on host {socket.gethostname()}); "
            "wait for it to finish or choose another output folder"]
        assert sorted(path.name for path in out.iterdir()) == [LOCK_FILE]
    finally:
        release(holder)


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path, data, small_model_dir):
    out = tmp_path / "out"
    holder = hold(out)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=TIMEOUT)
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == holder.pid  # left behind, naming a dead process
    result = subprocess.run([prn_prep(), *stage_command("build", data, small_model_dir, out)], capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert verify_shards(out) == [] and not (out / LOCK_FILE).exists()


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with output_lock(tmp_path), output_lock(tmp_path):
        assert json.loads((tmp_path / LOCK_FILE).read_text()) == {"pid": os.getpid(), "host": socket.gethostname()}
    assert list(tmp_path.iterdir()) == []


def test_without_flock_a_live_holder_on_this_host_blocks_and_a_dead_one_does_not(tmp_path, monkeypatch):
    def no_flock(descriptor, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_flock)
    sleeper = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        with pytest.raises(InputError, match=f"in use by another run \\(pid {sleeper.pid} on host "), \
                output_lock(tmp_path):
            pass
    finally:
        sleeper.stdin.close()
        sleeper.wait(timeout=TIMEOUT)
    with output_lock(tmp_path):  # the holder is gone now
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert list(tmp_path.iterdir()) == []
