"""`prn-prep build` and `augment` on a full disk and on a read-only folder: one line, nothing partial, a clean rerun.

The disk is a small tmpfs (mounting needs root; the tests skip without it);
runs are real `prn-prep` processes, in-process (--workers 1) and on Dask
workers (--workers 2).
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import synthetic_shards

from prn.pipeline.shards import file_checksum, read_record
from prn.pipeline.verify import verify_shards

TIMEOUT = 240
SAMPLES = 4


@pytest.fixture(scope="module")
def data(tmp_path_factory, small_model_dir):
    """(raw 300W-LP folder, its shards) of 4 synthetic samples."""
    root = tmp_path_factory.mktemp("disk-data")
    shards = synthetic_shards(root, small_model_dir, SAMPLES, image_size=120, shard_size=1)
    return root / "raw-0", shards


def mount(folder, options):
    """Mount (or remount) a tmpfs at folder; skip the test when that is not allowed here."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def disk(tmp_path):
    """A folder for a tmpfs, unmounted after the test."""
    folder = tmp_path / "disk"
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def prn_prep(*args):
    beside = Path(sys.executable).with_name("prn-prep")
    command = [str(beside) if beside.is_file() else "prn-prep", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)


def stage_args(stage, data, face_model_dir, out, workers):
    raw, shards = data
    source = ["build", "--src", raw] if stage == "build" else ["augment", "--src", shards, "--yaw", "0"]
    return [*source, "--model", face_model_dir, "--out", out, "--shard-size", "1", "--workers", workers]


def contents(folder):
    return {path.name: path.read_bytes() for path in sorted(Path(folder).iterdir())}


def assert_only_finished_shards(out):
    """Nothing but whole shards, each with its record: no temporaries, no lock, no half-written file."""
    names = sorted(path.name for path in out.iterdir())
    shards = [name for name in names if re.fullmatch(r"shard-\d{5}\.h5", name)]
    assert names == sorted(shards + [f"{name}.json" for name in shards]), names
    for name in shards:
        assert read_record(out, name)["checksum"] == file_checksum(out / name)
    return shards


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("stage", ["build", "augment"])
def test_a_full_disk_is_one_line_and_a_rerun_with_space_gives_the_same_bytes(tmp_path, disk, data, small_model_dir,
                                                                               stage, workers):
    reference = tmp_path / "reference"
    assert prn_prep(*stage_args(stage, data, small_model_dir, reference, 1)).returncode == 0
    mount(disk, "size=1m")  # room for one shard of about 0.6 MB
    out = disk / "out"
    full = prn_prep(*stage_args(stage, data, small_model_dir, out, workers))
    assert full.returncode == 1, full.stderr
    errors = [line for line in full.stderr.splitlines() if not line.startswith("dask dashboard: ")]
    assert len(errors) == 1 and re.fullmatch(rf"Error: {re.escape(str(out))}/shard-\d{{5}}\.h5(\.json)?: "
                                             r"No space left on device", errors[0]), full.stderr
    assert len(assert_only_finished_shards(out)) < SAMPLES
    mount(disk, "remount,size=64m")
    again = prn_prep(*stage_args(stage, data, small_model_dir, out, workers))
    assert again.returncode == 0, again.stderr
    assert contents(out) == contents(reference)
    assert verify_shards(out) == []


@pytest.mark.parametrize("stage", ["build", "augment"])
def test_a_read_only_folder_is_one_line_and_stays_as_it_was(tmp_path, disk, data, small_model_dir, stage):
    workers = 2  # the run stops before any worker starts
    mount(disk, "size=64m")
    out = disk / "out"
    assert prn_prep(*stage_args(stage, data, small_model_dir, out, 1)).returncode == 0
    (out / "shard-00001.h5").unlink()  # a shard to redo
    before = contents(out)
    mount(disk, "remount,ro")
    for target, named in ((out, out / ".prn-prep.lock"), (out / "new", out / "new")):
        result = prn_prep(*stage_args(stage, data, small_model_dir, target, workers))
        assert result.returncode == 1, result.stderr
        assert result.stderr.splitlines() == [f"Error: {named}: Read-only file system"]
    assert contents(out) == before
    mount(disk, "remount,rw")
    assert prn_prep(*stage_args(stage, data, small_model_dir, out, workers)).returncode == 0
    assert verify_shards(out) == []
