import importlib.util
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
import scipy.io
from conftest import real_path

from prn.model.prediction.haar import (
    cascades,
    detect_faces,
    intersection_over_union,
    non_max_suppression,
)
from prn.pipeline.datasets import read_image
from prn.rendering.util.errors import DetectorUnavailable

# Faces of the photos that packages ship, [x0, y0, x1, y1] read off by eye (docs/prediction.md).
GRACE_HOPPER_FACE = (172, 122, 360, 310)
SKIMAGE_FACES = {"astronaut": (184, 73, 265, 154), "camera": (186, 108, 270, 192)}
SKIMAGE_WITHOUT_PEOPLE = ("coffee", "chelsea", "text", "page", "motorcycle_left", "rocket", "horse", "color",
                          "retina", "hubble_deep_field", "coins", "moon", "brick", "grass", "gravel", "clock_motion",
                          "ihc", "cell", "logo")


@pytest.fixture(scope="module")
def detector():
    try:
        cascades()
    except DetectorUnavailable as error:
        pytest.skip(str(error))


def landmark_box(mat_path):
    """(4,) [x0, y0, x1, y1]: the box of the 68 ground-truth landmarks of an AFLW2000-3D-format sample."""
    points = scipy.io.loadmat(mat_path)["pt3d_68"][:2].T
    return np.hstack([points.min(0), points.max(0)])


def matches(boxes, faces):
    """(k, m) bool: box k found face m, i.e. their intersection over union is at least 0.3."""
    boxes, faces = np.asarray(boxes, float).reshape(-1, 4), np.asarray(faces, float).reshape(-1, 4)
    if not len(boxes) or not len(faces):
        return np.zeros((len(boxes), len(faces)), bool)
    return intersection_over_union(boxes, faces) >= 0.3


def finds(boxes, face):
    return bool(matches(boxes, face).any())


def false_boxes(boxes, faces=()):
    """The number of boxes that found none of the faces."""
    return int((~matches(boxes, faces).any(axis=1)).sum())


def rgb(path):
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def scaled(image, box, scale, mirrored=False):
    """(image, face box) scaled by `scale`, and mirrored left to right."""
    image = cv2.resize(image, None, fx=scale, fy=scale,
                       interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR) if scale != 1 else image
    box = np.asarray(box, float) * scale
    if mirrored:
        image, box = np.ascontiguousarray(image[:, ::-1]), np.array([image.shape[1] - box[2], box[1],
                                                                     image.shape[1] - box[0], box[3]])
    return image, box


@pytest.fixture(scope="module")
def synthetic_faces(tmp_path_factory, detector):
    """16 AFLW2000-3D-format photos of the built-in model, no occluders: [(image, landmark box, detected boxes)]."""
    from prn.pipeline.synthetic.builtin import builtin_face_model_dir
    from prn.pipeline.synthetic.synth import SynthSettings, synthesize

    out = tmp_path_factory.mktemp("detect-synth")
    synthesize(SynthSettings(face_model_dir=builtin_face_model_dir(), out_dir=out, layout="aflw2000", seed=0,
                             occluder_probability=0.0, world="face"), 16, progress=False)
    paths = sorted((out / "AFLW2000").glob("*.jpg"))
    return [(image, landmark_box(path.with_suffix(".mat")), detect_faces(image))
            for image, path in zip((read_image(path) for path in paths), paths)]


@pytest.fixture(scope="module")
def real_photos(detector):
    """The 16 real AFLW2000-3D photos: {name: (image, landmark box)}."""
    return {path.stem: (read_image(path), landmark_box(path.with_suffix(".mat")))
            for path in sorted(real_path("AFLW2000").glob("*.jpg"))}


def test_non_max_suppression_keeps_earlier_boxes_and_drops_nested_ones():
    boxes = np.array([[0, 0, 100, 100],      # kept
                      [10, 10, 110, 110],    # overlaps the first: dropped
                      [30, 30, 60, 60],      # nested in the first: dropped (IoU alone would keep it)
                      [200, 0, 300, 100],    # apart: kept
                      [95, 0, 195, 100]])    # touches both kept ones by 5 %: kept
    assert non_max_suppression(boxes).tolist() == [0, 3, 4]
    assert non_max_suppression(np.zeros((0, 4))).tolist() == []


