"""`prn-eval real`: a checkpoint and the mean face scored on the real AFLW2000-3D photos of ../shared/real.

The networks are trained here on a few synthetic samples only: nothing from
the real photos enters training.
"""

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from click.testing import CliRunner
from conftest import real_path, synthetic_shards, write_real_topology_model

from prn.cli.eval import main
from prn.cli.prep import main as prep
from prn.model.checkpoint import CHECKPOINT
from prn.model.evaluation.baseline import write_mean_face_predictions
from prn.model.evaluation.evaluate import run_evaluation
from prn.model.evaluation.real_photos import SUMMARY, photo_folder
from prn.model.prediction import Predictor
from prn.model.training.config import config_from
from prn.model.training.train import train
from prn.pipeline.datasets import read_image
from prn.rendering.morphable.bfm import load_morphable_model
from prn.rendering.morphable.uv_assets import compute_uv_assets, write_uv_assets

PHOTOS = 16
SUMMARY_LINE = re.compile(r"^16 real photos: 2D bbox NME of the network(?: \(\d views\))? all ([\d.]+) %, "
                          r"balanced ([\d.]+) % \(prn-predict's crop of the landmarks' box; framed crops: all "
                          r"([\d.]+) %, balanced ([\d.]+) %\); mean face all ([\d.]+) %, balanced ([\d.]+) %; "
                          r"summary: (.+)$")


def invoke(*arguments, env=None):
    return CliRunner(env=env).invoke(main, [str(argument) for argument in arguments])


def prep_ok(*arguments):
    result = CliRunner().invoke(prep, [str(argument) for argument in arguments])
    assert result.exit_code == 0, result.output


