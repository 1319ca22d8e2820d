"""`prn-prep verify` / `inspect`: problems found one line each, counts, the sample grid."""

import hashlib
import json
import shutil
import subprocess

import cv2
import h5py
import numpy as np
import pytest
import xxhash
from click.testing import CliRunner

from prn.cli.prep import main
from prn.pipeline.build import BuildSettings, build
from prn.pipeline.inspect import draw_grid, format_summary, grid_size, summarize_shards
from prn.pipeline.synthetic.synth import SynthSettings, synthesize
from prn.pipeline.verify import verify_shards

COUNT = 20
SHARD_SIZE = 8


@pytest.fixture(scope="module")
def built(tmp_path_factory, small_model_dir):
    """A 20-sample 300W-LP build in three shards (8, 8, 4), made once; tests work on copies."""
    root = tmp_path_factory.mktemp("inspect")
    synthesize(SynthSettings(face_model_dir=small_model_dir, out_dir=root / "src", layout="300w-lp", seed=0,
                             image_size=160), COUNT, workers=1, progress=False)
    settings = BuildSettings(face_model_dir=small_model_dir, out_dir=root / "shards", layout="300w-lp",
                             shard_size=SHARD_SIZE)
    build(settings, root / "src", workers=1, progress=False)
    return root / "shards"


@pytest.fixture
def shards(built, tmp_path):
    copy = tmp_path / "shards"
    shutil.copytree(built, copy)
    return copy


def only_problem_names(problems, file):
    """Every problem is one line, and at least one names the file."""
    assert problems and all("\n" not in line for line in problems), problems
    assert any(file in line for line in problems), problems


def test_fresh_build_verifies(shards):
    assert verify_shards(shards) == []
    assert sorted(p.name for p in shards.glob("shard-*.h5")) == ["shard-00000.h5", "shard-00001.h5",
                                                                "shard-00002.h5"]


def test_flipped_byte_is_reported(shards):
    path = shards / "shard-00001.h5"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = verify_shards(shards)
    only_problem_names(problems, "shard-00001.h5")
    assert any("checksum" in line and "shard-00001.h5" in line for line in problems)
    assert not any("shard-00000.h5" in line or "shard-00002.h5" in line for line in problems)


def as_schema_version_1(shards):
    """Rewrite a fresh folder as schema version 1 wrote it: version 1 in the files, sha256 checksums."""
    manifest = json.loads((shards / "manifest.json").read_text())
    manifest["schema_version"] = 1
    for entry in manifest["shards"]:
        with h5py.File(shards / entry["file"], "r+") as handle:
            handle.attrs["schema_version"] = 1
        del entry["checksum"]
        entry["sha256"] = hashlib.sha256((shards / entry["file"]).read_bytes()).hexdigest()
        entry["bytes"] = (shards / entry["file"]).stat().st_size
    (shards / "manifest.json").write_text(json.dumps(manifest))


def test_manifest_checksums_are_xxh3_128(shards):
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["schema_version"] == 2
    for entry in manifest["shards"]:
        assert entry["checksum"] == "xxh3_128:" + xxhash.xxh3_128((shards / entry["file"]).read_bytes()).hexdigest()


def test_schema_version_1_folders_still_verify(shards):
    as_schema_version_1(shards)
    assert verify_shards(shards) == []
    path = shards / "shard-00002.h5"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = verify_shards(shards)
    assert any("checksum" in line and "shard-00002.h5" in line for line in problems)


def test_unknown_schema_version_is_reported(shards):
    manifest = json.loads((shards / "manifest.json").read_text())
    manifest["schema_version"] = 7
    (shards / "manifest.json").write_text(json.dumps(manifest))
    problems = verify_shards(shards)
    assert any("schema_version 7" in line for line in problems)


def test_truncated_shard_is_reported(shards):
    path = shards / "shard-00000.h5"
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])
    problems = verify_shards(shards)
    only_problem_names(problems, "shard-00000.h5")
    assert any("bytes" in line for line in problems)


def test_deleted_shard_is_reported(shards):
    (shards / "shard-00002.h5").unlink()
    problems = verify_shards(shards)
    assert len(problems) == 1 and "shard-00002.h5" in problems[0] and "missing" in problems[0]


def test_wrong_dtype_is_reported(shards):
    path = shards / "shard-00000.h5"
    with h5py.File(path, "a") as handle:
        kpt = handle["kpt68"][()]
        del handle["kpt68"]
        handle.create_dataset("kpt68", data=kpt.astype(np.float64))
    problems = verify_shards(shards)
    only_problem_names(problems, "shard-00000.h5")
    assert any("'kpt68'" in line and "float64" in line and "shard-00000.h5" in line for line in problems)


