"""Identity and expression bases of the synthetic face: displacement fields over its grid.

Named components come first (face width, mouth open, ...), then smooth random
fields drawn from the numpy Generator passed in. A field is (n, 3) float64 mm
per unit of coefficient; the bases are returned in micrometres.
"""

import numpy as np
from scipy.linalg import solve_triangular

from prn.pipeline.synthetic.features import (
    EYE_X,
    EYE_Y,
    MOUTH_HALF_WIDTH,
    MOUTH_Y,
    brow_line,
    ear_relief,
    eye_frame,
    eye_relief,
    front_weight,
    mouth_relief,
    nose_relief,
)
from prn.pipeline.synthetic.head import AXIS_Z
from prn.pipeline.synthetic.landmarks import face_weight
from prn.pipeline.synthetic.shapes import bump, gauss, smax, smin, smoothstep, softplus

MICROMETRES_PER_MM = 1000.0
N_SHAPE, N_EXP = 199, 29


def _side(x, sign):
    return smoothstep(-3.0, 3.0, sign * x)


def lips_area(x, y):
    """Weight of the lip region: 1 at the mouth centre, 0 outside an ellipse of semi-axes 31 and 17 mm."""
    return bump(x, y, 0.0, MOUTH_Y - 1.0, 31.0, 17.0)


def _mouth_corners(x, y, radius=10.0):
    return gauss(np.abs(x), y, MOUTH_HALF_WIDTH, MOUTH_Y, radius, 0.8 * radius)


def _jaw_weight(layout):
    """Share of the jaw's motion: lower lip, chin and jaw below the mouth line, not the neck."""
    x, y, z = layout.base[:, 0], layout.base[:, 1], layout.base[:, 2]
    return layout.below * smoothstep(70.0, 40.0, np.abs(x)) * smoothstep(45.0, 75.0, z) \
        * smoothstep(-105.0, -88.0, y)


def _eye_closing(x, y, sign):
    """Downward travel of the upper lid of one eye for a full blink (mm, <= 0)."""
    ex, upper, lower = eye_frame(x, y)
    opening = np.clip(upper - lower, 0.0, None)
    travel = np.clip(y - lower, 0.0, opening)
    above = np.clip(y - upper, 0.0, None)
    return -travel * np.exp(-(above / 7.0) ** 2) * _side(x, sign) * smoothstep(1.3, 0.9, np.abs(ex))


def _vector(n, dx=0.0, dy=0.0, dz=0.0):
    """(n, 3) displacements from per-vertex (or constant) components."""
    return np.stack(np.broadcast_arrays(dx, dy, dz, np.zeros(n)), axis=1)[:, :3]


def _named_identity_fields(layout):
    """Named identity components at one standard deviation, (n, 3) mm each."""
    x, y, z = layout.mean.T
    bx, by = layout.base[:, 0], layout.base[:, 1]
    n, along, front = layout.n, layout.direction, front_weight(layout.theta)
    nose = gauss(bx, by, 0.0, 0.0, 16.0, 22.0)
    eyes = gauss(np.abs(bx), by, EYE_X, EYE_Y, 16.0, 11.0)
    cheeks = gauss(np.abs(bx), by, 45.0, -12.0, 16.0, 20.0) * front
    chin = gauss(bx, by, 0.0, -75.0, 24.0, 15.0)
    lips = lips_area(bx, by)
    brows = np.exp(-((by - brow_line(bx) + 2.0) / 8.0) ** 2) * smoothstep(66.0, 50.0, np.abs(bx)) * front
    temples = smoothstep(35.0, 90.0, y) * front
    radius = np.hypot(bx, layout.base[:, 2] - AXIS_Z)
    outwards = {
        "nose size": 3.0 * nose_relief(bx, by) / 25.0 * front,
        "cheek fullness": 2.5 * cheeks,
        "brow ridge": 2.0 * brows,
        "lip fullness": 0.4 * mouth_relief(bx, by) * lips,
        "neck thickness": 3.0 * smoothstep(-75.0, -110.0, y),
        "eye depth": -0.25 * eye_relief(bx, by) * front,
        "ear size": 0.2 * ear_relief(layout.theta, by, radius),
    }
    moves = {
        "face width": _vector(n, 0.045 * x),
        "face length": _vector(n, dy=0.035 * smax(smin(y + 5.0, 95.0, 5.0), -88.0, 5.0)),
        "face depth": _vector(n, dz=0.035 * (z - AXIS_Z)),
        "jaw width": _vector(n, 0.07 * x * smoothstep(-15.0, -60.0, y)),
        "lower face height": _vector(n, dy=-0.04 * smax(-40.0 - y, 0.0, 5.0)),
        "temple width": _vector(n, 0.06 * x * temples),
        "forehead slope": _vector(n, dz=-0.07 * softplus(y - 30.0, 5.0)),
        "chin protrusion": _vector(n, dy=-1.0 * chin, dz=3.0 * chin),
        "nose width": _vector(n, 0.2 * x * nose),
        "nose length": _vector(n, dy=-2.5 * gauss(bx, by, 0.0, -8.0, 14.0, 12.0)),
        "eye spacing": _vector(n, 2.0 * np.sign(bx) * eyes),
        "eye height": _vector(n, dy=2.0 * eyes),
        "mouth width": _vector(n, 0.15 * x * lips),
        "mouth height": _vector(n, dy=2.0 * lips),
    }
    return list(moves.values()) + [along * amount[:, None] for amount in outwards.values()]


