"""`prn-eval`: scoring checkpoints and prediction files on AFLW2000-3D-layout test shards."""

import errno
import json
import math
import shutil
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import synthetic_shards

from prn.cli.eval import main
from prn.model.checkpoint import CHECKPOINT
from prn.model.evaluation.evaluate import run_evaluation
from prn.model.evaluation.report import REPORT
from prn.model.training.config import config_from
from prn.model.training.train import train
from prn.rendering.geometry.crop import crop_to_image, image_to_crop
from prn.rendering.morphable.bfm import load_morphable_model
from prn.rendering.morphable.uv_assets import compute_uv_assets, write_uv_assets

COUNT = 12


@pytest.fixture(scope="module")
def aflw(tmp_path_factory, small_model_dir):
    """AFLW2000-layout test shards of the small model, its UV assets and a tiny checkpoint trained on them."""
    root = tmp_path_factory.mktemp("eval")
    shards = synthetic_shards(root, small_model_dir, COUNT, seed=5, layout="aflw2000", shard_size=8)
    write_uv_assets(compute_uv_assets(load_morphable_model(small_model_dir), 256), root / "uv")
    config = config_from("tiny", data=[str(shards)], val=str(shards), out=str(root / "run"), uv_dir=str(root / "uv"),
                         size=64, base=4, batch_size=4, epochs=1, max_steps=2, workers=0, augment=False)
    train(config, progress=lambda line: None)
    return {"shards": shards, "uv": root / "uv", "checkpoint": root / "run" / CHECKPOINT, "root": root}


def shard_arrays(shards):
    """Every shard's arrays concatenated in manifest order: name, posmap (float32), tform, kpt68, pose."""
    arrays = {key: [] for key in ("name", "posmap", "tform", "kpt68", "pose")}
    for path in sorted(shards.glob("shard-*.h5")):
        with h5py.File(path, "r") as handle:
            for key in arrays:
                arrays[key].append(handle[key].asstr()[:] if key == "name" else handle[key][:])
    return {key: np.concatenate(parts) for key, parts in arrays.items()}


def ground_truth_predictions(aflw):
    """name, kpt68 (image coordinates) and posmap of the shards themselves, as a predictions file holds them."""
    arrays = shard_arrays(aflw["shards"])
    kpt = np.loadtxt(aflw["uv"] / "uv_kpt_ind.txt").astype(np.int64)
    posmap = arrays["posmap"].astype(np.float32)
    landmarks = crop_to_image(posmap[:, kpt[1], kpt[0]], arrays["tform"])
    return {"name": arrays["name"].astype(str), "kpt68": landmarks, "posmap": posmap}


def invoke(*arguments):
    return CliRunner().invoke(main, [str(argument) for argument in arguments])


def assert_one_line_error(result, *fragments):
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def finite_numbers(value):
    if isinstance(value, dict):
        return all(finite_numbers(item) for item in value.values())
    if isinstance(value, list):
        return all(finite_numbers(item) for item in value)
    return not isinstance(value, float) or math.isfinite(value)


def test_crop_and_image_coordinates_round_trip():
    rng = np.random.default_rng(1)
    tform = np.array([[[0.8, 0.0, -30.0], [0.0, 0.8, -12.0], [0.0, 0.0, 1.0]]])
    points = rng.uniform(0, 300, (1, 68, 3))
    crop = image_to_crop(points, tform)
    assert crop[0, :, 2] == pytest.approx(points[0, :, 2] * 0.8)
    assert crop[0, :, 0] == pytest.approx(points[0, :, 0] * 0.8 - 30)
    assert np.allclose(crop_to_image(crop, tform), points)


