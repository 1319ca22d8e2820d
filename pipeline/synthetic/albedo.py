"""Albedo of the synthetic face: the mean colour (skin, brows, eyes, lips, nostrils) and its basis.

Colours are RGB on the 0-255 scale, (n, 3) float64 per vertex.
"""

import numpy as np

from prn.pipeline.synthetic.bases import lips_area, orthonormal_basis, smooth_random_fields
from prn.pipeline.synthetic.features import (
    EYE_X,
    EYE_Y,
    MOUTH_HALF_WIDTH,
    MOUTH_Y,
    brow_line,
    ear_relief,
    eye_frame,
    front_weight,
    lip_borders,
)
from prn.pipeline.synthetic.landmarks import face_weight
from prn.pipeline.synthetic.shapes import gauss, smoothstep

N_TEX = 199

SKIN = np.array([214.0, 166.0, 140.0])


def paint(color, where, pigment):
    """Blend `pigment` (3,) RGB over (n, 3) colours with per-vertex opacity `where` (n,)."""
    return color * (1.0 - where[:, None]) + np.asarray(pigment) * where[:, None]


def mean_albedo(layout, rng):
    """Mean albedo (n, 3), RGB 0-255: skin, brows, eyes, lips, nostrils."""
    x, y = layout.base[:, 0], layout.base[:, 1]
    color = _skin(layout, rng)
    color = _paint_brows(color, x, y, front_weight(layout.theta))
    color = _paint_eyes(color, x, y, front_weight(layout.theta))
    color = _paint_mouth(color, x, y)
    return np.clip(color, 0.0, 255.0)


def _skin(layout, rng):
    """Skin tone with low-frequency mottling, redder cheeks, nose tip and ears, a darker neck."""
    x, y = layout.base[:, 0], layout.base[:, 1]
    color = SKIN + 4.0 * smooth_random_fields(rng, layout, 1, 3, 9)[0]
    cheeks = gauss(np.abs(x), y, 42.0, -8.0, 16.0, 14.0) * front_weight(layout.theta)
    color += np.array([14.0, -6.0, -4.0]) * cheeks[:, None]
    color += np.array([10.0, -4.0, -4.0]) * gauss(x, y, 0.0, -6.0, 8.0, 7.0)[:, None]
    ears = np.clip(ear_relief(layout.theta, y, 80.0), 0.0, None) / 15.0
    color += np.array([14.0, -2.0, -6.0]) * ears[:, None]
    neck = (1.0 - face_weight(layout)) * smoothstep(0.0, -30.0, y)
    return color * (1.0 - 0.14 * neck)[:, None]


def _paint_brows(color, x, y, front):
    ax = np.abs(x)
    band = np.exp(-((y - brow_line(x) - 0.5) / (3.8 - 0.035 * ax)) ** 6)
    brows = band * smoothstep(14.0, 19.0, ax) * smoothstep(62.0, 54.0, ax) * front
    return paint(color, 0.85 * brows, [72.0, 52.0, 42.0])


def _paint_eyes(color, x, y, front):
    """Shaded lids, white eyeballs, brown irises with dark pupils, a dark upper lash line."""
    ex, upper, lower = eye_frame(x, y)
    outside = -np.minimum(np.minimum(upper - y, y - lower), (1.0 - np.abs(ex)) * 6.0)
    lids = 0.25 * np.exp(-(np.clip(outside, 0.0, None) / 4.0) ** 2) * smoothstep(1.6, 1.2, np.abs(ex))
    color = paint(color, lids, [150.0, 100.0, 90.0])
    color = paint(color, smoothstep(0.3, -0.3, outside) * front, [236.0, 232.0, 226.0])
    visible = smoothstep(0.6, -0.2, outside)
    iris = np.hypot(np.abs(x) - EYE_X, y - EYE_Y - 0.6)
    color = paint(color, smoothstep(5.9, 5.3, iris) * visible, [92.0, 62.0, 42.0])
    color = paint(color, smoothstep(2.5, 2.0, iris) * visible, [18.0, 12.0, 12.0])
    lash = np.exp(-((y - upper - 0.6) / 0.9) ** 2) * smoothstep(1.15, 0.9, np.abs(ex)) \
        * smoothstep(EYE_Y, EYE_Y + 1.0, y)
    return paint(color, 0.8 * lash * front, [45.0, 32.0, 28.0])


def _paint_mouth(color, x, y):
    """Red lips, a dark mouth line, dark nostrils."""
    ax = np.abs(x)
    upper, lower = lip_borders(x)
    dy = y - MOUTH_Y
    vermilion = smoothstep(0.6, -0.6, dy - upper) * smoothstep(-0.6, 0.6, dy + lower) \
        * smoothstep(MOUTH_HALF_WIDTH + 1.5, MOUTH_HALF_WIDTH - 1.5, ax)
    color = paint(color, vermilion, [190.0, 98.0, 98.0])
    mouth_line = np.exp(-(dy / 0.9) ** 2) * smoothstep(MOUTH_HALF_WIDTH + 1.0, MOUTH_HALF_WIDTH - 3.0, ax)
    color = paint(color, 0.8 * mouth_line, [105.0, 45.0, 50.0])
    return paint(color, 0.85 * gauss(ax, y, 6.5, -17.0, 3.6, 2.2), [95.0, 52.0, 48.0])


def _named_albedo_fields(layout):
    """Named albedo components at one standard deviation (0-255 levels)."""
    bx, by = layout.base[:, 0], layout.base[:, 1]
    ax = np.abs(bx)
    ones = np.ones(layout.n)[:, None]
    eyes = gauss(ax, by, EYE_X, EYE_Y + 0.6, 5.5, 5.5)
    lips = lips_area(bx, by) * gauss(bx, by, 0.0, MOUTH_Y, 24.0, 8.0)
    brows = np.exp(-((by - brow_line(bx)) / 4.0) ** 2) * smoothstep(14.0, 20.0, ax) * smoothstep(62.0, 54.0, ax)
    cheeks = gauss(ax, by, 42.0, -8.0, 16.0, 14.0)
    face = face_weight(layout)[:, None]
    return [
        ones * np.array([24.0, 20.0, 17.0]),               # lighter / darker
        ones * np.array([7.0, -2.5, -1.5]),                # redder / paler
        ones * np.array([3.5, 3.0, -6.5]),                 # yellower / bluer
        face * np.array([6.0, 4.0, 3.0]),                  # face against neck
        cheeks[:, None] * np.array([14.0, -4.0, -3.0]),    # cheek blush
        lips[:, None] * np.array([22.0, -8.0, -6.0]),      # lip colour
        brows[:, None] * np.array([-25.0, -20.0, -16.0]),  # brow darkness
        eyes[:, None] * np.array([30.0, 26.0, 18.0]),      # iris lightness
        gauss(bx, by, 0.0, -5.0, 10.0, 12.0)[:, None] * np.array([12.0, -3.0, -3.0]),  # nose redness
        gauss(ax, by, EYE_X, EYE_Y - 8.0, 14.0, 5.0)[:, None] * np.array([-10.0, -10.0, -6.0]),  # eye bags
    ]


def albedo_basis(layout, rng):
    """texPC (3n, 199) orthonormal and texEV (199,) in 0-255 levels."""
    named = _named_albedo_fields(layout)
    count = N_TEX - len(named)
    amplitude = 2.5 * (1.0 + np.arange(count)) ** -0.8
    random = smooth_random_fields(rng, layout, count, 3, 3) * amplitude[:, None, None]
    return orthonormal_basis(named + list(random))
