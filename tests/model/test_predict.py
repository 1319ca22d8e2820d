import json
import sys

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import synthetic_shards
from mesh_readers import read_obj, read_ply

import prn.model.prediction.predictor as predict
from prn.cli.predict import main
from prn.model.evaluation.evaluate import image_to_crop
from prn.model.prediction.detect import DetectorUnavailable, cascades
from prn.model.training.train import CHECKPOINT, config_from, train
from prn.pipeline.datasets import read_image
from prn.rendering.geometry.crop import crop_transform
from prn.rendering.geometry.pose import rotation_matrices
from prn.rendering.raster.texture import sample_bilinear
from prn.rendering.util.errors import InputError
from prn.uv_data import builtin_uv_dir

SIDE = 160  # synthetic photo size


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, small_model_dir):
    """A tiny network trained for one step (size 64, base 4), with the built-in UV assets in its config."""
    root = tmp_path_factory.mktemp("predict-model")
    shards = synthetic_shards(root, small_model_dir, 8, seed=4)
    config = config_from("tiny", data=[str(shards)], val=str(shards), out=str(root / "run"),
                         uv_dir=str(builtin_uv_dir()), size=64, base=4, batch_size=8, epochs=1, max_steps=1,
                         workers=0)
    train(config, progress=lambda line: None)
    return root / "run" / CHECKPOINT


@pytest.fixture(scope="module")
def photos(tmp_path_factory, small_model_dir):
    """A folder of three AFLW2000-3D-format photos (160 x 160) of the small model."""
    from prn.pipeline.synthetic.synth import SynthSettings, synthesize

    out = tmp_path_factory.mktemp("predict-photos")
    synthesize(SynthSettings(model_dir=small_model_dir, out_dir=out, layout="aflw2000", image_size=SIDE),
               3, progress=False)
    return out / "AFLW2000"