def test_ground_truth_position_maps_as_predictions_score_zero(tmp_path, aflw):
    predictions = ground_truth_predictions(aflw)
    np.savez(tmp_path / "gt.npz", **predictions)
    report = run_evaluation(aflw["shards"], tmp_path / "out", predictions=tmp_path / "gt.npz", uv_dir=aflw["uv"])
    assert report["count"] == COUNT and sum(report["bins"].values()) == COUNT
    for key in ("nme2d_bbox", "nme3d_bbox", "nme2d_iod", "nme3d_iod"):
        assert report[key]["all"] < 0.2, key          # float16 position maps against float32 pt3d_68
    assert report["dense"]["nme3d"]["all"] == pytest.approx(0.0, abs=1e-9)
    assert report["dense"]["normal_angle"]["all"] == pytest.approx(0.0, abs=1e-3)
    assert report["dense"]["nose_depth_ratio"]["all"] == pytest.approx(1.0, abs=1e-9)
    assert report["dense"]["mean_face_normal_angle"]["all"] > 1.0   # the small model's faces differ from its mean
    assert report["pose_mae"]["mean"] < 3.0 and report["pose_mae"]["geodesic"] < 3.0
    assert report["failure10"] == 0.0 and report["auc10"] > 0.98

    # Position maps in crops of their own (tform: image -> their crop) are moved into the shard crops.
    arrays = shard_arrays(aflw["shards"])
    other = np.array([[2.0, 0.0, 40.0], [0.0, 2.0, -7.0], [0.0, 0.0, 1.0]]) @ arrays["tform"].astype(np.float64)
    flat = predictions["posmap"].reshape(COUNT, -1, 3)
    moved = image_to_crop(crop_to_image(flat, arrays["tform"]), other).reshape(predictions["posmap"].shape)
    np.savez(tmp_path / "own.npz", **{**predictions, "posmap": moved.astype(np.float32), "tform": other})
    again = run_evaluation(aflw["shards"], tmp_path / "own", predictions=tmp_path / "own.npz", uv_dir=aflw["uv"])
    assert again["dense"]["nme2d"]["all"] < 1e-3
    assert again["pose_mae"]["mean"] == pytest.approx(report["pose_mae"]["mean"], abs=0.05)

    # Landmarks alone: no pose and no dense NME, the same landmark numbers.
    np.savez(tmp_path / "kpt.npz", name=predictions["name"], kpt68=predictions["kpt68"])
    alone = run_evaluation(aflw["shards"], tmp_path / "kpt", predictions=tmp_path / "kpt.npz", uv_dir=aflw["uv"])
    assert alone["pose_mae"] is None and alone["dense"] is None
    assert alone["nme2d_bbox"] == report["nme2d_bbox"]


def test_prn_eval_with_a_tiny_checkpoint_writes_every_output(tmp_path, aflw, small_model_dir):
    out = tmp_path / "run"
    result = invoke("--data", aflw["shards"], "--checkpoint", aflw["checkpoint"], "--out", out, "--batch-size", 5)
    assert result.exit_code == 0, result.output
    assert "2D bbox NME" in result.output
    report = json.loads((out / REPORT).read_text())
    assert finite_numbers(report)
    for key in ("nme2d_bbox", "nme3d_bbox", "nme2d_iod", "nme3d_iod"):
        assert set(report[key]) == {"0-30", "30-60", "60-90", "balanced", "all"}
        assert report[key]["all"] > 0
    assert len(report["table2"]) == 10 and report["table2"] == sorted(report["table2"])
    assert 0 <= report["auc7"] <= report["auc10"] <= 1 and 0 <= report["failure10"] <= 1
    assert set(report["pose_mae"]) >= {"yaw", "pitch", "roll", "mean"}
    assert report["dense"]["nme2d"]["all"] > 0 and report["count"] == COUNT
    assert set(report["dense"]) == {"nme2d", "nme3d", "normal_angle", "nose_depth_ratio", "mean_face_normal_angle",
                                    "mean_face_nose_depth_ratio"}
    assert "| normal angle |" in (out / "report.md").read_text()
    rows = (out / "per_sample.csv").read_text().splitlines()
    assert len(rows) == COUNT + 1 and rows[0].startswith("index,name,yaw_deg,yaw_bin,nme2d_bbox")
    plot = cv2.imread(str(out / "ced.png"))
    assert plot is not None and plot.shape[0] > 200 and (plot < 128).any()
    gallery = sorted((out / "gallery").glob("*.png"))
    assert len(gallery) == min(20, COUNT)
    assert cv2.imread(str(gallery[0])).shape == (512, 512, 3)
    markdown = (out / "report.md").read_text()
    assert "![CED](ced.png)" in markdown and f"gallery/{gallery[0].name}" in markdown
    assert report["source"]["views"] == 1 and "views" not in markdown
    # A network of a model other than the built-in one: its landmarks come from a fit of the model its training
    # shards record, which is still there.
    assert report["source"]["landmarks"] == "fit"
    assert Path(report["source"]["fit_model"]).resolve() == Path(small_model_dir).resolve()

    # The mean of two views of each crop, as prn-predict gives it.
    viewed = invoke("--data", aflw["shards"], "--checkpoint", aflw["checkpoint"], "--out", tmp_path / "views",
                    "--views", 2)
    assert viewed.exit_code == 0, viewed.output
    two = json.loads((tmp_path / "views" / REPORT).read_text())
    assert two["source"]["views"] == 2 and two["nme2d_bbox"]["all"] != report["nme2d_bbox"]["all"]
    assert "the mean of 2 turned and mirrored views" in (tmp_path / "views" / "report.md").read_text()

    # Two runs side by side.
    np.savez(tmp_path / "gt.npz", **ground_truth_predictions(aflw))
    assert invoke("--data", aflw["shards"], "--predictions", tmp_path / "gt.npz", "--out", tmp_path / "gt",
                  "--uv-dir", aflw["uv"]).exit_code == 0
    gt_report = json.loads((tmp_path / "gt" / REPORT).read_text())
    compared = invoke("compare", out / REPORT, tmp_path / "gt" / REPORT)
    assert compared.exit_code == 0, compared.output
    assert str(out) in compared.output and str(tmp_path / "gt") in compared.output
    line = next(row for row in compared.output.splitlines() if row.startswith("nme2d_bbox all"))
    assert f"{report['nme2d_bbox']['all']:.2f}" in line and f"{gt_report['nme2d_bbox']['all']:.2f}" in line


