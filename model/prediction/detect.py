"""Face boxes in photos, from the detector asked for: RetinaFace (the default, retina.py) or OpenCV's Haar
cascades (haar.py).

Both give boxes placed and sized like the box of each face's 68 landmarks,
the box the crop rule expects (docs/formats.md section 6), in the pixels of
the image given. docs/prediction.md compares the two.
"""

import cv2
import numpy as np

from prn.model.prediction import haar, retina
from prn.rendering.util.errors import InputError

DETECTORS = ("retinaface", "haar")
DEFAULT_DETECTOR = "retinaface"
# Haar searches faces down to MIN_FACE_FRACTION of the shorter side with a
# window of at least 24 pixels: an image whose shorter side is above
# 24 / MIN_FACE_FRACTION (300 px) is searched downscaled to it, where the
# smallest face searched is that window. Recall on AFLW2000 photos (450 x 450)
# did not drop (docs/prediction.md); the search takes about 0.7 times as long.
HAAR_SHORT_SIDE = round(24 / haar.MIN_FACE_FRACTION)


def check_detector(detector):
    """InputError for an unknown detector name; DetectorUnavailable when it cannot run here (loads it)."""
    if detector not in DETECTORS:
        raise InputError(f"unknown detector '{detector}'; expected one of {', '.join(DETECTORS)}")
    if detector == "haar":
        haar.cascades()
    else:
        retina.session()


def detect_faces(image, detector=DEFAULT_DETECTOR) -> np.ndarray:
    """Face boxes (k, 4) float64 [x0, y0, x1, y1] in pixels of an RGB uint8 image (h, w, 3); k may be 0."""
    check_detector(detector)
    if detector == "retinaface":
        return retina.face_boxes(image)
    height, width = image.shape[:2]
    zoom = HAAR_SHORT_SIDE / min(height, width)
    if zoom >= 1.0:
        return haar.detect_faces(image)
    size = (max(1, round(width * zoom)), max(1, round(height * zoom)))
    found = haar.detect_faces(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    return found * np.tile([width / size[0], height / size[1]], 2)