def _named_expression_fields(layout):
    """Named expression components for one unit of coefficient, (n, 3) mm each, most common first."""
    x, y, z = layout.mean.T
    bx, by = layout.base[:, 0], layout.base[:, 1]
    n, along = layout.n, layout.direction
    jaw, lips, below = _jaw_weight(layout), lips_area(bx, by), layout.below
    corners = _mouth_corners(bx, by)
    cheeks = gauss(np.abs(bx), by, 40.0, -15.0, 15.0, 12.0)
    brows = np.exp(-((by - brow_line(bx)) / 9.0) ** 2) * smoothstep(64.0, 50.0, np.abs(bx)) \
        * smoothstep(4.0, 16.0, np.abs(bx))
    forehead = smoothstep(40.0, 60.0, by) * smoothstep(0.3, 0.7, np.cos(layout.theta))
    inner_brows = gauss(np.abs(bx), by, 22.0, 44.0, 12.0, 9.0)
    nose = gauss(bx, by, 0.0, 2.0, 16.0, 12.0)
    chin = gauss(bx, by, 0.0, -68.0, 24.0, 16.0)
    hinge_y, hinge_z, jaw_angle = 8.0, 5.0, 0.08    # about 8 mm of lower lip travel per unit
    smile = _vector(n, 3.0 * np.sign(bx) * corners, 3.5 * corners + 2.0 * cheeks, -1.5 * corners + 1.5 * cheeks)
    raise_brows = _vector(n, dy=4.0 * np.maximum(brows, 0.4 * forehead))
    return [
        _vector(n, dy=-jaw_angle * (z - hinge_z) * jaw, dz=jaw_angle * (y - hinge_y) * jaw),  # mouth open
        smile,
        raise_brows,
        _vector(n, -0.25 * x * lips, dz=5.0 * lips),                                          # pucker
        _vector(n, -2.5 * np.sign(bx) * inner_brows, -3.0 * inner_brows, 0.5 * inner_brows),  # frown
        _vector(n, dy=0.55 * _eye_closing(bx, by, -1.0)),                                     # right eye closes
        _vector(n, dy=0.55 * _eye_closing(bx, by, 1.0)),                                      # left eye closes
        along * (5.0 * bump(np.abs(bx), by, 40.0, -38.0, 22.0, 22.0))[:, None],              # cheeks puff
        _vector(n, 4.0 * jaw),                                                                # jaw sideways
        _vector(n, 3.5 * np.sign(bx) * _mouth_corners(bx, by, 13.0), -0.25 * (by - MOUTH_Y) * lips),  # stretch
        _vector(n, dy=3.0 * (1.0 - below) * lips),                                            # upper lip up
        _vector(n, dy=-3.0 * below * lips, dz=1.0 * below * lips),                            # lower lip down
        _vector(n, dy=-0.3 * (by - MOUTH_Y) * lips, dz=-2.0 * lips),                          # lips pressed
        _vector(n, 4.0 * bump(bx, by, 0.0, MOUTH_Y, 36.0, 24.0)),                            # mouth sideways
        _vector(n, dy=1.5 * nose, dz=-0.5 * nose),                                            # nose wrinkle
        _vector(n, dy=1.5 * gauss(np.abs(bx), by, EYE_X, EYE_Y - 5.0, 14.0, 5.0)),           # squint
        _vector(n, dy=2.5 * chin, dz=1.0 * chin),                                             # chin up
        along * (-3.0 * bump(np.abs(bx), by, 45.0, -25.0, 15.0, 18.0))[:, None],             # cheeks in
        raise_brows * _side(bx, 1.0)[:, None],                                                # left brow up
        smile * _side(bx, 1.0)[:, None],                                                      # half smile
    ]


