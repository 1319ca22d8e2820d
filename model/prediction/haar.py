"""Face boxes in photos from OpenCV's bundled Haar cascades (`--detector haar`): frontal faces, and profiles.

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

A cascade alone also fires on face-like things: a bare shoulder, hair, text,
heads on coins. Each cascade's hits are therefore only candidates, and a
candidate is kept as a face when something independent of its own cascade
confirms it (docs/prediction.md gives the measurements behind these rules):
a frontal candidate when OpenCV's left- or right-eye cascade finds an eye in
its upper part, or when a profile candidate covers the same place; a profile
candidate when a frontal candidate covers the same place, or when it is
strong (PROFILE_STRONG detections at nearby positions and scales). Frontal
faces behind dark glasses are kept by the profile cascade's agreement,
profiles by their strength or a frontal hit.
"""

import threading
from pathlib import Path

import cv2
import numpy as np

from prn.rendering.util.errors import DetectorUnavailable

FRONTAL_CASCADES = ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml")
PROFILE_CASCADE = "haarcascade_profileface.xml"
# The split-eye cascades: on the measured photos they found no eye in a false
# frontal candidate, where haarcascade_eye.xml found some, at the same recall.
EYE_CASCADES = ("haarcascade_lefteye_2splits.xml", "haarcascade_righteye_2splits.xml")
# Larger photos are searched downscaled to this longest side: faces of interest
# stay far above the cascades' 24-pixel window and the search time stays bounded.
SEARCH_SIDE = 800
MIN_FACE_FRACTION = 0.08     # smallest face searched, as a fraction of the shorter image side
MIN_NEIGHBORS = 2            # a candidate: more than this many detections at nearby positions and scales
SCALE_STEP = 1.1             # ratio between searched window sizes
PROFILE_STRONG = 12          # detections that make a profile candidate a face on its own
AGREEMENT = 0.3              # intersection over union at which a frontal and a profile candidate agree
EYE_BAND = 0.6               # eyes are searched in this top fraction of a frontal candidate's box
EYE_SEARCH_SIDE = 80         # narrower candidates are enlarged to this width for the eye search (20-px eye window)
EYE_NEIGHBORS = 3            # minNeighbors of the eye search
MERGE_OVERLAP = 0.3          # boxes overlapping more (intersection / smaller area) are one face
BOX_SCALE = 0.85             # Haar box side -> about the 68 landmarks' box side (module doc)


_loaded = threading.local()


def cascades():
    """(frontal classifiers, profile classifier, eye classifiers), loaded once per thread.

    A CascadeClassifier keeps the image it searches in itself, so threads
    searching at once each need their own. DetectorUnavailable where this
    OpenCV has no Haar cascades.
    """
    if not hasattr(_loaded, "cascades"):
        _loaded.cascades = _load_cascades()
    return _loaded.cascades


def _load_cascades():
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not hasattr(cv2, "CascadeClassifier") or folder is None:
        raise DetectorUnavailable(
            f"face detection needs OpenCV's Haar cascades, which OpenCV {cv2.__version__} does not ship: "
            "give faces with --bbox / --boxes (or use OpenCV 4.x)")
    classifiers = []
    for name in (*FRONTAL_CASCADES, PROFILE_CASCADE, *EYE_CASCADES):
        classifier = cv2.CascadeClassifier(str(Path(folder) / name))
        if classifier.empty():
            raise DetectorUnavailable(f"{Path(folder) / name}: missing or unreadable Haar cascade; "
                                      "give faces with --bbox / --boxes")
        classifiers.append(classifier)
    frontal = len(FRONTAL_CASCADES)
    return classifiers[:frontal], classifiers[frontal], classifiers[frontal + 1:]