def tiny_checkpoint(shards, uv, run):
    """A tiny network trained for two steps on `shards`; returns its checkpoint."""
    config = config_from("tiny", data=[str(shards)], val=str(shards), out=str(run), uv_dir=str(uv), size=64, base=4,
                         batch_size=4, epochs=1, max_steps=2, workers=0, augment=False)
    train(config, progress=lambda line: None)
    return run / CHECKPOINT


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The real photos, a model of the real BFM topology, synthetic training shards of it and a tiny checkpoint."""
    photos = real_path("AFLW2000")
    root = tmp_path_factory.mktemp("real")
    model = write_real_topology_model(root / "bfm", n_shape=199, n_exp=29)  # AFLW2000-3D's coefficient counts
    prep_ok("synth", "--model", model, "--layout", "300w-lp", "--count", 8, "--out", root / "raw",
            "--image-size", 160, "--workers", 1)
    prep_ok("build", "--src", root / "raw" / "300W_LP", "--out", root / "train", "--workers", 1)
    prep_ok("uv-data", "--model", model, "--out", root / "uv")
    checkpoint = tiny_checkpoint(root / "train", root / "uv", root / "run")
    return {"photos": photos, "model": model, "train": root / "train", "uv": root / "uv", "checkpoint": checkpoint,
            "root": root}


def score(real, out, *extra, baseline=None):
    return invoke("real", "--aflw", real["photos"], "--model", real["model"], "--checkpoint", real["checkpoint"],
                  "--baseline-shards", baseline or real["train"], "--out", out, "--workers", 1, *extra)


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def finite(value):
    if isinstance(value, dict):
        return all(finite(item) for item in value.values())
    return not isinstance(value, float) or math.isfinite(value)


def shard_identity(out):
    stat = (out / "shards" / "shard-00000.h5").stat()
    return stat.st_ino, stat.st_mtime_ns


def test_scores_the_network_and_the_mean_face_on_the_real_photos(tmp_path, real):
    out = tmp_path / "out"
    result = score(real, out)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    match = SUMMARY_LINE.match(lines[0])
    assert match and match.group(7) == str(out / SUMMARY), lines[0]

    summary = json.loads((out / SUMMARY).read_text())
    assert summary["count"] == PHOTOS and summary["rejected"] == 0 and sum(summary["bins"].values()) == PHOTOS
    assert summary["scored"] == "full" and finite(summary)
    assert summary["landmarks"] == "fit" and Path(summary["fit_model"]).resolve() == Path(real["model"]).resolve()
    assert summary["photos"] == str(real["photos"])
    assert summary["checkpoint"] == str(real["checkpoint"]) and summary["baseline_shards"] == [str(real["train"])]
    numbers = [float(value) for value in match.groups()[:6]]
    whose = ("network", "network_framed", "mean_face")
    assert numbers == [round(summary[who]["nme2d_bbox"][kind], 2) for who in whose for kind in ("all", "balanced")]
    assert all(number > 0 for number in numbers)
    assert set(summary["crops"]) == {"network", "network_framed", "mean_face"}

    network = json.loads((out / "network" / "report.json").read_text())
    framed = json.loads((out / "network-framed" / "report.json").read_text())
    mean_face = json.loads((out / "mean-face" / "report.json").read_text())
    for report in (network, framed, mean_face):
        assert report["count"] == PHOTOS and report["source"]["truth"] == "pt3d_68"
        assert (out / report["source"]["data"]).resolve() == (out / "shards").resolve()
    for report in (network, framed):   # same model: the full report, the dense face's shape included
        assert report["pose_mae"] is not None and report["dense"]["normal_angle"]["all"] > 0
    assert (out / "network" / "report.md").is_file() and (out / "mean-face" / "report.md").is_file()
    assert not (out / "uv").exists()

    # The same numbers as prn-eval itself and the baseline module give on those shards.
    direct = run_evaluation(out / "shards", tmp_path / "direct", checkpoint=real["checkpoint"], uv_dir=real["uv"])
    assert direct["nme2d_bbox"] == framed["nme2d_bbox"]
    # As a user crops: what the Python API gives for each photo with the box of its true landmarks.
    predictor = Predictor.from_checkpoint(real["checkpoint"], uv_dir=real["uv"], views=1)
    predicted = np.load(out / "network" / "predictions.npz")
    for index in (0, 9):
        name = str(predicted["name"][index])
        truth = scipy.io.loadmat(real["photos"] / f"{name}.mat")["pt3d_68"][:2].T
        box = [*truth.min(axis=0), *truth.max(axis=0)]
        face = predictor(read_image(real["photos"] / f"{name}.jpg"), [box])[0]
        np.testing.assert_allclose(predicted["kpt68"][index], face.landmarks, atol=1e-4)
    assert network["nme2d_bbox"] != framed["nme2d_bbox"]
    write_mean_face_predictions([real["train"]], out / "shards", real["uv"], tmp_path / "mean.npz")
    baseline = run_evaluation(out / "shards", tmp_path / "mean", predictions=tmp_path / "mean.npz",
                              uv_dir=real["uv"])
    assert baseline["nme2d_bbox"] == mean_face["nme2d_bbox"]


def test_a_rerun_keeps_the_shards_and_an_interrupted_run_continues(tmp_path, real):
    out = tmp_path / "out"
    damaged = tmp_path / "damaged"
    shutil.copytree(real["train"], damaged)
    for path in damaged.glob("shard-*.h5"):
        path.write_bytes(path.read_bytes()[:4096])
    # Fails after the shards and the network's reports, at the mean face: no summary.
    assert_one_line_error(score(real, out, baseline=damaged), "cannot read shard")
    assert not (out / SUMMARY).exists() and (out / "network" / "report.json").is_file()
    assert (out / "network-framed" / "report.json").is_file()
    built = shard_identity(out)

    first = score(real, out)
    assert first.exit_code == 0, first.output
    assert shard_identity(out) == built
    again = score(real, out)
    assert again.exit_code == 0 and again.output == first.output
    assert shard_identity(out) == built

    (out / "shards" / "shard-00000.h5").unlink()
    rebuilt = score(real, out)
    assert rebuilt.exit_code == 0 and rebuilt.output == first.output
    assert shard_identity(out) != built

    # A failed rerun leaves no summary of an earlier run behind.
    assert_one_line_error(score(real, out, baseline=damaged), "cannot read shard")
    assert not (out / SUMMARY).exists()


def test_photos_that_are_missing_or_lack_mat_files_are_one_line(tmp_path, real):
    result = score({**real, "photos": tmp_path / "nowhere"}, tmp_path / "out")
    assert_one_line_error(result, f"{tmp_path / 'nowhere'}: no such folder", "imageNNNNN.jpg + .mat")

    images_only = tmp_path / "images" / "AFLW2000"
    images_only.mkdir(parents=True)
    for path in sorted(real["photos"].glob("*.jpg"))[:3]:
        shutil.copy(path, images_only)
    result = score({**real, "photos": tmp_path / "images"}, tmp_path / "out")
    assert_one_line_error(result, f"{images_only}: no .mat files")
    assert photo_folder(real["photos"]) == real["photos"]
    assert not (tmp_path / "out").exists()


def test_the_photos_model_must_be_named(tmp_path, real):
    result = invoke("real", "--aflw", real["photos"], "--checkpoint", real["checkpoint"], "--out", tmp_path / "out",
                    env={"PRN_MODEL_DIR": None})
    assert_one_line_error(result, str(real["photos"]), "pass --model DIR or set PRN_MODEL_DIR")
    assert not (tmp_path / "out").exists()


def test_shards_of_another_model_or_of_the_test_photos_are_refused(tmp_path, real, small_model_dir):
    other = synthetic_shards(tmp_path, small_model_dir, 4)
    result = score(real, tmp_path / "out", baseline=other)
    assert_one_line_error(result, f"the shards {other} and the checkpoint {real['checkpoint']} are of different face "
                                  "models", "the mean face comes from the network's training shards")
    assert not (tmp_path / "out").exists()

    leaked = tmp_path / "leaked"
    prep_ok("build", "--src", real["photos"], "--model", real["model"], "--out", leaked, "--workers", 1)
    result = score(real, tmp_path / "out", baseline=leaked)
    assert_one_line_error(result, f"{leaked}: built from the test photos {real['photos']}")
    assert not (tmp_path / "out").exists()

    # Validated on shards of the test photos: scored, with a note.
    state = torch.load(real["checkpoint"], weights_only=True)
    state["config"] = json.dumps({**json.loads(state["config"]), "val": str(leaked)})
    torch.save(state, tmp_path / "validated.pt")
    result = score({**real, "checkpoint": tmp_path / "validated.pt"}, tmp_path / "out")
    assert result.exit_code == 0, result.output
    note, line = result.output.strip().splitlines()
    assert note == (f"{tmp_path / 'validated.pt'} was validated on {leaked}, built from these photos: choosing "
                    "best.pt on it selects on the test set")
    assert SUMMARY_LINE.match(line), line


def test_a_checkpoint_of_another_model_is_scored_on_its_landmarks(tmp_path, real, small_model_dir):
    """As for a network trained on the built-in model: its own UV layout, the 68 landmarks compared."""
    shards = synthetic_shards(tmp_path, small_model_dir, 8)
    write_uv_assets(compute_uv_assets(load_morphable_model(small_model_dir), 256), tmp_path / "uv")
    checkpoint = tiny_checkpoint(shards, tmp_path / "uv", tmp_path / "run")
    out = tmp_path / "out"
    result = invoke("real", "--aflw", real["photos"], "--model", real["model"], "--checkpoint", checkpoint,
                    "--out", out, "--workers", 1)
    assert result.exit_code == 0, result.output
    note, line = result.output.strip().splitlines()
    assert note.startswith(f"{checkpoint} is of face model ") and note.endswith(
        "scoring its 68 landmarks only (no head pose, no dense NME)")
    assert SUMMARY_LINE.match(line), line
    summary = json.loads((out / SUMMARY).read_text())
    assert summary["scored"] == "landmarks" and finite(summary)
    assert summary["baseline_shards"] == [str(shards)]     # the checkpoint's training data
    network = json.loads((out / "network" / "report.json").read_text())
    assert network["count"] == PHOTOS and network["pose_mae"] is None and network["dense"] is None
    ours = json.loads((real["train"] / "manifest.json").read_text())["model_fingerprint"]
    assert json.loads((out / "uv" / "model.json").read_text())["model_fingerprint"] == ours
    predicted = np.load(out / "network-framed" / "predictions.npz")["kpt68"]
    assert predicted.shape == (PHOTOS, 68, 3) and np.isfinite(predicted).all()
    assert set(np.load(out / "network" / "predictions.npz").files) == {"name", "kpt68"}   # no dense face

    again = invoke("real", "--aflw", real["photos"], "--model", real["model"], "--checkpoint", checkpoint,
                   "--out", out, "--workers", 1, "--views", 4)
    assert again.exit_code == 0 and "of the network (4 views)" in again.output, again.output
    assert json.loads((out / SUMMARY).read_text())["views"] == 4 and summary["views"] == 1
    viewed = np.load(out / "network-framed" / "predictions.npz")["kpt68"]
    assert np.isfinite(viewed).all() and not np.allclose(viewed, predicted)


def test_the_ablation_scores_each_weighting_on_the_real_photos_beside_the_mean_face(tmp_path, real):
    from prn.cli.train import main as train_main

    arguments = ["ablation", "--preset", "tiny", "--data", real["train"], "--val", real["train"], "--uv-dir",
                 real["uv"], "--out", tmp_path / "abl", "--epochs", 1, "--batch-size", 4, "--workers", 0,
                 "--max-steps", 2, "--only", "weight1", "--only", "weight2", "--real", real["photos"],
                 "--model", real["model"]]
    result = CliRunner().invoke(train_main, [str(argument) for argument in arguments])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    for row in rows:
        summary = json.loads((tmp_path / "abl" / row["weights"] / "real" / SUMMARY).read_text())
        assert summary["count"] == PHOTOS
        assert row["real_nme2d_bbox_balanced"] == summary["network"]["nme2d_bbox"]["balanced"]
        assert row["real_nme2d_bbox_all"] == summary["network"]["nme2d_bbox"]["all"]
        assert row["real_mean_face_nme2d_bbox_balanced"] == summary["mean_face"]["nme2d_bbox"]["balanced"]
        assert 0 < row["real_nme2d_bbox_all"] < 1000
    assert rows[0]["real_nme2d_bbox_all"] != rows[1]["real_nme2d_bbox_all"]  # different weightings
    assert "real_nme2d_bbox_balanced" in (tmp_path / "abl" / "ablation.md").read_text()

    missing = CliRunner(env={"PRN_MODEL_DIR": None}).invoke(
        train_main, [str(argument) for argument in arguments[:-2]])
    assert missing.exit_code == 1 and "no record of the 3D face model" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
