"""The overview picture: a face crop with its predicted landmarks, the position map, and the dense face.

`prn-demo` writes it for its first test photo; the README shows it.
"""

import cv2
import numpy as np

from prn.model.inference import predict_posmaps
from prn.model.prediction.predictor import Predictor, prepare_photo
from prn.rendering.raster.rasterizer import render_colors
from prn.rendering.raster.shading import vertex_normals

LANDMARK_COLOUR = (40, 255, 40)   # RGB
MESH_COLOUR = np.array([205, 215, 235], np.float32)


def posmap_picture(posmap, face_ind) -> np.ndarray:
    """(256, 256, 3) uint8: x, y, z of the face pixels as red, green, blue, each stretched over the face."""
    flat = posmap.reshape(-1, 3)
    face = flat[face_ind]
    low, high = face.min(0), face.max(0)
    picture = np.zeros_like(flat, dtype=np.uint8)
    picture[face_ind] = np.rint(255 * (face - low) / np.maximum(high - low, 1e-6)).astype(np.uint8)
    return picture.reshape(posmap.shape)


def mesh_picture(vertices, triangles, size) -> np.ndarray:
    """(size, size, 3) uint8: the mesh (crop coordinates, z towards the viewer) shaded by a frontal light."""
    # vertex_normals expects y up for outward normals; the crop's y runs down.
    facing = np.clip(vertex_normals(vertices * (1, -1, 1), triangles)[:, 2:3], 0, 1)
    colours = MESH_COLOUR * (0.15 + 0.85 * facing)
    rendered = render_colors(vertices, triangles, np.hstack([colours, np.ones_like(facing)]), size, size)
    background = np.full((size, size, 3), 24, np.float32)
    alpha = rendered[..., 3:]
    return np.clip(background * (1 - alpha) + rendered[..., :3] * alpha, 0, 255).astype(np.uint8)


def overview_picture(predictor: Predictor, photo_path, box, scale=2) -> np.ndarray:
    """(256 * scale, 3 * 256 * scale, 3) uint8 RGB: crop with landmarks | position map | shaded face."""
    photo = prepare_photo(photo_path, photo_path.stem, boxes=np.array([box], np.float64), box_source="boxes file")
    posmap = predict_posmaps(predictor.network, predictor.config, photo.crops, device=predictor.device)[0]
    uv = predictor.uv
    side = posmap.shape[0] * scale
    crop = cv2.resize(photo.crops[0], (side, side), interpolation=cv2.INTER_CUBIC)
    for x, y in posmap[uv.kpt[1], uv.kpt[0], :2] * scale:
        cv2.circle(crop, (int(round(x)), int(round(y))), scale + 1, LANDMARK_COLOUR, -1, cv2.LINE_AA)
    uv_picture = cv2.resize(posmap_picture(posmap, uv.face_ind), (side, side), interpolation=cv2.INTER_NEAREST)
    dense = posmap.reshape(-1, 3)[uv.face_ind].astype(np.float64) * scale
    face = mesh_picture(dense, uv.triangles, side)
    return np.hstack([crop, uv_picture, face])