_EXPRESSION_EV = [1.5, 1.2, 0.9, 0.8, 0.6, 0.5, 0.49, 0.45, 0.42, 0.4, 0.38, 0.36, 0.34, 0.32, 0.3, 0.28,
                  0.26, 0.25, 0.24, 0.23]


def smooth_random_fields(rng, layout, count, channels, start_resolution):
    """(count, n, channels) smooth random fields over the grid, unit RMS, finer as k grows."""
    u = layout.uv[:layout.columns, 0]
    v = layout.uv[::layout.columns, 1]
    fields = np.empty((count, layout.n, channels))
    for k in range(count):
        resolution = start_resolution + k // 6
        centres = np.linspace(0.0, 1.0, resolution)
        width = 1.0 / (resolution - 1)
        along_u = np.exp(-((u[:, None] - centres) / width) ** 2)
        along_v = np.exp(-((v[:, None] - centres) / width) ** 2)
        weights = rng.standard_normal((channels, resolution, resolution))
        field = np.matmul(np.matmul(along_v, weights), along_u.T)
        field = np.moveaxis(field, 0, -1).reshape(layout.n, channels)
        fields[k] = field / np.sqrt(np.mean(field ** 2))
    return fields


def orthonormal_basis(fields):
    """Orthonormal columns (rows, k) spanning fields (k, n, c) taken by decreasing norm, and the norms.

    Cholesky QR, twice (numerically as orthonormal as Householder QR, and all
    matrix products); column j keeps a positive projection on the j-th field.
    """
    norms = np.array([np.linalg.norm(f) for f in fields])
    order = np.argsort(-norms, kind="stable")
    matrix = np.empty((fields[0].size, len(fields)), order="F")
    for j, k in enumerate(order):
        matrix[:, j] = fields[k].reshape(-1)
    for _ in range(2):
        factor = np.linalg.cholesky(matrix.T @ matrix)
        matrix = solve_triangular(factor, matrix.T, lower=True).T
    return matrix, _strictly_decreasing(norms[order])


def _strictly_decreasing(values):
    """Values made strictly decreasing (ties nudged down by 0.01 %)."""
    values = np.array(values, dtype=np.float64)
    for k in range(1, len(values)):
        values[k] = min(values[k], values[k - 1] * (1.0 - 1e-4))
    return values


def identity_basis(layout, rng):
    """shapePC (3n, 199) orthonormal and shapeEV (199,): named components, then random ones (um)."""
    named = _named_identity_fields(layout)
    count = N_SHAPE - len(named)
    amplitude = 0.6 * (1.0 + np.arange(count)) ** -1.1
    random = smooth_random_fields(rng, layout, count, 3, 3) * amplitude[:, None, None]
    fields = [f * MICROMETRES_PER_MM for f in named] + list(random * MICROMETRES_PER_MM)
    return orthonormal_basis(fields)


def expression_basis(layout, rng):
    """expPC (3n, 29) in um per unit of coefficient and expEV (29,), decreasing."""
    named = _named_expression_fields(layout)
    count = N_EXP - len(named)
    face = face_weight(layout) * front_weight(layout.theta)
    random = smooth_random_fields(rng, layout, count, 3, 4) * face[None, :, None]
    fields = np.stack(named + list(random)) * MICROMETRES_PER_MM
    ev = np.r_[_EXPRESSION_EV, np.linspace(0.22, 0.12, count)]
    return fields.reshape(N_EXP, -1).T, ev
