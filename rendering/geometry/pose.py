"""Pose transforms in the 300W-LP convention (docs/formats.md section 3), vectorised.

Pose_Para = [pitch, yaw, roll, tx, ty, tz, s], angles in radians;
R = Rx(pitch) @ Ry(yaw) @ Rz(roll); placed vertices P = s * V @ R.T + t;
image coordinates for height H: (P_x, H - 1 - P_y, P_z), larger z nearer.
"""

import numpy as np

from prn.rendering.util.errors import InputError


def rotation_matrices(angles) -> np.ndarray:
    """angles (B, 3) or (3,) [pitch, yaw, roll] radians -> (B, 3, 3) or (3, 3) float64."""
    angles = np.asarray(angles, dtype=np.float64)
    single = angles.ndim == 1
    angles = np.atleast_2d(angles)
    if angles.shape[-1] != 3:
        raise InputError(f"angles have shape {angles.shape}, expected (B, 3)")
    cos, sin = np.cos(angles), np.sin(angles)
    one, zero = np.ones(len(angles)), np.zeros(len(angles))
    cx, cy, cz = cos.T
    sx, sy, sz = sin.T
    rx = np.stack([one, zero, zero, zero, cx, sx, zero, -sx, cx], -1).reshape(-1, 3, 3)
    ry = np.stack([cy, zero, -sy, zero, one, zero, sy, zero, cy], -1).reshape(-1, 3, 3)
    rz = np.stack([cz, sz, zero, -sz, cz, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    rotations = rx @ ry @ rz
    return rotations[0] if single else rotations


def angles_from_rotations(rotations) -> np.ndarray:
    """Inverse of rotation_matrices: (B, 3, 3) or (3, 3) -> [pitch, yaw, roll] radians.

    Yaw is in [-pi/2, pi/2]; at exactly +-pi/2 pitch and roll are not
    separable and roll is reported 0.
    """
    rotations = np.asarray(rotations, dtype=np.float64)
    single = rotations.ndim == 2
    r = rotations.reshape(-1, 3, 3)
    yaw = np.arcsin(np.clip(-r[:, 0, 2], -1.0, 1.0))
    gimbal = np.abs(r[:, 0, 2]) > 1 - 1e-12
    pitch = np.where(gimbal, np.arctan2(-r[:, 2, 1], r[:, 1, 1]), np.arctan2(r[:, 1, 2], r[:, 2, 2]))
    roll = np.where(gimbal, 0.0, np.arctan2(r[:, 0, 1], r[:, 0, 0]))
    angles = np.stack([pitch, yaw, roll], -1)
    return angles[0] if single else angles


def _check_pose(pose):
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape[-1] != 7 or pose.ndim not in (1, 2):
        raise InputError(f"pose has shape {pose.shape}, expected (7,) or (B, 7)")
    if not np.isfinite(pose).all():
        raise InputError("pose contains NaN or inf")
    return pose


def place_vertices(vertices, pose) -> np.ndarray:
    """Model vertices placed by a pose: s * V @ R.T + t.

    vertices (B, n, 3) or (n, 3) model units; pose (B, 7) or (7,).
    Returns float64 of the vertices' shape, in the units of t (pixels for 300W-LP).
    """
    pose = _check_pose(pose)
    vertices = np.asarray(vertices)
    rotations = rotation_matrices(pose[..., :3])
    scale = pose[..., 6, None, None]
    translation = pose[..., None, 3:6]
    return scale * (vertices @ np.swapaxes(rotations, -1, -2)) + translation


def to_image(placed, height) -> np.ndarray:
    """Placed vertices (..., 3) -> image coordinates (x column, y row, z nearer = larger).

    height: image height in pixels (y = height - 1 - P_y).
    """
    image = np.array(placed, dtype=np.float64, copy=True)
    image[..., 1] = height - 1 - image[..., 1]
    return image


def image_vertices(vertices, pose, height) -> np.ndarray:
    """Model vertices (B, n, 3) or (n, 3) -> image coordinates under a 300W-LP pose."""
    return to_image(place_vertices(vertices, pose), height)
