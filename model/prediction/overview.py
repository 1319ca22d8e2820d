"""The overview picture: a face crop with its predicted landmarks, the position map, and the dense face.

`prn-demo` writes it for its first test photo; the README shows it.
"""

import cv2
import numpy as np

from prn.model.prediction.predictor import Predictor
from prn.pipeline.datasets import read_image
from prn.rendering.raster.pictures import draw_landmarks, posmap_picture, shaded_mesh

BACKGROUND = 24  # grey level behind the shaded face


def overview_picture(predictor: Predictor, photo_path, box, scale=2) -> np.ndarray:
    """(256 * scale, 3 * 256 * scale, 3) uint8 RGB: crop with landmarks | position map | shaded face.

    box [x0, y0, x1, y1] pixels: the face in the photo at photo_path.
    """
    prepared = predictor.prepare(read_image(photo_path), [box])
    posmap = predictor.posmaps([prepared])[0][0]
    uv = predictor.uv
    side = posmap.shape[0] * scale
    crop = cv2.resize(prepared.crops[0], (side, side), interpolation=cv2.INTER_CUBIC)
    draw_landmarks(crop, posmap[uv.kpt[1], uv.kpt[0]], size=scale + 1, scale=scale)
    covered = np.zeros(posmap.shape[:2], bool)
    covered.flat[uv.face_ind] = True
    uv_picture = cv2.resize(posmap_picture(posmap, covered), (side, side), interpolation=cv2.INTER_NEAREST)
    dense = posmap.reshape(-1, 3)[uv.face_ind] * scale
    face = shaded_mesh(dense, uv.triangles, np.full((side, side, 3), BACKGROUND, np.uint8))
    return np.hstack([crop, uv_picture, face])