def candidates(classifier, gray, min_side, mirrored=False):
    """Candidates of one cascade in a grayscale image: boxes (k, 4) float64 [x0, y0, x1, y1], detections (k,).

    Larger boxes first, ties by position: the order OpenCV returns them in
    depends on its threads. `mirrored` searches the mirror image and returns
    the boxes in the unmirrored image.
    """
    found, detections = classifier.detectMultiScale2(cv2.flip(gray, 1) if mirrored else gray,
                                                     scaleFactor=SCALE_STEP, minNeighbors=MIN_NEIGHBORS,
                                                     minSize=(min_side, min_side))
    boxes = np.asarray(found, dtype=np.float64).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    if mirrored:
        boxes[:, [0, 2]] = gray.shape[1] - boxes[:, [2, 0]]
    order = np.lexsort((boxes[:, 1], boxes[:, 0], -np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)))
    return boxes[order], np.asarray(detections, dtype=np.int64).reshape(-1)[order]


def intersection_over_union(boxes, others) -> np.ndarray:
    """(k, m) intersection over union of boxes (k, 4) with others (m, 4), both [x0, y0, x1, y1]."""
    sides = (np.minimum(boxes[:, None, 2:], others[None, :, 2:])
             - np.maximum(boxes[:, None, :2], others[None, :, :2]))
    shared = np.prod(np.clip(sides, 0, None), axis=2)
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    other_areas = np.prod(others[:, 2:] - others[:, :2], axis=1)
    return shared / (areas[:, None] + other_areas[None, :] - shared)


def has_eye(eyes, gray, box) -> bool:
    """Does one of the eye cascades find an eye in the top EYE_BAND of the box [x0, y0, x1, y1] of `gray`?"""
    x0, y0, x1, y1 = np.round(box).astype(int)
    band = gray[max(y0, 0):y0 + round(EYE_BAND * (y1 - y0)), max(x0, 0):x1]
    if band.shape[1] < EYE_SEARCH_SIDE:
        zoom = EYE_SEARCH_SIDE / band.shape[1]
        band = cv2.resize(band, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_LINEAR)
    side = band.shape[1]
    return any(len(eye.detectMultiScale(band, scaleFactor=SCALE_STEP, minNeighbors=EYE_NEIGHBORS,
                                        minSize=(side // 10, side // 10), maxSize=(side // 2, side // 2)))
               for eye in eyes)


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


def search_image(image):
    """(grayscale uint8 image searched, its zoom from the RGB image (h, w, 3), smallest face side searched in it).

    The searched image is at most SEARCH_SIDE long.
    """
    zoom = min(1.0, SEARCH_SIDE / max(image.shape[:2]))
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if zoom < 1.0:
        gray = cv2.resize(gray, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_AREA)
    return gray, zoom, max(24, round(MIN_FACE_FRACTION * min(gray.shape)))


def detect_faces(image) -> np.ndarray:
    """Face boxes (k, 4) float64 [x0, y0, x1, y1] in pixels of an RGB uint8 image (h, w, 3); k may be 0.

    Frontal faces first, then profiles; within a cascade the larger faces
    first. Each box is a confirmed candidate's (module doc), scaled by
    BOX_SCALE about its centre.
    """
    frontal, profile, eyes = cascades()
    gray, zoom, min_side = search_image(image)
    fronts = [candidates(classifier, gray, min_side) for classifier in frontal]
    profiles = [candidates(profile, gray, min_side, mirrored) for mirrored in (False, True)]
    front_boxes = np.concatenate([boxes for boxes, _ in fronts])
    profile_boxes = np.concatenate([boxes for boxes, _ in profiles])
    profile_detections = np.concatenate([detections for _, detections in profiles])
    agree = intersection_over_union(front_boxes, profile_boxes) > AGREEMENT
    front_kept = np.array([agrees or has_eye(eyes, gray, box) for box, agrees in zip(front_boxes, agree.any(axis=1))],
                          dtype=bool)
    profile_kept = agree.any(axis=0) | (profile_detections >= PROFILE_STRONG)
    boxes = np.concatenate([front_boxes[front_kept], profile_boxes[profile_kept]])
    boxes = boxes[non_max_suppression(boxes)] / zoom
    centres, halves = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]) / 2
    return np.hstack([centres - BOX_SCALE * halves, centres + BOX_SCALE * halves])