def test_bad_checkpoints_and_shard_folders_are_one_line(tmp_path, aflw):
    shards, uv = aflw["shards"], aflw["uv"]

    def run(checkpoint, data=shards):
        return invoke("--data", data, "--checkpoint", checkpoint, "--out", tmp_path / "out", "--uv-dir", uv)

    assert_one_line_error(run(tmp_path / "absent.pt"), "absent.pt")
    (tmp_path / "corrupt.pt").write_bytes(aflw["checkpoint"].read_bytes()[:2000])
    assert_one_line_error(run(tmp_path / "corrupt.pt"), "corrupt.pt", "not a readable checkpoint")
    state = torch.load(aflw["checkpoint"], weights_only=True)
    config = json.loads(state["config"])
    state["config"] = json.dumps({**config, "backbone": "mobilenet"})
    torch.save(state, tmp_path / "other.pt")
    assert_one_line_error(run(tmp_path / "other.pt"), "other.pt", "do not fit")

    (tmp_path / "empty").mkdir()
    assert_one_line_error(run(aflw["checkpoint"], tmp_path / "empty"), "empty")
    assert_one_line_error(run(aflw["checkpoint"], tmp_path / "missing"), "missing")
    damaged = tmp_path / "damaged"
    shutil.copytree(shards, damaged)
    for path in damaged.glob("shard-*.h5"):
        path.write_bytes(path.read_bytes()[:4096])
    assert_one_line_error(run(aflw["checkpoint"], damaged), "cannot read shard")
    assert not (tmp_path / "out").exists()

    neither = invoke("--data", shards, "--out", tmp_path / "out")
    assert_one_line_error(neither, "exactly one")
    both = invoke("--data", shards, "--checkpoint", aflw["checkpoint"], "--predictions", tmp_path / "x.npz",
                  "--out", tmp_path / "out")
    assert_one_line_error(both, "exactly one")


@pytest.mark.parametrize("damage, message", [
    ("missing_name", "no prediction for 1 of the"),
    ("extra_name", "name no test sample"),
    ("wrong_shape", "'kpt68' has shape"),
    ("nan", "NaN or inf in 'kpt68' of 1 samples"),
    ("no_kpt68", "no 'kpt68' array"),
    ("objects", "string array"),
])
def test_bad_prediction_files_are_one_line(tmp_path, aflw, damage, message):
    predictions = ground_truth_predictions(aflw)
    name, kpt68 = predictions["name"], predictions["kpt68"]
    arrays = {"name": name, "kpt68": kpt68}
    if damage == "missing_name":
        arrays = {"name": name[1:], "kpt68": kpt68[1:]}
    elif damage == "extra_name":
        arrays = {"name": np.append(name, "stranger"), "kpt68": np.concatenate([kpt68, kpt68[:1]])}
    elif damage == "wrong_shape":
        arrays["kpt68"] = kpt68[:, :, :2]
    elif damage == "nan":
        arrays["kpt68"] = kpt68.copy()
        arrays["kpt68"][3, 10, 0] = np.nan
    elif damage == "no_kpt68":
        del arrays["kpt68"]
    elif damage == "objects":
        arrays["name"] = name.astype(object)
    np.savez(tmp_path / "bad.npz", **arrays)
    result = invoke("--data", aflw["shards"], "--predictions", tmp_path / "bad.npz", "--out", tmp_path / "out",
                    "--uv-dir", aflw["uv"])
    assert_one_line_error(result, "bad.npz", message)
    assert not (tmp_path / "out").exists()


