from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
from conftest import real_path

from prn.model.prediction.detect import DetectorUnavailable, cascades, detect_faces, non_max_suppression
from prn.pipeline.datasets import read_image


@pytest.fixture(scope="module")
def detector():
    try:
        cascades()
    except DetectorUnavailable as error:
        pytest.skip(str(error))


def landmark_box(mat_path):
    """(low (2,), high (2,)) corners of the 68 ground-truth landmarks of an AFLW2000-3D-format sample."""
    points = scipy.io.loadmat(mat_path)["pt3d_68"][:2].T
    return points.min(0), points.max(0)


def finds(boxes, low, high):
    """Does a box hold the landmarks' centre, with its own centre inside the landmarks' box?"""
    centre = (low + high) / 2
    return any((box[:2] <= centre).all() and (centre <= box[2:]).all()
               and (low <= (box[:2] + box[2:]) / 2).all() and ((box[:2] + box[2:]) / 2 <= high).all()
               for box in boxes)


@pytest.fixture(scope="module")
def synthetic_faces(tmp_path_factory, detector):
    """16 AFLW2000-3D-format photos of the built-in model, no occluders: [(image, landmark box, detected boxes)]."""
    from prn.pipeline.synthetic.builtin import builtin_model_dir
    from prn.pipeline.synthetic.synth import SynthSettings, synthesize

    out = tmp_path_factory.mktemp("detect-synth")
    synthesize(SynthSettings(model_dir=builtin_model_dir(), out_dir=out, layout="aflw2000", seed=0,
                             occluder_probability=0.0), 16, progress=False)
    images = [read_image(path) for path in sorted((out / "AFLW2000").glob("*.jpg"))]
    return [(image, landmark_box(path.with_suffix(".mat")), detect_faces(image))
            for image, path in zip(images, sorted((out / "AFLW2000").glob("*.jpg")))]


def test_non_max_suppression_keeps_earlier_boxes_and_drops_nested_ones():
    boxes = np.array([[0, 0, 100, 100],      # kept
                      [10, 10, 110, 110],    # overlaps the first: dropped
                      [30, 30, 60, 60],      # nested in the first: dropped (IoU alone would keep it)
                      [200, 0, 300, 100],    # apart: kept
                      [95, 0, 195, 100]])    # touches both kept ones by 5 %: kept
    assert non_max_suppression(boxes).tolist() == [0, 3, 4]
    assert non_max_suppression(np.zeros((0, 4))).tolist() == []


def test_faces_are_found_in_synthetic_aflw_photos(synthetic_faces):
    found = [finds(boxes, *box) for _, box, boxes in synthetic_faces]
    # Measured with OpenCV 4.14: 11 of these 16 (of 200 samples with occluders: 64 %; 77 % at |yaw| < 30).
    assert sum(found) >= 9, found


def test_a_blank_image_has_no_face(detector):
    assert detect_faces(np.full((300, 400, 3), 128, np.uint8)).shape == (0, 4)


def test_every_face_of_a_group_photo_is_found(synthetic_faces):
    alone = [(image, box) for image, box, boxes in synthetic_faces if finds(boxes, *box)][:3]
    assert len(alone) == 3
    width = alone[0][0].shape[1]
    group = np.hstack([image for image, _ in alone])
    boxes = detect_faces(group)
    for k, (_, (low, high)) in enumerate(alone):
        assert finds(boxes, low + (k * width, 0), high + (k * width, 0)), (k, boxes)
    assert len(boxes) <= 4


def test_boxes_are_in_the_original_pixels_of_large_photos(synthetic_faces):
    """Photos above SEARCH_SIDE are searched downscaled; the boxes come back at full size."""
    image, (low, high) = next((image, box) for image, box, boxes in synthetic_faces if finds(boxes, *box))
    large = cv2.resize(image, None, fx=2.5, fy=2.5, interpolation=cv2.INTER_LINEAR)
    assert finds(detect_faces(large), low * 2.5, high * 2.5)


def test_real_aflw_photos(detector):
    folder = real_path("AFLW2000")
    paths = sorted(folder.glob("*.jpg"))
    found = [finds(detect_faces(read_image(path)), *landmark_box(path.with_suffix(".mat"))) for path in paths]
    # Measured with OpenCV 4.14: 14 of 16 (missed: a profile and a face behind glasses in a car).
    assert sum(found) >= 13, dict(zip((Path(p).name for p in paths), found))
    two = np.hstack([read_image(paths[0]), read_image(paths[1])])
    assert len(detect_faces(two)) == 2