def run(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def error_lines(result, name):
    return [line for line in result.output.splitlines() if name in line and "->" not in line]


# ---------------------------------------------------------------------------
# Geometry


def test_detector_box_crop_follows_formats_md_section_6():
    box = np.array([[100.0, 50.0, 200.0, 170.0]])
    # By hand: w 100, h 120, old 110; centre (150, 110 + 0.14 * 110 = 125.4); side 1.58 * 110 = 173.8.
    image = np.zeros((256, 256, 3), np.uint8)
    image[..., 0], image[..., 1] = np.meshgrid(np.arange(256), np.arange(256))   # R = x, G = y
    crops, transforms = predict.crop_faces(image, box)
    left, top, side = 150 - 86.9, 125.4 - 86.9, 173.8
    for corner, target in [((left, top), (0, 0)), ((left + side, top), (255, 0)), ((left, top + side), (0, 255))]:
        np.testing.assert_allclose(transforms[0] @ [*corner, 1], [*target, 1], atol=1e-9)
    # The crop holds the image warped by that similarity: pixel (c, r) shows image point T^-1 (c, r).
    inverse = np.linalg.inv(transforms[0])
    for column, row in [(0, 0), (40, 200), (128, 128), (250, 10)]:
        x, y, _ = inverse @ [column, row, 1]
        np.testing.assert_allclose(crops[0, row, column, :2], [x, y], atol=1.0)


def test_boxes_are_clipped_or_refused():
    np.testing.assert_array_equal(predict.clip_box([-20, 10, 90, 200], 160, 120), [0, 10, 90, 120])
    with pytest.raises(InputError, match="outside the 160 x 120 image"):
        predict.clip_box([170, 10, 200, 50], 160, 120)
    with pytest.raises(InputError, match="empty"):
        predict.clip_box([50, 10, 40, 50], 160, 120)


def test_output_stems_are_distinct():
    assert predict.output_stems(["a/x.jpg", "b/x.png", "x-2.jpg", "c/x.jpg", "y.jpg"]) == \
        ["x", "x-2", "x-2-2", "x-3", "y"]


def known_face(uv, angles_deg, scale=0.6, shift=(10.0, 20.0, 5.0)):
    """An image-coordinate position map (256, 256, 3): the canonical face turned by a 300W-LP pose."""
    rotation = rotation_matrices(np.radians([angles_deg]))[0]
    flip = np.diag([1.0, -1.0, 1.0])
    face = scale * uv.canonical @ (flip @ rotation @ flip).T + shift
    image_map = np.zeros((256 * 256, 3))
    image_map[uv.face_ind] = face
    return image_map.reshape(256, 256, 3)


def test_predictions_map_back_to_the_photo_through_the_crop(tmp_path, checkpoint, photos, monkeypatch):
    """The flow with a 'network' that answers a known face in each crop: the outputs are that face."""
    predictor = predict.load_predictor(checkpoint)
    truth = known_face(predictor.uv, (10.0, -25.0, 5.0))
    boxes = {"image00000.jpg": np.array([[20.0, 15.0, 140.0, 150.0]]),
             "image00001.jpg": np.array([[5.0, 40.0, 90.0, 130.0], [60.0, 0.0, 160.0, 100.0]])}

    def network_answer(network, config, crops, device, batch_size):
        """The known face in the crop of each box, in the order the flow batches them (all in one batch)."""
        in_order = np.concatenate([boxes["image00000.jpg"], boxes["image00001.jpg"]])
        assert len(crops) == len(in_order)
        return np.stack([image_to_crop(truth.reshape(1, -1, 3), crop_transform(*predict.detector_crop(box))[None])
                         for box in in_order]).reshape(-1, 256, 256, 3).astype(np.float32)

    monkeypatch.setattr(predict, "predict_posmaps", network_answer)
    paths = [photos / "image00000.jpg", photos / "image00001.jpg"]
    assert predict.predict_images(paths, tmp_path, predictor, boxes=boxes, report=lambda *a, **k: None) == {}

    kpt, face_ind = predictor.uv.kpt, predictor.uv.face_ind
    depth = cv2.imread(str(tmp_path / "image00000_depth.png"), cv2.IMREAD_UNCHANGED)
    nose_x, nose_y = np.rint(truth[kpt[1, 30], kpt[0, 30], :2]).astype(int)
    assert depth.max() == 255 and depth[nose_y, nose_x] > 200 and depth[0, 0] == 0
    for stem, count in (("image00000", 1), ("image00001", 2)):
        record = json.loads((tmp_path / f"{stem}.json").read_text())
        assert len(record["faces"]) == count
        for face in record["faces"]:
            np.testing.assert_allclose(face["landmarks68"], truth[kpt[1], kpt[0]], atol=2e-3)
            assert face["pose_deg"] == pytest.approx({"pitch": 10.0, "yaw": -25.0, "roll": 5.0}, abs=0.01)
            vertices, colors, triangles = read_obj(tmp_path / face["mesh"])
            dense = truth.reshape(-1, 3)[face_ind]
            np.testing.assert_allclose(vertices, dense * (1, -1, 1) + (0, SIDE - 1, 0), atol=1e-3)
            photo = read_image(photos / f"{stem}.jpg")
            # One grey level: cv2.remap interpolates uint8 in fixed point (1/32 px), and the flow's points went
            # through float32 maps, so a point can fall in the next sub-pixel cell; plus the uint8 rounding.
            np.testing.assert_allclose(colors * 255, sample_bilinear(photo, dense[:, :2]), atol=1.01)
            assert triangles.shape == predictor.uv.triangles.shape
            # Seen from the front (+z, y up), the triangles run counter-clockwise: the face's normal is +z.
            a, b, c = (vertices[triangles[:, i]] for i in range(3))
            normal = np.cross(b - a, c - a).sum(0)
            assert normal[2] > 0.8 * np.linalg.norm(normal)


# ---------------------------------------------------------------------------
# The command


def test_prn_predict_on_a_folder_writes_every_output(tmp_path, checkpoint, photos):
    result = run("--checkpoint", checkpoint, photos, photos / "image0000[01].jpg", "--out", tmp_path / "out",
                 "--bbox", "20,20,140,150", "--batch-size", 2)
    assert result.exit_code == 0, result.output
    assert len([line for line in result.output.splitlines() if " -> " in line]) == 3  # each image once
    face_count = len(np.loadtxt(builtin_uv_dir() / "face_ind.txt"))
    for stem in ("image00000", "image00001", "image00002"):
        record = json.loads((tmp_path / "out" / f"{stem}.json").read_text())
        assert (record["width"], record["height"]) == (SIDE, SIDE)
        (face,) = record["faces"]
        assert face["box"] == [20, 20, 140, 150] and face["box_source"] == "bbox" and not face["box_clipped"]
        assert np.array(face["landmarks68"]).shape == (68, 3) and set(face["pose_deg"]) == {"pitch", "yaw", "roll"}
        vertices, colors, _ = read_obj(tmp_path / "out" / face["mesh"])
        assert vertices.shape == (face_count, 3) and ((colors >= 0) & (colors <= 1)).all()
        depth = cv2.imread(str(tmp_path / "out" / f"{stem}_depth.png"), cv2.IMREAD_UNCHANGED)
        assert depth.shape == (SIDE, SIDE) and depth.dtype == np.uint8
        assert cv2.imread(str(tmp_path / "out" / f"{stem}_vis.png")).shape == (SIDE, SIDE, 3)
    assert not [path for path in (tmp_path / "out").iterdir() if path.name.startswith(".")]


def test_boxes_file_and_ply_meshes(tmp_path, checkpoint, photos):
    boxes = {"image00000.jpg": [[10, 10, 80, 90], [70, 60, 150, 150]], "image00002.jpg": [[30, 30, 130, 140]]}
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    result = run("--checkpoint", checkpoint, photos / "image0000[02].jpg", "--out", tmp_path / "out",
                 "--boxes", tmp_path / "boxes.json", "--format", "ply")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "image00000.json").read_text())
    assert [face["mesh"] for face in record["faces"]] == ["image00000_0.ply", "image00000_1.ply"]
    assert record["faces"][1]["box"] == [70, 60, 150, 150] and record["faces"][1]["box_source"] == "boxes file"
    _, vertices, faces = read_ply(tmp_path / "out" / "image00000_1.ply")
    assert len(faces) == len(np.loadtxt(builtin_uv_dir() / "triangles.txt"))
    assert (faces["i"] < len(vertices)).all()
    assert not (tmp_path / "out" / "image00001.json").exists()