def test_schema_problems_are_reported(shards):
    with h5py.File(shards / "shard-00001.h5", "a") as handle:
        del handle["tform"]
        handle.attrs["schema_version"] = 99
        handle.attrs["model_fingerprint"] = "0" * 64
    with h5py.File(shards / "shard-00002.h5", "a") as handle:
        names = handle["name"].asstr()[()]
        del handle["name"]
        names[0] = "AFW/AFW_synth_000000_0"            # also in shard-00000.h5
        handle.create_dataset("name", data=np.array(names, object), dtype=h5py.string_dtype("utf-8"))
        handle.create_dataset("pt3d_68", data=np.zeros((len(names), 68, 3), np.float32))
    (shards / ".shard-00003.h5.123.abcd.tmp").write_bytes(b"partial")
    text = "\n".join(verify_shards(shards))
    for expected in ("shard-00001.h5: dataset 'tform' missing", "shard-00001.h5: schema_version 99",
                     "shard-00001.h5: model_fingerprint", "shard-00002.h5: sample name 'AFW/AFW_synth_000000_0'",
                     "shard-00002.h5: has unexpected pt3d_68", ".shard-00003.h5.123.abcd.tmp: stray"):
        assert expected in text, text


def test_missing_or_broken_manifest_is_reported(shards):
    (shards / "manifest.json").write_text("{not json")
    problems = verify_shards(shards)
    assert len(problems) == 1 and "manifest.json" in problems[0]
    (shards / "manifest.json").unlink()
    problems = verify_shards(shards)
    assert len(problems) == 1 and "manifest.json" in problems[0] and "missing" in problems[0]


def test_summary_counts_match(built):
    summary = summarize_shards(built)
    manifest = json.loads((built / "manifest.json").read_text())
    assert summary["total"] == COUNT == manifest["samples"]
    assert [s["samples"] for s in summary["shards"]] == [8, 8, 4]
    assert sum(summary["subsets"].values()) == COUNT and len(summary["subsets"]) == 8
    assert summary["rejects"] == 0
    for angle in ("pitch", "yaw", "roll"):
        hist = summary["histograms"][angle]
        assert hist["edges"] == list(range(-90, 91, 15)) and sum(hist["counts"]) == COUNT
    with h5py.File(built / "shard-00000.h5") as handle:
        yaw = np.degrees(handle["pose"][0, 1])
    assert summary["histograms"]["yaw"]["counts"][int((yaw + 90) // 15)] >= 1
    text = format_summary(summary)
    assert "20 samples in 3 shards, 0 rejected" in text and "yaw (degrees):" in text


def test_grid_png(built, tmp_path):
    out = tmp_path / "grid" / "grid.png"
    result = draw_grid(built, out, count=6, seed=1)
    image = cv2.imread(str(out))
    assert image is not None and image.shape[:2] == grid_size(6) == (2 * (256 + 22), 4 * 512)
    assert len(result["samples"]) == 6 and len(set(result["samples"])) == 6
    # the small model's landmarks sit on UV pixel centres: the map gives back kpt68 (float16 storage)
    assert result["max_landmark_gap"] < 0.3
    assert draw_grid(built, tmp_path / "again.png", count=6, seed=1)["samples"] == result["samples"]
    assert not list(out.parent.glob("*.tmp"))
    # more samples than there are: all of them
    assert len(draw_grid(built, tmp_path / "all.png", count=100)["samples"]) == COUNT


def run(*args):
    return subprocess.run(["prn-prep", *map(str, args)], capture_output=True, text=True, timeout=120)


def test_cli_exit_codes(shards, tmp_path):
    ok = run("verify", shards)
    assert ok.returncode == 0 and ok.stdout.strip() == f"OK: 3 shards, {COUNT} samples", ok
    (shards / "shard-00002.h5").unlink()
    bad = run("verify", shards)
    assert bad.returncode == 1 and "shard-00002.h5" in bad.stdout and len(bad.stdout.splitlines()) == 1, bad
    (shards / "manifest.json").unlink()
    none = run("verify", shards)
    assert none.returncode == 1 and "manifest.json" in none.stderr and "Traceback" not in none.stderr
    assert len(none.stderr.strip().splitlines()) == 1
    missing = run("verify", tmp_path / "nowhere")
    assert missing.returncode == 1 and "nowhere" in missing.stderr and "Traceback" not in missing.stderr


def test_cli_inspect(built, tmp_path):
    result = CliRunner().invoke(main, ["inspect", str(built), "--out", str(tmp_path / "g.png"), "--count", "3"])
    assert result.exit_code == 0, result.output
    assert "20 samples in 3 shards, 0 rejected" in result.output and "shard-00002.h5  4" in result.output
    assert cv2.imread(str(tmp_path / "g.png")).shape == (256 + 22, 3 * 512, 3)
    for command, options in (("inspect", ["--out", "--count"]), ("verify", [])):
        help_text = CliRunner().invoke(main, [command, "--help"]).output
        assert all(option in help_text for option in options) and "DIR" in help_text
