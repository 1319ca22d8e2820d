"""The shipped network: float16 weights in the package, the default of prn-predict and the Python API."""

import json

import numpy as np
import pytest
import torch
from conftest import synthetic_shards

from prn.cli import predict as predict_cli
from prn.model.checkpoint import SHIPPED, WEIGHTS, load_trained, resolve_checkpoint, write_shipped
from prn.model.evaluation.baseline import write_mean_face_predictions
from prn.model.evaluation.evaluate import run_evaluation
from prn.model.prediction import Predictor
from prn.model.training.config import config_from
from prn.pipeline.synthetic.builtin import builtin_face_model_dir
from prn.uv_data import builtin_uv_dir


def test_the_shipped_weights_are_float16_and_small():
    state = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    floats = [tensor for tensor in state[WEIGHTS].values() if tensor.is_floating_point()]
    assert floats and all(tensor.dtype == torch.float16 for tensor in floats)
    assert SHIPPED.stat().st_size < 10 * 2 ** 20
    config = json.loads(state["config"])
    small = config_from("small", data=[], val="", out="")
    assert (config["backbone"], config["base"], config["kernel"]) == (small.backbone, small.base, small.kernel)
    assert {"data", "train", "commit"} <= set(json.loads(state["recipe"]))


def test_none_and_the_word_shipped_name_the_shipped_weights(tmp_path):
    assert resolve_checkpoint(None) == SHIPPED == resolve_checkpoint("shipped")
    assert resolve_checkpoint(tmp_path / "x.pt") == tmp_path / "x.pt"
    trained = load_trained(None)
    assert next(trained.network.parameters()).dtype == torch.float32
    recorded = json.loads((builtin_uv_dir() / "model.json").read_text())["model_fingerprint"]
    assert trained.face_model.fingerprint == recorded


def test_write_shipped_keeps_the_network_and_drops_the_run_folders(tmp_path):
    target = tmp_path / "small.pt"
    write_shipped(SHIPPED, target, {"data": "d", "train": "t", "commit": "c"})
    before, after = load_trained(SHIPPED), load_trained(target)
    assert after.data == () and after.face_model.uv_dir is None and after.config == before.config
    image = torch.rand(1, 3, after.config.size, after.config.size)
    with torch.no_grad():
        assert torch.equal(before.network(image), after.network(image))


@pytest.fixture(scope="module")
def test_shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("shipped")
    return synthetic_shards(root, builtin_face_model_dir(), 24, seed=7, image_size=450, layout="aflw2000")


def test_the_shipped_network_beats_the_mean_face_on_synthetic_photos(test_shards, tmp_path):
    uv = builtin_uv_dir()
    shipped = run_evaluation(test_shards, tmp_path / "shipped", checkpoint="shipped", uv_dir=uv)
    write_mean_face_predictions([test_shards], test_shards, uv, tmp_path / "mean.npz")
    mean_face = run_evaluation(test_shards, tmp_path / "mean", predictions=tmp_path / "mean.npz", uv_dir=uv)
    assert shipped["nme2d_bbox"]["all"] < 0.5 * mean_face["nme2d_bbox"]["all"]


def test_landmarks_of_the_fitted_model_beat_those_read_from_the_map(test_shards, tmp_path):
    """The default reading fits the built-in model (generated here) to the shipped network's maps: better
    landmarks, and a dense face whose normals are closer to the truth's and whose nose is as deep."""
    uv = builtin_uv_dir()
    fitted = run_evaluation(test_shards, tmp_path / "fit", checkpoint="shipped", uv_dir=uv)
    read = run_evaluation(test_shards, tmp_path / "map", checkpoint="shipped", uv_dir=uv, landmarks="map")
    assert (fitted["source"]["landmarks"], read["source"]["landmarks"]) == ("fit", "map")
    assert fitted["nme2d_bbox"]["all"] < read["nme2d_bbox"]["all"]
    assert fitted["dense"]["normal_angle"]["all"] < 0.7 * read["dense"]["normal_angle"]["all"]
    nose = {reading: report["dense"]["nose_depth_ratio"]["all"] for reading, report in (("fit", fitted), ("map", read))}
    assert abs(nose["fit"] - 1) < 0.15 < abs(nose["map"] - 1)
    assert fitted["dense"]["mean_face_normal_angle"] == read["dense"]["mean_face_normal_angle"]


def test_prn_predict_needs_no_checkpoint(tmp_path, test_shards):
    photos = sorted((test_shards.parent / "raw-7" / "AFLW2000").glob("*.jpg"))[:2]
    status = predict_cli.main([*map(str, photos), "--out", str(tmp_path / "out"), "--bbox", "100,100,350,350",
                               "--format", "ply"], standalone_mode=False)
    assert status in (None, 0)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.ply")) == [f"{p.stem}_0.ply" for p in photos]
    faces = Predictor.from_checkpoint()(np.zeros((300, 300, 3), np.uint8), [[50, 50, 250, 250]])
    assert faces[0].landmarks.shape == (68, 3)


def test_training_can_start_from_the_shipped_network_on_builtin_model_data(test_shards, tmp_path):
    """--init shipped on shards of the built-in model made on this machine: the fingerprints agree on any CPU."""
    from prn.model.training.train import set_up

    config = config_from("small", data=[str(test_shards)], val=str(test_shards), out=str(tmp_path / "run"),
                         workers=0, init="shipped")
    run = set_up(config, False, lambda line: None, False)
    expected = load_trained("shipped").network.state_dict()
    for name, value in run.network.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0, msg=name)
