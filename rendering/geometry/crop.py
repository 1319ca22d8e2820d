"""Face crops from 68 landmarks and the positions of a mesh inside a crop (docs/formats.md section 6)."""

import numba
import numpy as np

from prn.rendering.util.errors import InputError

CROP_SIZE = 256                # the side of every face crop the network reads and the shards hold, pixels
TRAIN_CROP_SCALE = 1.5
DETECTOR_CENTER_SHIFT = 0.14   # a detector box's crop: centre moved down by 0.14 old, old = (w + h) / 2
DETECTOR_CROP_SCALE = 1.58     # and side 1.58 old


def crop_center(size=CROP_SIZE):
    """The centre of a size x size crop in its pixel coordinates, the same on both axes: (size - 1) / 2, 127.5
    for CROP_SIZE. Pixel centres sit at integer coordinates and the crop's square runs from the centre of pixel 0
    to that of pixel size - 1 (`crop_transform`, docs/formats.md section 6), so a turn or mirror about this point
    takes the pixel grid onto itself (column c of a mirrored crop is column size - 1 - c)."""
    return (size - 1) / 2


CROP_CENTER = crop_center()    # 127.5: the centre of a CROP_SIZE crop, pixels, on both axes


def crop_box(landmarks_xy, scale=TRAIN_CROP_SCALE, shift=(0.0, 0.0), size_factor=1.0):
    """Square crop around 68 landmarks.

    landmarks_xy (68, 2) image coordinates. shift: center offset in units of
    the box's mean side `old`; size_factor multiplies the side (jitter).
    Returns (center_x, center_y, side) in pixels.
    """
    points = np.asarray(landmarks_xy, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] < 2 or not np.isfinite(points[:, :2]).all():
        raise InputError(f"landmarks have shape {points.shape} or non-finite values, expected (68, 2)")
    left, top = points[:, :2].min(0)
    right, bottom = points[:, :2].max(0)
    old = (right - left + bottom - top) / 2
    center_x = (left + right) / 2 + shift[0] * old
    center_y = (top + bottom) / 2 + shift[1] * old
    return center_x, center_y, scale * old * size_factor


def detector_crop(box):
    """(center_x, center_y, side) in pixels of the crop for a face-detector box [x0, y0, x1, y1]."""
    x0, y0, x1, y1 = box
    old = (x1 - x0 + y1 - y0) / 2
    return (x0 + x1) / 2, (y0 + y1) / 2 + DETECTOR_CENTER_SHIFT * old, DETECTOR_CROP_SCALE * old


def crop_transform(center_x, center_y, side, out_size=256) -> np.ndarray:
    """Similarity (3, 3) float64 taking the square of `side` around the center to the crop.

    Top-left corner -> (0, 0), top-right -> (out_size - 1, 0),
    bottom-left -> (0, out_size - 1).
    """
    if not side > 0:
        raise InputError(f"crop side must be positive, got {side}")
    k = (out_size - 1) / side
    return np.array([[k, 0.0, -k * (center_x - side / 2)],
                     [0.0, k, -k * (center_y - side / 2)],
                     [0.0, 0.0, 1.0]])


def positions_in_crop(vertices, transform) -> np.ndarray:
    """Image-coordinate vertices (n, 3) -> crop coordinates (n, 3) float32.

    (x, y) mapped by the similarity; z scaled by its scale, then shifted so
    that its minimum over the vertices is 0.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    scale = np.hypot(transform[0, 0], transform[1, 0])
    out = np.empty(vertices.shape, np.float64)
    out[:, :2] = vertices[:, :2] @ transform[:2, :2].T + transform[:2, 2]
    out[:, 2] = vertices[:, 2] * scale
    out[:, 2] -= out[:, 2].min()
    return out.astype(np.float32)


def model_to_crop(rotation, pose, height, transform=None):
    """(3, 3) matrix M and (3,) offset b with crop = M @ v + b for model vertices v (before the z shift).

    Composes the pose (s R, t; rotation (3, 3) = R of the pose's angles), the
    image y flip (y = H - 1 - P_y) and the crop similarity `transform` (3, 3;
    identity: image coordinates), whose scale also multiplies z.
    """
    transform = np.eye(3) if transform is None else transform
    flip = np.diag([1.0, -1.0, 1.0])
    crop = np.eye(3)
    crop[:2, :2] = transform[:2, :2]
    crop[2, 2] = np.hypot(transform[0, 0], transform[1, 0])
    image_offset = np.array([pose[3], height - 1 - pose[4], pose[5]])
    matrix = crop @ flip @ (rotation * pose[6])
    return matrix, crop @ image_offset + np.array([transform[0, 2], transform[1, 2], 0.0])


@numba.njit(cache=True, nogil=True)
def _affine_shift_kernel(vertices, matrix, offset, out):
    lowest = np.inf
    for i in range(vertices.shape[0]):
        x, y, z = vertices[i, 0], vertices[i, 1], vertices[i, 2]
        for k in range(3):
            out[i, k] = matrix[k, 0] * x + matrix[k, 1] * y + matrix[k, 2] * z + offset[k]
        lowest = min(lowest, out[i, 2])
    for i in range(vertices.shape[0]):
        out[i, 2] -= lowest


def crop_positions(vertices, matrix, offset) -> np.ndarray:
    """Model vertices (n, 3) float32 -> crop positions (n, 3) float32: M @ v + b, then min z moved to 0.

    The fast path of positions_in_crop(image_vertices(...)) for the pipeline
    (one pass, float32 arithmetic).
    """
    out = np.empty(vertices.shape, np.float32)
    _affine_shift_kernel(np.ascontiguousarray(vertices, np.float32), np.asarray(matrix, np.float32),
                         np.asarray(offset, np.float32), out)
    return out


def similarity_scale(tform) -> np.ndarray:
    """(N,) scale of similarities (N, 3, 3)."""
    return np.hypot(tform[:, 0, 0], tform[:, 1, 0])


def crop_to_image(points, tform) -> np.ndarray:
    """points (N, n, 3) in crop coordinates -> original image coordinates, through tform (N, 3, 3) image -> crop.

    (x, y) by the inverse similarity; z divided by its scale (z's origin stays the crop's).
    """
    points = np.asarray(points, dtype=np.float64)
    inverse = np.linalg.inv(np.asarray(tform, dtype=np.float64))
    out = np.empty_like(points)
    out[..., :2] = np.einsum("nij,npj->npi", inverse[:, :2, :2], points[..., :2]) + inverse[:, None, :2, 2]
    out[..., 2] = points[..., 2] / similarity_scale(tform)[:, None]
    return out


def image_to_crop(points, tform) -> np.ndarray:
    """points (N, n, 3) in original image coordinates -> crop coordinates through tform (N, 3, 3).

    (x, y) by the similarity; z multiplied by its scale.
    """
    points = np.asarray(points, dtype=np.float64)
    tform = np.asarray(tform, dtype=np.float64)
    out = np.empty_like(points)
    out[..., :2] = np.einsum("nij,npj->npi", tform[:, :2, :2], points[..., :2]) + tform[:, None, :2, 2]
    out[..., 2] = points[..., 2] * similarity_scale(tform)[:, None]
    return out
