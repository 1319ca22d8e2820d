import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import synthetic_shards

from prn.cli.prep import main
from prn.pipeline.augment import AugmentSettings, augment, parse_range, rotation_grid
from prn.pipeline.stage import read_rejects
from prn.pipeline.verify import verify_shards
from prn.rendering.morphable.bfm import load_morphable_model
from prn.rendering.morphable.uv_assets import keypoint_pixels
from prn.rendering.util.errors import InputError


@pytest.fixture(scope="module")
def source_shards(tmp_path_factory, small_model_dir):
    return synthetic_shards(tmp_path_factory.mktemp("aug-src"), small_model_dir, 6, seed=5, image_size=200,
                            shard_size=4)


def settings_for(face_model_dir, out, rotations=(), **options):
    return AugmentSettings(face_model_dir=face_model_dir, out_dir=out, layout="300w-lp", rotations=tuple(rotations),
                           **{"shard_size": 8, **options})


def rows(folder):
    out = {}
    for path in sorted(folder.glob("shard-*.h5")):
        with h5py.File(path) as handle:
            for i, name in enumerate(handle["name"].asstr()[:]):
                out[name] = {key: handle[key][i] for key in handle}
    return out


def test_rotated_views_are_exact(tmp_path, source_shards, small_model_dir):
    grid = rotation_grid((0, 0, None), (-30, 30, 30), (0, 0, None))
    summary = augment(settings_for(small_model_dir, tmp_path / "aug", grid), source_shards, progress=False)
    assert summary.written + len(summary.rejects) == 18
    assert verify_shards(tmp_path / "aug") == []
    model = load_morphable_model(small_model_dir)
    kpt = keypoint_pixels(model.uv, model.landmarks, 256)
    sources = rows(source_shards)
    augmented = rows(tmp_path / "aug")
    assert len(augmented) == summary.written
    for name, row in augmented.items():
        np.testing.assert_allclose(row["posmap"].astype(np.float32)[kpt[1], kpt[0]], row["kpt68"], atol=0.5)
        source = sources[row["source_name"].decode()]
        dyaw = np.degrees(row["pose"][1] - source["pose"][1])
        assert abs(dyaw - row["rotation_deg"][1]) < 0.5, name
        assert row["image"].shape == (256, 256, 3)
        if row["rotation_deg"][1] == 0:  # no rotation: the source geometry, in original image coordinates
            back = np.linalg.inv(row["tform"].astype(np.float64))
            original = np.linalg.inv(source["tform"].astype(np.float64))
            ours = row["kpt68"][:, :2] @ back[:2, :2].T + back[:2, 2]
            theirs = source["kpt68"][:, :2] @ original[:2, :2].T + original[:2, 2]
            np.testing.assert_allclose(ours, theirs, atol=0.05)
            np.testing.assert_allclose(row["pose"], source["pose"], atol=1e-4)


def test_out_of_range_rotations_are_rejected(tmp_path, source_shards, small_model_dir):
    summary = augment(settings_for(small_model_dir, tmp_path / "aug", [(0, 200, 0), (0, -200, 0)]),
                      source_shards, progress=False)
    assert summary.written == 0 and len(summary.rejects) == 12
    assert all("|yaw|" in r["reason"] for r in read_rejects(tmp_path / "aug"))


def test_random_rotations_deterministic_and_in_range(tmp_path, source_shards, small_model_dir):
    options = {"random": 3, "ranges": ((-10, 10), (-40, 40), (0, 0)), "seed": 7}
    augment(settings_for(small_model_dir, tmp_path / "a", **options), source_shards, progress=False)
    augment(settings_for(small_model_dir, tmp_path / "b", **options), source_shards, workers=2, progress=False)
    a = rows(tmp_path / "a")
    assert len(a) + len(read_rejects(tmp_path / "a")) == 18
    for row in a.values():
        pitch, yaw, roll = row["rotation_deg"]
        assert -10 <= pitch <= 10 and -40 <= yaw <= 40 and roll == 0
    for path in sorted((tmp_path / "a").glob("shard-*.h5")):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()


def test_resume_skips_finished_shards(tmp_path, source_shards, small_model_dir):
    settings = settings_for(small_model_dir, tmp_path / "aug", [(0, 15, 0)], shard_size=4)
    augment(settings, source_shards, progress=False)
    first = (tmp_path / "aug" / "shard-00000.h5").read_bytes()
    (tmp_path / "aug" / "shard-00001.h5").unlink()
    summary = augment(settings, source_shards, progress=False)
    assert summary.skipped == 4 and summary.written == 2
    assert (tmp_path / "aug" / "shard-00000.h5").read_bytes() == first