def test_a_bad_image_fails_alone(tmp_path, checkpoint, photos):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("image00000.jpg", "image00001.jpg"):
        (folder / name).write_bytes((photos / name).read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "empty.png").write_bytes(b"")
    (tmp_path / "no-images").mkdir()
    result = run("--checkpoint", checkpoint, folder, folder / "missing.jpg", tmp_path / "none*.jpg",
                 tmp_path / "no-images", "--out", tmp_path / "out", "--bbox", "20,20,140,150")
    assert result.exit_code == 1
    for name, problem in [("broken.jpg", "not a readable image"), ("empty.png", "not a readable image"),
                          ("missing.jpg", "image missing"), ("none*.jpg", "no file matches"),
                          ("no-images", "no image files")]:
        (line,) = error_lines(result, name)
        assert problem in line, line
    assert "5 of 7 inputs failed" in result.output
    assert sorted(path.name for path in (tmp_path / "out").glob("*.json")) == ["image00000.json", "image00001.json"]
    assert not list((tmp_path / "out").glob("broken*"))


def test_no_face_and_boxes_outside_the_image(tmp_path, checkpoint, photos):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((SIDE, SIDE, 3), 200, np.uint8))
    (tmp_path / "boxes.json").write_text(json.dumps({"blank.png": [], "image00000.jpg": [[200, 10, 300, 90]],
                                                     "image00001.jpg": [[-30, -30, 100, 100]]}))
    result = run("--checkpoint", checkpoint, blank, photos / "image00000.jpg", photos / "image00001.jpg",
                 photos / "image00002.jpg", "--out", tmp_path / "out", "--boxes", tmp_path / "boxes.json")
    assert result.exit_code == 1
    assert error_lines(result, "blank.png") == [f"{blank}: no face found"]
    (line,) = error_lines(result, "image00000.jpg")
    assert "lies outside the 160 x 160 image" in line
    assert error_lines(result, "image00002.jpg") == [f"{photos / 'image00002.jpg'}: no entry 'image00002.jpg' "
                                                     "in the boxes file"]
    (face,) = json.loads((tmp_path / "out" / "image00001.json").read_text())["faces"]
    assert face["box"] == [0, 0, 100, 100] and face["box_clipped"]
    assert "image00001.jpg: 1 face (1 box clipped to the image) ->" in result.output


