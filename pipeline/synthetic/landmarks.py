"""The face region and the 68 landmarks of the synthetic face, on its grid.

Each right-side landmark is the free grid vertex nearest to a target on the
base surface (mm); the left side mirrors them. Their UV is then moved onto
pixel centres of the position map.
"""

import numpy as np

from prn.pipeline.synthetic.features import (
    EYE_HALF_WIDTH,
    EYE_X,
    EYE_Y,
    MOUTH_HALF_WIDTH,
    MOUTH_Y,
    brow_line,
    eye_frame,
    lip_borders,
)
from prn.pipeline.synthetic.head import jaw_cut_height
from prn.pipeline.synthetic.shapes import smoothstep

FACE_THETA_DEG = 88.0       # the face region ends here, in front of the ears
UV_MAP_SIZE = 256           # the PRN position map side; landmarks sit on its pixel centres


def face_mask(layout):
    """Vertices of the face: above the jaw line and in front of the ears."""
    x, y, z = layout.base[:, 0], layout.base[:, 1], layout.base[:, 2]
    return (y - jaw_cut_height(x, z) > 2.0) & (np.abs(layout.theta) <= np.radians(FACE_THETA_DEG))


def face_weight(layout):
    """A smooth version of the face mask, for fields that must not jump at the jaw line."""
    x, y, z = layout.base[:, 0], layout.base[:, 1], layout.base[:, 2]
    limit = np.radians(FACE_THETA_DEG)
    return smoothstep(-4.0, 8.0, y - jaw_cut_height(x, z)) * smoothstep(limit + 0.1, limit - 0.1,
                                                                       np.abs(layout.theta))


def _has_neighbour_outside(mask, rows, columns):
    grid = mask.reshape(rows, columns)
    padded = np.pad(grid, 1, constant_values=True)
    inside = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return (grid & ~inside).reshape(-1)


# Right-side (x < 0) landmark targets on the base surface (mm); the left side mirrors them.
JAW_END_TARGET = (-73.5, 18.5, 18.0)  # landmark 0, mm; landmark 16 mirrors it
_JAW_TARGETS = {0: JAW_END_TARGET, 1: (-71.5, -1.0, 20.0), 2: (-68.0, -19.0, 22.0), 3: (-64.0, -35.5, 26.0),
                4: (-58.5, -53.0, 35.0), 5: (-48.5, -67.0, 51.0), 6: (-37.0, -75.5, 71.0), 7: (-22.0, -82.5, 89.0)}
_BROW_X = {17: -57.5, 18: -49.2, 19: -38.7, 20: -28.5, 21: -19.3}
_NOSTRILS = {31: (-12.3, -17.0), 32: (-7.2, -18.0)}
_EYE_POINTS = {36: (1.0, "corner"), 37: (0.45, "upper"), 38: (-0.3, "upper"),
               39: (-1.0, "corner"), 40: (-0.35, "lower"), 41: (0.43, "lower")}
_UPPER_LIP_X = {49: -16.8, 50: -6.0}
_LOWER_LIP_X = {58: -7.9, 59: -15.6}
_INNER_LIP_X = {61: -7.7, 67: -7.7}
_MIRROR = {0: 16, 1: 15, 2: 14, 3: 13, 4: 12, 5: 11, 6: 10, 7: 9, 17: 26, 18: 25, 19: 24, 20: 23, 21: 22,
           31: 35, 32: 34, 36: 45, 37: 44, 38: 43, 39: 42, 40: 47, 41: 46, 48: 54, 49: 53, 50: 52, 58: 56,
           59: 55, 60: 64, 61: 63, 67: 65}


def _right_side_targets():
    """Target (x, y) on the base surface of each right-side landmark except the jaw."""
    targets = {k: (x, float(brow_line(x))) for k, x in _BROW_X.items()}
    targets.update(_NOSTRILS)
    for k, (ex, which) in _EYE_POINTS.items():
        x = -(EYE_X + ex * EYE_HALF_WIDTH)
        _, upper, lower = eye_frame(np.array(x), EYE_Y)
        targets[k] = (x, {"corner": EYE_Y, "upper": float(upper), "lower": float(lower)}[which])
    targets[48] = (-MOUTH_HALF_WIDTH, MOUTH_Y)
    for k, x in _UPPER_LIP_X.items():
        targets[k] = (x, MOUTH_Y + float(lip_borders(np.array(x))[0]))
    for k, x in _LOWER_LIP_X.items():
        targets[k] = (x, MOUTH_Y - float(lip_borders(np.array(x))[1]))
    return targets


def landmark_vertices(layout, face):
    """The 68 landmark vertices (0-based), mirror-symmetric, all distinct."""
    n_cols, mid = layout.columns, layout.mid
    column = np.arange(layout.n) % n_cols
    row = np.arange(layout.n) // n_cols
    base = layout.base
    taken = np.zeros(layout.n, bool)
    chosen = {}

    def pick(k, candidates, distance):
        distance = np.where(candidates & ~taken, distance, np.inf)
        chosen[k] = int(np.argmin(distance))
        if not np.isfinite(distance[chosen[k]]):
            raise ValueError(f"no free vertex for landmark {k}: the grid is too coarse")
        taken[chosen[k]] = True

    midline = column == mid
    right = column < mid
    upper_row, lower_row = row == layout.lower_lip_row + 1, row == layout.lower_lip_row
    corner_column = np.flatnonzero(layout.slit).min()
    pick(62, midline & upper_row, 0.0)
    pick(66, midline & lower_row, 0.0)
    pick(60, right & upper_row & (column == corner_column), 0.0)
    for k, candidates in ((61, upper_row), (67, lower_row)):
        pick(k, right & candidates & layout.slit[column], np.abs(base[:, 0] - _INNER_LIP_X[k]))
    pick(30, midline, -layout.mean[:, 2])
    lowest_face_row = row[midline & face].min()
    pick(8, midline & (row == lowest_face_row), 0.0)
    upper, lower = lip_borders(np.array(0.0))
    for k, y in ((27, 26.3), (28, 14.3), (29, 2.3), (33, -19.4), (51, MOUTH_Y + upper), (57, MOUTH_Y - lower)):
        pick(k, midline, np.abs(layout.mean[:, 1] - y))
    front = right & (np.cos(layout.theta) > 0.3)
    for k, (x, y) in _right_side_targets().items():
        pick(k, front, np.hypot(base[:, 0] - x, base[:, 1] - y))
    jaw_line = right & face & _has_neighbour_outside(face, layout.rows, n_cols)
    for k, target in _JAW_TARGETS.items():
        pick(k, jaw_line, np.linalg.norm(base - np.array(target), axis=1))
    for k, partner in _MIRROR.items():
        chosen[partner] = layout.mirror(chosen[k])
    return np.array([chosen[k] for k in range(68)], np.int64)


def landmarks_on_pixel_centres(uv, landmarks, size=UV_MAP_SIZE):
    """UV (n, 2) float64 with the landmark vertices moved onto pixel centres of the size x size map.

    A position map read at uv_kpt_ind then returns each landmark exactly (the
    pixel centre is the vertex). The move is at most half a pixel, less than
    half a grid cell, so no triangle folds over; the midline landmarks go from
    u = 127.5 to 128, where uv_kpt_ind rounds them anyway.
    """
    uv = np.array(uv, dtype=np.float64)
    uv[landmarks] = np.floor(uv[landmarks] * (size - 1) + 0.5) / (size - 1)
    return uv
