"""Facial features of the synthetic face: their layout and relief (mm, symmetric in x).

The relief functions give an offset (mm) along the head's rays at base-surface
points x, y (float64 arrays, mm). The layout and the eye, brow and lip borders
also place the landmarks and paint the albedo.
"""

import numpy as np

from prn.pipeline.synthetic.shapes import bump, gauss, profile, smoothstep

# Facial layout (mm), symmetric in x; the landmark targets in `landmarks` follow it.
EYE_X, EYE_Y, EYE_HALF_WIDTH = 31.5, 27.5, 12.0
UPPER_LID_RISE, LOWER_LID_DROP = 4.4, 2.8
MOUTH_Y, MOUTH_HALF_WIDTH, SLIT_HALF_WIDTH = -39.8, 25.8, 23.0


def front_weight(theta):
    """1 on the front of the head (|theta| <= 60 degrees), 0 beyond about 78 degrees; theta in radians."""
    return smoothstep(0.2, 0.5, np.cos(theta))


def nose_relief(x, y):
    """Nose: ridge, tip, wings and nostrils."""
    height = profile([-27, -23, -19.5, -16, -12, -9, -5, 2, 14, 26, 33],
                     [0, 2.5, 6.5, 12, 19.5, 25, 25.5, 23.5, 15, 6.5, 0], y)
    half_width = profile([-22, -17, -12, -5, 5, 15, 26, 35], [14, 15.5, 15, 12.5, 10.5, 9, 8, 9], y)
    ridge = height * np.clip(1.0 - (x / half_width) ** 2, 0.0, None) ** 2
    tip = 3.0 * gauss(x, y, 0.0, -7.5, 7.0, 6.0)
    wings = 6.5 * (bump(x, y, 14.0, -13.5, 8.0, 7.0) + bump(x, y, -14.0, -13.5, 8.0, 7.0))
    nostrils = -1.5 * (gauss(x, y, 6.5, -17.0, 3.5, 2.0) + gauss(x, y, -6.5, -17.0, 3.5, 2.0))
    return np.maximum(ridge + tip, wings) + nostrils


def eye_frame(x, y):
    """Per-eye coordinates: ex in [-1, 1] from the inner to the outer corner, lid heights."""
    ex = (np.abs(x) - EYE_X) / EYE_HALF_WIDTH
    span = np.clip(1.0 - ex ** 2, 0.0, None)
    upper = EYE_Y + UPPER_LID_RISE * span ** 0.7
    lower = EYE_Y - LOWER_LID_DROP * span ** 0.8
    return ex, upper, lower


def eye_relief(x, y):
    """Eyes: sockets, eyeballs, lids and creases."""
    ax = np.abs(x)
    ex, upper, lower = eye_frame(x, y)
    socket = -10.0 * bump(ax, y, EYE_X - 1.0, EYE_Y + 2.0, 24.0, 17.0)
    corners = -4.0 * gauss(ax, y, EYE_X - EYE_HALF_WIDTH, EYE_Y, 5.0, 5.0) \
        - 3.0 * gauss(ax, y, EYE_X + EYE_HALF_WIDTH, EYE_Y, 6.0, 6.0)
    eyeball = 4.5 * bump(ax, y, EYE_X, EYE_Y + 0.5, 17.0, 13.0) ** 0.5
    outside = -np.minimum(np.minimum(upper - y, y - lower), (1.0 - np.abs(ex)) * 6.0)
    lid_width = np.where(y > EYE_Y, 5.0, 3.5)
    lids = 1.6 * smoothstep(-0.4, 0.4, outside) * np.exp(-(np.clip(outside, 0.0, None) / lid_width) ** 2)
    crease_y = upper + 4.5 * np.clip(1.0 - ex ** 2, 0.0, None) ** 0.5 + 1.5
    crease = -1.2 * np.exp(-((y - crease_y) / 1.6) ** 2) * smoothstep(1.2, 0.6, np.abs(ex))
    return socket + corners + eyeball + lids + crease


def brow_line(x):
    """Height of the eyebrow (mm) at |x|."""
    ax = np.abs(x)
    curvature = np.where(ax < 38.0, 0.0105, 0.022)
    return 48.8 - curvature * (ax - 38.0) ** 2