def test_no_face_from_the_detector(tmp_path, checkpoint):
    try:
        cascades()
    except DetectorUnavailable as error:
        pytest.skip(str(error))
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((SIDE, SIDE, 3), 200, np.uint8))
    result = run("--checkpoint", checkpoint, blank, "--out", tmp_path / "out")
    assert result.exit_code == 1 and error_lines(result, "blank.png") == [f"{blank}: no face found"]


def test_without_a_detector_the_run_stops_with_one_line(tmp_path, checkpoint, photos, monkeypatch):
    def unavailable():
        raise DetectorUnavailable("face detection needs OpenCV's Haar cascades")

    monkeypatch.setattr(predict, "cascades", unavailable)
    result = run("--checkpoint", checkpoint, photos, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["Error: face detection needs OpenCV's Haar cascades"]


def test_checkpoint_problems_are_one_line(tmp_path, checkpoint, photos):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    state = torch.load(checkpoint, weights_only=True)
    config = json.loads(state["config"])
    state["config"] = json.dumps({**config, "base": 8})
    other = tmp_path / "other.pt"
    torch.save(state, other)
    for path, message in [(tmp_path / "missing.pt", "no such checkpoint"), (broken, "not a readable checkpoint"),
                          (other, "do not fit")]:
        result = run("--checkpoint", path, photos, "--out", tmp_path / "out", "--bbox", "0,0,50,50")
        assert result.exit_code == 1
        (line,) = result.output.strip().splitlines()
        assert str(path) in line and message in line
    (tmp_path / "boxes.json").write_text("{not json")
    result = run("--checkpoint", checkpoint, photos, "--out", tmp_path / "out", "--boxes", tmp_path / "boxes.json")
    assert result.exit_code == 1 and "not a readable JSON boxes file" in result.output
    (tmp_path / "boxes.json").write_text(json.dumps({"a.jpg": [[1, 2, 3]]}))
    result = run("--checkpoint", checkpoint, photos, "--out", tmp_path / "out", "--boxes", tmp_path / "boxes.json")
    assert result.exit_code == 1 and "the boxes of 'a.jpg' are not a list" in result.output


def test_usage_errors_exit_2(tmp_path, checkpoint, photos):
    out = ["--out", tmp_path / "out"]
    for args in ([photos, *out, "--bbox", "1,2,3"], [photos, *out, "--bbox", "5,5,1,1"],
                 [photos, *out, "--bbox", "0,0,9,9", "--boxes", tmp_path / "b.json"], [*out], [photos],
                 [photos, "--export-onnx", tmp_path / "m.onnx"], [photos, *out, "--format", "stl"]):
        result = run("--checkpoint", checkpoint, *args)
        assert result.exit_code == 2, (args, result.output)
    assert not (tmp_path / "out").exists()


def test_onnx_export_without_the_onnx_package_is_one_line(tmp_path, checkpoint, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    result = run("--export-onnx", tmp_path / "prn.onnx", "--checkpoint", checkpoint)
    assert result.exit_code == 1 and "pip install 'prn-toolkit[onnx]'" in result.output
    assert not (tmp_path / "prn.onnx").exists()


def test_onnx_export_matches_torch(tmp_path, checkpoint):
    onnxruntime = pytest.importorskip("onnxruntime")
    result = run("--export-onnx", tmp_path / "prn.onnx", "--checkpoint", checkpoint)
    assert result.exit_code == 0, result.output
    network, config = predict.load_trained(checkpoint)
    session = onnxruntime.InferenceSession(str(tmp_path / "prn.onnx"), providers=["CPUExecutionProvider"])
    assert [put.name for put in session.get_inputs()] == ["image"]
    images = torch.rand(3, 3, config.size, config.size, generator=torch.Generator().manual_seed(0))
    (exported,) = session.run(None, {"image": images.numpy()})
    with torch.no_grad():
        expected = network(images).numpy()
    assert exported.shape == (3, 3, config.size, config.size)
    np.testing.assert_allclose(exported, expected, atol=1e-4)