def test_bad_sources_and_options(tmp_path, source_shards, small_model_dir):
    with pytest.raises(InputError, match="manifest"):
        augment(settings_for(small_model_dir, tmp_path / "o", [(0, 10, 0)]), tmp_path, progress=False)
    other = tmp_path / "other-model"
    from prn.pipeline.synthetic.builtin import write_synthetic_model
    write_synthetic_model(other, n_vertices=800, seed=9)
    with pytest.raises(InputError, match="another model"):
        augment(settings_for(other, tmp_path / "o", [(0, 10, 0)]), source_shards, progress=False)
    before = sorted(source_shards.iterdir())
    with pytest.raises(InputError, match="must not be the source folder"):
        augment(settings_for(small_model_dir, source_shards, [(0, 10, 0)]), source_shards, progress=False)
    assert sorted(source_shards.iterdir()) == before
    assert parse_range("-30:30:15", "--yaw") == (-30.0, 30.0, 15.0)
    assert rotation_grid((0, 0, None), (-30, 30, 15), (0, 0, None))[0] == (0.0, -30.0, 0.0)
    for bad in ("a:b", "30:-30:5", "0:10:0"):
        with pytest.raises(InputError, match="--yaw"):
            parse_range(bad, "--yaw")


def test_a_rerun_after_lost_shards_keeps_every_reject(tmp_path, source_shards, small_model_dir):
    # half of the views turn past 90 degrees of yaw: two rejects in each shard of four views
    settings = settings_for(small_model_dir, tmp_path / "aug", [(0, 0, 0), (0, 200, 0)], shard_size=4)
    first = augment(settings, source_shards, progress=False)
    assert len(first.rejects) == 6
    files = {name: (tmp_path / "aug" / name).read_bytes() for name in ("rejects.jsonl", "manifest.json")}
    for lost in ("shard-00000.h5", "shard-00002.h5.json"):  # as a killed run leaves them: not finished
        (tmp_path / "aug" / lost).unlink()
    rerun = augment(settings, source_shards, progress=False)
    assert (rerun.written, rerun.skipped, rerun.rejects) == (4, 2, first.rejects)
    for name, content in files.items():
        assert (tmp_path / "aug" / name).read_bytes() == content, name


def test_a_rerun_with_larger_shards_leaves_only_the_listed_shards(tmp_path, source_shards, small_model_dir):
    out = tmp_path / "aug"
    augment(settings_for(small_model_dir, out, [(0, 10, 0)], shard_size=2), source_shards, progress=False)
    assert len(list(out.glob("shard-*.h5"))) == 3
    augment(settings_for(small_model_dir, out, [(0, 10, 0)], shard_size=8), source_shards, progress=False)
    listed = [shard["file"] for shard in json.loads((out / "manifest.json").read_text())["shards"]]
    assert sorted(p.name for p in out.glob("shard-*")) == ["shard-00000.h5", "shard-00000.h5.json"] == sorted(
        listed + [f"{name}.json" for name in listed])
    assert verify_shards(out) == []


@pytest.mark.parametrize("option, value", [("--yaw", "nan:nan:1"), ("--yaw", "0:inf:1"), ("--pitch", "-inf:0"),
                                           ("--roll", "nan"), ("--yaw", "0:10:nan")])
def test_non_finite_ranges_are_one_line_naming_the_option(tmp_path, source_shards, small_model_dir, option, value):
    with pytest.raises(InputError, match=f"^{option} "):
        parse_range(value, option)
    result = CliRunner().invoke(main, ["augment", "--src", str(source_shards), "--out", str(tmp_path / "o"),
                                       "--model", str(small_model_dir), option, value, "--workers", "1"])
    assert result.exit_code == 1, result.output
    assert result.output.splitlines() == [f"Error: {option} {value!r}: expected finite numbers of degrees, "
                                          "not nan or inf"]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("arguments, line", [
    (["--yaw=-90:90:0.0001"], "Error: --pitch, --yaw and --roll make 1,800,001 rotations a sample, more than 1,000: "
                              "use larger steps or --random K"),
    (["--yaw=1e308:1.7e308:1e300"], "Error: --yaw '1e308:1.7e308:1e300': angles must lie within -180 and 180 degrees"),
])
def test_unbounded_grids_are_one_line_before_any_work(tmp_path, source_shards, small_model_dir, arguments, line):
    result = CliRunner().invoke(main, ["augment", "--src", str(source_shards), "--out", str(tmp_path / "o"),
                                       "--model", str(small_model_dir), *arguments, "--workers", "1"])
    assert result.exit_code == 1 and result.output.splitlines() == [line], result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("arguments", [["synth", "--seed", "-1", "--count", "1"],
                                       ["synth-model", "--vertices", "100000000"],
                                       ["augment", "--random", "100000"]])
def test_out_of_range_counts_and_seeds_are_usage_errors(tmp_path, arguments):
    result = CliRunner().invoke(main, [*arguments, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "Invalid value" in result.output, result.output
    assert not (tmp_path / "o").exists()