def brow_relief(x, y):
    """Brow ridges, glabella and temples."""
    ridge = 3.0 * np.exp(-((y - brow_line(x) + 2.0) / 6.0) ** 2) * smoothstep(8.0, 16.0, np.abs(x)) \
        * smoothstep(66.0, 56.0, np.abs(x))
    glabella = 1.8 * gauss(x, y, 0.0, 40.0, 14.0, 9.0)
    temples = -2.5 * (gauss(x, y, 66.0, 42.0, 12.0, 20.0) + gauss(x, y, -66.0, 42.0, 12.0, 20.0))
    return ridge + glabella + temples


def lip_borders(x):
    """Heights (mm) of the upper and lower vermilion borders above/below the mouth line."""
    u2 = np.clip((x / MOUTH_HALF_WIDTH) ** 2, 0.0, 1.0)
    upper = 8.6 * (1.0 - u2) - 1.2 * np.exp(-(x / 3.3) ** 2)
    lower = 8.0 * (1.0 - u2) ** 0.8
    return upper, lower


def mouth_relief(x, y):
    """Mouth and chin: lip mound, vermilion, mouth line and corners, philtrum, sulcus, chin."""
    upper, lower = lip_borders(x)
    dy = y - MOUTH_Y
    mound = 6.5 * bump(x, y, 0.0, -41.0, 36.0, 27.0) + 3.0 * bump(x, y, 0.0, -31.0, 24.0, 9.0)
    s_up = np.clip(dy / np.maximum(upper, 0.5), 0.0, 1.0)
    s_low = np.clip(-dy / np.maximum(lower, 0.5), 0.0, 1.0)
    taper = smoothstep(MOUTH_HALF_WIDTH + 2.0, MOUTH_HALF_WIDTH - 8.0, np.abs(x))
    vermilion = taper * (4.5 * np.sin(np.pi * s_up) + 3.0 * np.sin(np.pi * s_low))
    groove = -2.2 * np.exp(-(dy / 1.3) ** 2) * smoothstep(MOUTH_HALF_WIDTH + 3.0, MOUTH_HALF_WIDTH - 4.0,
                                                           np.abs(x))
    corners = -1.5 * (gauss(x, y, MOUTH_HALF_WIDTH + 1.0, MOUTH_Y, 3.5, 3.0)
                      + gauss(x, y, -MOUTH_HALF_WIDTH - 1.0, MOUTH_Y, 3.5, 3.0))
    philtrum = 0.7 * (gauss(x, y, 4.5, -26.0, 1.8, 5.0) + gauss(x, y, -4.5, -26.0, 1.8, 5.0))
    sulcus = -2.0 * np.exp(-((y + 57.0) / 4.0) ** 2) * smoothstep(24.0, 10.0, np.abs(x))
    chin = 4.5 * bump(x, y, 0.0, -71.0, 22.0, 15.0)
    return mound + vermilion + groove + corners + philtrum + sulcus + chin


def cheek_relief(x, y):
    """Cheekbones, nasolabial folds and cheek fullness."""
    ax = np.abs(x)
    bones = 3.0 * gauss(ax, y, 50.0, 6.0, 17.0, 13.0)
    # nasolabial fold: a groove from the nose wing to beside the mouth corner
    along = np.clip((y + 12.0) / -34.0, 0.0, 1.0)
    fold_x = 18.0 + 12.0 * along
    fold = -1.3 * np.exp(-((ax - fold_x) / 2.5) ** 2) * smoothstep(-8.0, -14.0, y) * smoothstep(-50.0, -44.0, y)
    fullness = 1.5 * gauss(ax, y, fold_x + 6.0, -28.0, 8.0, 14.0)
    return bones + fold + fullness


def ear_relief(theta, y, radius):
    """The ear: a plate standing out from the side of the head, with a rim and a hollow."""
    arc = (np.abs(theta) - np.radians(95.0)) * radius
    plate = bump(arc, y, 0.0, 15.0, 16.0, 31.0) ** 0.35
    backward = smoothstep(-16.0, 14.0, arc)
    concha = bump(arc, y, -3.0, 10.0, 8.5, 13.0)
    rim = bump(arc, y, 0.0, 15.0, 16.0, 31.0) - bump(arc, y, 0.0, 15.0, 13.0, 27.0)
    return plate * (6.0 + 9.0 * backward) - 5.0 * concha + 2.5 * rim
