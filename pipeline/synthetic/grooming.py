"""Facial hair and make-up painted onto a sample's albedo: stubble, moustaches, goatees, full beards,
lipstick, eye shadow and blush.

The regions are placed by the sample's own 68 landmarks (before its pose), so
they fit any model with the BFM's axes (x across the face, y up), the real BFM
included; sizes are shares of the face, not model units. Only the albedo
changes: the position map and the landmarks stay the face's.
"""

import numpy as np

from prn.pipeline.synthetic.albedo import paint
from prn.pipeline.synthetic.dressing import HAIR_COLOURS, HAIR_WEIGHTS
from prn.pipeline.synthetic.shapes import gauss, smoothstep

# Facial hair styles and how often each is drawn (the rest: none).
BEARD_STYLES = ("stubble", "moustache", "goatee", "full")
BEARD_WEIGHTS = (0.16, 0.05, 0.05, 0.1)
MAKE_UP_PROBABILITY = 0.3
LIPSTICKS = np.array([[170, 30, 45], [200, 60, 90], [120, 30, 50], [185, 110, 100], [150, 60, 60]], np.float64)
EYE_SHADOWS = np.array([[110, 80, 70], [120, 90, 140], [80, 100, 140], [190, 160, 110], [60, 50, 50]], np.float64)
BLUSH = np.array([225.0, 120.0, 125.0])


class FaceFrame:
    """Landmark-relative coordinates of a face's vertices.

    vertices (n, 3) and landmarks (68, 3), model units, before the pose. `u`:
    across the face, 0 on the nose line, +-1 at the jaw's ends; `v`: up, 0 at
    the mouth's centre, 1 at the top of the nose (landmark 27) above it.
    """

    def __init__(self, vertices, landmarks):
        landmarks = np.asarray(landmarks, np.float64)
        mouth = landmarks[48:60].mean(axis=0)
        self.half_width = 0.5 * abs(landmarks[16, 0] - landmarks[0, 0])
        self.height = max(landmarks[27, 1] - mouth[1], 1e-9)
        self.centre = np.array([landmarks[27, 0], mouth[1]])
        self.u = (vertices[:, 0] - self.centre[0]) / self.half_width
        self.v = (vertices[:, 1] - self.centre[1]) / self.height
        self.points = self.at(landmarks)

    def at(self, points):
        """(k, 2) [u, v] of points (k, 3) model units."""
        return np.stack([(points[:, 0] - self.centre[0]) / self.half_width,
                         (points[:, 1] - self.centre[1]) / self.height], axis=-1)

    def ellipse(self, centre, radii):
        """(n,) the ellipse distance of each vertex from `centre` [u, v] with `radii` [ru, rv]: 1 on the ellipse."""
        return np.hypot((self.u - centre[0]) / radii[0], (self.v - centre[1]) / radii[1])


def lips(frame: FaceFrame) -> np.ndarray:
    """(n,) 0-1: inside the outer lip contour (landmarks 48-59), approximated by an ellipse."""
    outer = frame.points[48:60]
    low, high = outer.min(axis=0), outer.max(axis=0)
    return smoothstep(1.2, 1.0, frame.ellipse(0.5 * (low + high), np.maximum(0.5 * (high - low), 1e-3)))


def beard_region(frame: FaceFrame, style) -> np.ndarray:
    """(n,) 0-1: where a facial hair `style` grows (the lips kept bare)."""
    points = frame.points
    lip_top, chin = points[51, 1], points[8, 1]
    nose_base = points[33, 1]
    side = np.abs(frame.u)
    moustache = smoothstep(nose_base, nose_base - 0.08, frame.v) * smoothstep(lip_top - 0.12, lip_top, frame.v) \
        * smoothstep(0.55, 0.4, side)
    chin_area = smoothstep(lip_top, lip_top - 0.2, frame.v) * smoothstep(chin - 0.35, chin - 0.15, frame.v)
    if style == "moustache":
        region = moustache
    elif style == "goatee":
        region = np.maximum(moustache, chin_area * smoothstep(0.42, 0.3, side))
    else:  # stubble and full beards: up the cheeks towards the ears, under the chin
        cheek_line = lip_top + side * (points[1, 1] - lip_top)
        cheeks = smoothstep(cheek_line + 0.06, cheek_line - 0.06, frame.v) * smoothstep(1.1, 0.95, side)
        region = np.maximum(moustache, cheeks * smoothstep(chin - 0.5, chin - 0.1, frame.v))
    return region * (1.0 - lips(frame))


def _facial_hair(color, frame, rng):
    style = rng.choice(len(BEARD_STYLES) + 1, p=[*BEARD_WEIGHTS, 1.0 - sum(BEARD_WEIGHTS)])
    if style == len(BEARD_STYLES):
        return color
    style = BEARD_STYLES[style]
    hair = HAIR_COLOURS[rng.choice(len(HAIR_COLOURS), p=HAIR_WEIGHTS)] * rng.uniform(0.6, 1.0)
    strands = rng.random(len(color))  # per vertex: hairs are finer than any smooth field
    if style == "stubble":
        density = rng.uniform(0.25, 0.6)
        where = beard_region(frame, style) * (strands < density) * rng.uniform(0.35, 0.7)
    else:
        where = beard_region(frame, style) * (0.75 + 0.25 * strands) * rng.uniform(0.8, 1.0)
    return paint(color, where, hair)


def _make_up(color, frame, rng):
    if rng.random() >= MAKE_UP_PROBABILITY:
        return color
    points = frame.points
    if rng.random() < 0.8:
        color = paint(color, lips(frame) * rng.uniform(0.45, 0.9), LIPSTICKS[rng.integers(len(LIPSTICKS))])
    if rng.random() < 0.5:
        shadow = np.zeros(len(color))
        for eye, brow in ((points[36:42], points[17:22]), (points[42:48], points[22:27])):
            centre, top = eye.mean(axis=0), brow[:, 1].mean()
            width = 0.6 * (eye[:, 0].max() - eye[:, 0].min())
            lid = centre + (0.0, 0.4 * (top - centre[1]))
            shadow = np.maximum(shadow, smoothstep(1.0, 0.6, frame.ellipse(lid, (width, 0.4 * (top - centre[1])))))
        color = paint(color, shadow * rng.uniform(0.25, 0.6), EYE_SHADOWS[rng.integers(len(EYE_SHADOWS))])
    if rng.random() < 0.5:
        cheek_u = 0.5 * (np.abs(points[31, 0]) + np.abs(points[2, 0]))
        cheek_v = points[31, 1] - 0.1
        blush = np.maximum(gauss(frame.u, frame.v, cheek_u, cheek_v, 0.22, 0.22),
                           gauss(frame.u, frame.v, -cheek_u, cheek_v, 0.22, 0.22))
        color = paint(color, blush * rng.uniform(0.15, 0.35), BLUSH)
    return color


def groom(albedo, vertices, landmarks, rng) -> np.ndarray:
    """albedo (n, 3) RGB 0-255 -> the same with facial hair and make-up, each drawn from rng (often none).

    vertices (n, 3) and landmarks (68, 3): the face before its pose, model units.
    """
    frame = FaceFrame(np.asarray(vertices, np.float64), landmarks)
    color = _facial_hair(np.asarray(albedo, np.float64), frame, rng)
    return np.clip(_make_up(color, frame, rng), 0.0, 255.0).astype(np.asarray(albedo).dtype)
