"""The overview picture: per photo, a face crop with its predicted landmarks, the position map, and the dense face.

`prn-demo` writes it for a synthetic test photo and a real one; the README shows it.
"""

import cv2
import numpy as np

from prn.model.prediction.predictor import Predictor
from prn.pipeline.datasets import read_image
from prn.rendering.raster.pictures import draw_landmarks, posmap_picture, shaded_mesh
from prn.rendering.util.errors import InputError

BACKGROUND = 24  # grey level behind the shaded face


def overview_picture(predictor: Predictor, photos, scale=2) -> np.ndarray:
    """(rows * 256 * scale, 3 * 256 * scale, 3) uint8 RGB, a row per photo: crop with landmarks | position map |
    shaded face.

    photos: [(path, box)], box [x0, y0, x1, y1] pixels of the face, or None
    for the detector's first face.
    """
    return np.vstack([_overview_row(predictor, path, box, scale) for path, box in photos])


def _overview_row(predictor, photo_path, box, scale):
    prepared = predictor.prepare(read_image(photo_path), None if box is None else [box])
    if not len(prepared.boxes):
        raise InputError(f"{photo_path}: no face found for the overview picture")
    posmap = predictor.posmaps([prepared])[0][0]
    uv = predictor.uv
    side = posmap.shape[0] * scale
    crop = cv2.resize(prepared.crops[0], (side, side), interpolation=cv2.INTER_CUBIC)
    landmarks, dense = predictor.read(posmap[None])
    draw_landmarks(crop, landmarks[0], size=scale + 1, scale=scale)
    covered = np.zeros(posmap.shape[:2], bool)
    covered.flat[uv.face_ind] = True
    uv_picture = cv2.resize(posmap_picture(posmap, covered), (side, side), interpolation=cv2.INTER_NEAREST)
    face = shaded_mesh(dense[0] * scale, uv.triangles, np.full((side, side, 3), BACKGROUND, np.uint8))
    return np.hstack([crop, uv_picture, face])
