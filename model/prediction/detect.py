"""Face boxes in photos from OpenCV's bundled Haar cascades: frontal faces, and profiles facing either way.

Nothing is downloaded: the cascades are the XML files that the opencv-python
wheels ship in `cv2.data.haarcascades`. OpenCV 5 no longer ships them (nor
`cv2.CascadeClassifier`); there `detect_faces` raises DetectorUnavailable,
which says so, and faces must be given as boxes.

The profile cascade only knows faces turned one way, so it also runs on the
mirrored image. Boxes of the cascades that cover the same face are merged by
non-maximum suppression, the frontal ones first (they are the tighter fit).

Haar boxes are larger than the boxes the original PRN's crop rule for
detector boxes was made for (docs/formats.md section 6): their mean side is 1.16
(synthetic faces) to 1.19 (real AFLW2000 photos) times that of the 68
landmarks' box. They are returned shrunk about their centre by BOX_SCALE, to
about the landmarks' box; with the unscaled boxes a tiny PRN's landmark error
on synthetic photos was 13.3 % (2D, bbox), with the scaled ones 10.4 %.
"""

import functools
from pathlib import Path

import cv2
import numpy as np

from prn.rendering.util.errors import InputError

FRONTAL_CASCADES = ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml")
PROFILE_CASCADE = "haarcascade_profileface.xml"
# Larger photos are searched downscaled to this longest side: faces of interest
# stay far above the cascades' 24-pixel window and the search time stays bounded.
SEARCH_SIDE = 800
MIN_FACE_FRACTION = 0.08     # smallest face searched, as a fraction of the shorter image side
MIN_NEIGHBORS = 5            # detections a face needs at nearby positions and scales
SCALE_STEP = 1.1             # ratio between searched window sizes
MERGE_OVERLAP = 0.3          # boxes overlapping more (intersection / smaller area) are one face
BOX_SCALE = 0.85             # Haar box side -> about the 68 landmarks' box side (module doc)


class DetectorUnavailable(InputError):
    """This OpenCV build has no Haar cascades (OpenCV 5), so faces must be given as boxes."""


@functools.lru_cache(maxsize=1)
def cascades():
    """(frontal classifiers, profile classifier), loaded once per process; DetectorUnavailable without them."""
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not hasattr(cv2, "CascadeClassifier") or folder is None:
        raise DetectorUnavailable(
            f"face detection needs OpenCV's Haar cascades, which OpenCV {cv2.__version__} does not ship: "
            "give faces with --bbox / --boxes (or use OpenCV 4.x)")
    classifiers = []
    for name in (*FRONTAL_CASCADES, PROFILE_CASCADE):
        classifier = cv2.CascadeClassifier(str(Path(folder) / name))
        if classifier.empty():
            raise DetectorUnavailable(f"{Path(folder) / name}: missing or unreadable Haar cascade; "
                                      "give faces with --bbox / --boxes")
        classifiers.append(classifier)
    return classifiers[:-1], classifiers[-1]


def _search(classifier, gray, min_side):
    """(k, 4) float64 boxes [x0, y0, x1, y1] of one cascade in a grayscale image."""
    found = classifier.detectMultiScale(gray, scaleFactor=SCALE_STEP, minNeighbors=MIN_NEIGHBORS,
                                        minSize=(min_side, min_side))
    boxes = np.asarray(found, dtype=np.float64).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def non_max_suppression(boxes, overlap=MERGE_OVERLAP) -> np.ndarray:
    """Indices of the boxes (k, 4) [x0, y0, x1, y1] to keep, earlier boxes first.

    A box is dropped when it overlaps a kept one by more than `overlap` of the
    smaller box's area, so a box nested inside a larger one (a part of a face
    found as a face) goes too, where intersection over union would keep it.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    kept = []
    for index, box in enumerate(boxes):
        if kept:
            others = boxes[kept]
            sides = np.minimum(others[:, 2:], box[2:]) - np.maximum(others[:, :2], box[:2])
            shared = np.prod(np.clip(sides, 0, None), axis=1)
            if (shared > overlap * np.minimum(areas[kept], areas[index])).any():
                continue
        kept.append(index)
    return np.array(kept, dtype=np.int64)


def detect_faces(image) -> np.ndarray:
    """Face boxes (k, 4) float64 [x0, y0, x1, y1] in pixels of an RGB uint8 image (h, w, 3); k may be 0.

    Frontal detections first, then profiles; within a cascade the larger faces
    first. Each box is the cascade's, scaled by BOX_SCALE about its centre.
    """
    frontal, profile = cascades()
    zoom = min(1.0, SEARCH_SIDE / max(image.shape[:2]))
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if zoom < 1.0:
        gray = cv2.resize(gray, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_AREA)
    min_side = max(24, round(MIN_FACE_FRACTION * min(gray.shape)))
    found = [_search(classifier, gray, min_side) for classifier in frontal]
    found.append(_search(profile, gray, min_side))
    mirrored = _search(profile, cv2.flip(gray, 1), min_side)
    found.append(np.column_stack([gray.shape[1] - mirrored[:, 2], mirrored[:, 1],
                                  gray.shape[1] - mirrored[:, 0], mirrored[:, 3]]))
    boxes = np.concatenate([boxes[np.argsort(-np.prod(boxes[:, 2:] - boxes[:, :2], axis=1), kind="stable")]
                            for boxes in found])
    boxes = boxes[non_max_suppression(boxes)] / zoom
    centres, halves = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]) / 2
    return np.hstack([centres - BOX_SCALE * halves, centres + BOX_SCALE * halves])
