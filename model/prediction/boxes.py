"""Face boxes [x0, y0, x1, y1] in image pixels: read from a boxes file, checked, clipped, and cropped.

A box gives a crop as the original PRN crops a detector box (docs/formats.md
section 6: `old = (w + h) / 2`, centre moved down by 0.14 old, side 1.58 old).
"""

import json
from pathlib import Path

import cv2
import numpy as np

from prn.pipeline.shards import CROP_SIZE as CROP
from prn.rendering.geometry.crop import crop_transform, detector_crop
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
    crops = np.array([cv2.warpAffine(image, transform[:2], (CROP, CROP), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                      for transform in transforms], dtype=np.uint8).reshape(-1, CROP, CROP, 3)
    return crops, transforms