def test_faces_are_found_in_synthetic_aflw_photos(synthetic_faces):
    found = [finds(boxes, box) for _, box, boxes in synthetic_faces]
    # Measured with OpenCV 4.14: 11 of these 16 with and without verifying candidates (of 100 with
    # occluders: 58 verified, 59 not; 64 and 57 searched at 300 px as prn-predict does).
    assert sum(found) >= 9, found
    assert sum(false_boxes(boxes, box) for _, box, boxes in synthetic_faces) == 0  # 2 without verification


def test_a_blank_image_has_no_face(detector):
    assert detect_faces(np.full((300, 400, 3), 128, np.uint8)).shape == (0, 4)


def test_every_face_of_a_group_photo_is_found(synthetic_faces):
    alone = [(image, box) for image, box, boxes in synthetic_faces if finds(boxes, box)][:3]
    assert len(alone) == 3
    width = alone[0][0].shape[1]
    group = np.hstack([image for image, _ in alone])
    boxes = detect_faces(group)
    for k, (_, box) in enumerate(alone):
        assert finds(boxes, box + (k * width, 0, k * width, 0)), (k, boxes)
    assert len(boxes) <= 4


def test_boxes_are_in_the_original_pixels_of_large_photos(synthetic_faces):
    """Photos above SEARCH_SIDE are searched downscaled; the boxes come back at full size."""
    image, box = next((image, box) for image, box, boxes in synthetic_faces if finds(boxes, box))
    large = cv2.resize(image, None, fx=2.5, fy=2.5, interpolation=cv2.INTER_LINEAR)
    assert finds(detect_faces(large), box * 2.5)


def test_the_boxes_do_not_depend_on_opencv_threads(synthetic_faces):
    group = np.hstack([image for image, _, _ in synthetic_faces[:4]])
    threads = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        alone = detect_faces(group)
    finally:
        cv2.setNumThreads(threads)
    assert detect_faces(group).tobytes() == alone.tobytes()


def test_real_aflw_photos(real_photos):
    found = {name: finds(detect_faces(image), box) for name, (image, box) in real_photos.items()}
    # Measured with OpenCV 4.14: 15 of 16 (missed: a face behind glasses in a car); 14 before candidates
    # were verified (the profile with a raised arm was missed too).
    assert sum(found.values()) >= 15, found
    assert sum(false_boxes(detect_faces(image), box) for image, box in real_photos.values()) == 0
    (first, _), (second, _) = list(real_photos.values())[:2]
    assert len(detect_faces(np.hstack([first, second]))) == 2


def test_real_aflw_photos_mirrored(real_photos):
    mirrored = [scaled(image, box, 1, mirrored=True) for image, box in real_photos.values()]
    found = [finds(detect_faces(image), box) for image, box in mirrored]
    assert sum(found) >= 15, found  # measured: 16 of 16 (15 before candidates were verified)
    assert sum(false_boxes(detect_faces(image), box) for image, box in mirrored) == 0


def test_a_raised_bare_arm_is_not_a_face(real_photos):
    """image00251: a profile with a bare arm raised behind the head, which the profile cascade took for a face."""
    image, box = real_photos["image00251"]
    for scale in (0.5, 0.75, 1.5):
        for mirrored in (False, True):
            photo, face = scaled(image, box, scale, mirrored)
            boxes = detect_faces(photo)
            assert false_boxes(boxes, face) == 0, (scale, mirrored, boxes, face)
            assert finds(boxes, face), (scale, mirrored, boxes, face)


def test_text_is_not_a_face(detector):
    """matplotlib's logo: its lettering, enlarged, was taken for faces."""
    logo = rgb(Path(matplotlib.get_data_path()) / "sample_data" / "logo2.png")
    for scale in (1.5, 2.0):
        assert len(detect_faces(cv2.resize(logo, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR))) == 0, scale


def test_grace_hopper_has_one_face(detector):
    boxes = detect_faces(rgb(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    assert len(boxes) == 1 and finds(boxes, GRACE_HOPPER_FACE), boxes


def test_scikit_image_photos(detector):
    """scikit-image's sample photos, read as files where they are installed (scikit-image is not a dependency)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None:
        pytest.skip("scikit-image's sample photos are not installed")
    folder = Path(spec.origin).parent / "data"
    for name, face in SKIMAGE_FACES.items():
        boxes = detect_faces(rgb(folder / f"{name}.png"))
        assert len(boxes) == 1 and finds(boxes, face), (name, boxes)
    # Before candidates were verified: 6 boxes on the coins' heads, 1 on the cells.
    found = {name: len(detect_faces(rgb(next(folder.glob(f"{name}.*"))))) for name in SKIMAGE_WITHOUT_PEOPLE}
    assert not any(found.values()), found
