"""Face boxes [x0, y0, x1, y1] in image pixels: read from a boxes file, checked, clipped, and cropped.

A box gives a crop as the original PRN crops a detector box (docs/formats.md
section 6: `old = (w + h) / 2`, centre moved down by 0.14 old, side 1.58 old).
"""

import json
from pathlib import Path

import cv2
import numpy as np

from prn.rendering.geometry.crop import CROP_SIZE as CROP
from prn.rendering.geometry.crop import crop_box, crop_to_image, crop_transform, detector_crop, similarity_scale
from prn.rendering.util.errors import InputError, first_line


def read_boxes_file(path) -> dict:
    """{image file name: (k, 4) float64 boxes [x0, y0, x1, y1]} from a JSON mapping name -> list of boxes."""
    try:
        listed = json.loads(Path(path).read_text())
    except RecursionError:
        raise InputError(f"{path}: not a readable JSON boxes file (nested too deep)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a readable JSON boxes file ({first_line(error)})") from None
    if not isinstance(listed, dict):
        raise InputError(f"{path}: expected a mapping image file name -> list of [x0, y0, x1, y1]")
    boxes = {name: _box_list(entries) for name, entries in listed.items()}
    for name, values in boxes.items():
        if values is None:
            raise InputError(f"{path}: the boxes of '{name}' are not a list of [x0, y0, x1, y1]")
    return boxes


def _box_list(entries):
    """(k, 4) float64 from a JSON list of [x0, y0, x1, y1] lists, or None when it is not one."""
    if not isinstance(entries, list) or not all(isinstance(box, list) and len(box) == 4 for box in entries):
        return None
    try:
        values = np.array(entries, dtype=np.float64).reshape(-1, 4)
    except (TypeError, ValueError):
        return None
    return values if np.isfinite(values).all() else None


def as_boxes(boxes) -> np.ndarray:
    """(k, 4) float64 from an array-like of boxes [x0, y0, x1, y1] (k may be 0); InputError otherwise."""
    try:
        values = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("boxes must be numbers: a (k, 4) array of [x0, y0, x1, y1]") from None
    if values.size == 0:
        return values.reshape(0, 4)
    if values.ndim != 2 or values.shape[1] != 4:
        raise InputError(f"boxes must be a (k, 4) array of [x0, y0, x1, y1], got shape {values.shape}")
    bad = np.flatnonzero(~np.isfinite(values).all(1))
    if len(bad):
        raise InputError(f"box {bad[0]} {values[bad[0]].tolist()} is not finite")
    return values


MIN_BOX_SIDE = 8.0   # px: a smaller box holds no face the network can read
# A reframed crop's side over its predicted landmarks' box: 1.43, not the training crops' 1.5, since the
# landmarks of a one-view pass over a detector crop spread about 5 % wider than the true ones (chosen on the
# synthetic validation photos, docs/prediction.md, "Reframing").
REFRAME_SCALE = 1.43


def clip_box(box, width, height) -> np.ndarray:
    """A box [x0, y0, x1, y1] clipped to a width x height image; InputError when it is empty, wholly outside, or
    under MIN_BOX_SIDE pixels wide or high inside the image."""
    x0, y0, x1, y1 = (float(value) for value in box)
    if not (x1 > x0 and y1 > y0):
        raise InputError(f"box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] is empty: need x0 < x1 and y0 < y1")
    clipped = np.array([max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))])
    if not (clipped[2] > clipped[0] and clipped[3] > clipped[1]):
        raise InputError(f"box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] lies outside the {width} x {height} image")
    if min(clipped[2] - clipped[0], clipped[3] - clipped[1]) < MIN_BOX_SIDE:
        raise InputError(f"box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] is under {MIN_BOX_SIDE:g} pixels wide or high in the "
                         f"{width} x {height} image: no face to read")
    return clipped


def crop_faces(image, boxes):
    """RGB uint8 image (h, w, 3), boxes (k, 4) -> crops (k, 256, 256, 3) uint8, image-to-crop similarities (k, 3, 3)."""
    transforms = np.array([crop_transform(*detector_crop(box), out_size=CROP) for box in boxes]).reshape(-1, 3, 3)
    return warp_crops(image, transforms), transforms


def warp_crops(image, transforms):
    """RGB uint8 image (h, w, 3), image-to-crop similarities (k, 3, 3) -> crops (k, 256, 256, 3) uint8."""
    return np.array([cv2.warpAffine(image, transform[:2], (CROP, CROP), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                     for transform in transforms], dtype=np.uint8).reshape(-1, CROP, CROP, 3)


def landmark_transforms(landmarks, transforms):
    """Landmarks (k, 68, 3) in the crops of `transforms` (k, 3, 3) -> the image-to-crop similarities (k, 3, 3) of
    the crops those landmarks frame as the training crops frame the true ones (centred on their box, its side
    REFRAME_SCALE times the box's mean side; docs/formats.md section 6). A crop whose landmarks frame nothing
    finite, or a box under MIN_BOX_SIDE, keeps its transform."""
    image_points = crop_to_image(landmarks, transforms)
    framed = np.array(transforms, dtype=np.float64, copy=True)
    for number, points in enumerate(image_points):
        if np.isfinite(points[:, :2]).all():
            center_x, center_y, side = crop_box(points[:, :2], scale=REFRAME_SCALE)
            if side >= MIN_BOX_SIDE:
                framed[number] = crop_transform(center_x, center_y, side, out_size=CROP)
    return framed


def maps_between(posmaps, source, target):
    """Position maps (k, S, S, 3) float32 in the pixels of crops `source` (k, 3, 3) -> the same points in crops
    `target` (k, 3, 3): (x, y) through target . source^-1, z times its scale."""
    moves = np.asarray(target, np.float64) @ np.linalg.inv(np.asarray(source, np.float64))
    scales = similarity_scale(moves)
    moved = np.empty_like(posmaps)
    for number, (posmap, move, scale) in enumerate(zip(posmaps, moves, scales)):
        affine = np.array([[*move[0, :2], 0, move[0, 2]], [*move[1, :2], 0, move[1, 2]], [0, 0, scale, 0]])
        moved[number] = cv2.transform(posmap, affine)
    return moved