def test_uv_assets_must_be_of_the_shards_and_the_checkpoints_model(tmp_path, aflw):
    from prn.uv_data import builtin_uv_dir

    shards, checkpoint, out = aflw["shards"], aflw["checkpoint"], tmp_path / "out"
    ours = json.loads((shards / "manifest.json").read_text())["model_fingerprint"]
    builtin = json.loads((builtin_uv_dir() / "model.json").read_text())["model_fingerprint"]
    assert ours != builtin
    result = invoke("--data", shards, "--checkpoint", checkpoint, "--out", out, "--uv-dir", builtin_uv_dir())
    assert_one_line_error(result, f"--uv-dir {builtin_uv_dir()}: UV assets of face model {builtin[:12]}",
                          f"the face model of the checkpoint {checkpoint} and the test shards {shards} is {ours[:12]}")

    np.savez(tmp_path / "gt.npz", **ground_truth_predictions(aflw))
    result = invoke("--data", shards, "--predictions", tmp_path / "gt.npz", "--out", out)
    assert_one_line_error(result, f"--uv-dir is needed: the face model of the test shards {shards} is {ours[:12]}",
                          f"the built-in UV assets are of face model {builtin[:12]}")

    state = torch.load(checkpoint, weights_only=True)
    moved = {**state, "config": json.dumps({**json.loads(state["config"]), "uv_dir": str(tmp_path / "gone")})}
    torch.save(moved, tmp_path / "moved.pt")
    result = invoke("--data", shards, "--checkpoint", tmp_path / "moved.pt", "--out", out)
    assert_one_line_error(result, "--uv-dir is needed", f"{tmp_path / 'gone'} no longer exists", ours[:12],
                          builtin[:12])
    torch.save({**state, "model_fingerprint": "f" * 64}, tmp_path / "other-model.pt")
    result = invoke("--data", shards, "--checkpoint", tmp_path / "other-model.pt", "--out", out, "--uv-dir",
                    aflw["uv"])
    assert_one_line_error(result, f"the checkpoint {tmp_path / 'other-model.pt'} and the test shards {shards} are of "
                                  f"different face models, ffffffffffff and {ours[:12]}")
    assert not out.exists()

    assert invoke("--data", shards, "--checkpoint", tmp_path / "moved.pt", "--out", out, "--uv-dir",
                  aflw["uv"]).exit_code == 0
    legacy = tmp_path / "legacy-uv"
    shutil.copytree(aflw["uv"], legacy)
    (legacy / "model.json").unlink()
    result = invoke("--data", shards, "--checkpoint", checkpoint, "--out", tmp_path / "legacy", "--uv-dir", legacy)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (f"{legacy}: the UV assets record no face model (no model.json); taken "
                                             f"on trust to be of face model {ours[:12]}")
    assert len(result.output.splitlines()) == 2


def small_report(**changes):
    bins = {"0-30": 3.0, "30-60": 4.0, "60-90": 5.0, "balanced": 4.0, "all": 3.5}
    report = {"count": 3, **{key: dict(bins) for key in ("nme2d_bbox", "nme3d_bbox", "nme2d_iod", "nme3d_iod")}}
    report.update(changes)
    return report


@pytest.mark.parametrize("changes, named", [({"nme2d_bbox": {"all": "abc"}}, "nme2d_bbox all"),
                                           ({"count": "3"}, "samples"), ({"auc7": [1]}, "auc7"),
                                           ({"nme3d_iod": {"balanced": True}}, "nme3d_iod balanced"),
                                           ({"dense": {"normal_angle": "x"}}, None)])
def test_compare_names_a_figure_that_is_not_a_number(tmp_path, changes, named):
    (tmp_path / "good.json").write_text(json.dumps(small_report()))
    (tmp_path / "bad.json").write_text(json.dumps(small_report(**changes)))
    result = invoke("compare", tmp_path / "good.json", tmp_path / "bad.json")
    if named is None:   # a figure of the wrong shape is missing, shown as "-"
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    else:
        assert_one_line_error(result, "bad.json", named, "not a number")


def test_compare_refuses_json_nested_too_deep(tmp_path):
    (tmp_path / "good.json").write_text(json.dumps(small_report()))
    (tmp_path / "deep.json").write_text("[" * 100000)
    assert_one_line_error(invoke("compare", tmp_path / "good.json", tmp_path / "deep.json"), "deep.json", "too deep")


@pytest.mark.parametrize("full_at", ["gallery", "ced.png", "report.json"])
def test_a_full_disk_leaves_no_part_of_a_report_and_no_empty_folder(tmp_path, aflw, monkeypatch, full_at):
    from prn.model.evaluation import report as report_module

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    original_png, original_text = report_module.write_png, report_module.write_text
    if full_at == "report.json":
        monkeypatch.setattr(report_module, "write_text", lambda path, *args: full(path) if path.name == REPORT
                            else original_text(path, *args))
    else:
        monkeypatch.setattr(report_module, "write_png", lambda path, *args: full(path)
                            if (full_at == "gallery") == (path.parent.name == "gallery") else original_png(path, *args))
    np.savez(tmp_path / "gt.npz", **ground_truth_predictions(aflw))
    out = tmp_path / "new" / "eval"
    result = invoke("--data", aflw["shards"], "--predictions", tmp_path / "gt.npz", "--out", out,
                    "--uv-dir", aflw["uv"])
    assert_one_line_error(result, "No space left on device")
    assert not (tmp_path / "new").exists()
