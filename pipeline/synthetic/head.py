"""The head surface of the synthetic face: an implicit head cut by rays, plus the facial relief.

Units mm; x to the subject's left, y up, z towards the viewer. The rays of the
half-plane at angle theta around a vertical axis (through x = 0, z = AXIS_Z)
are horizontal from an origin rising up the axis below the nose, then turn
upwards from a fixed origin above it. Rays of one half-plane never cross, so
the surface is star-shaped and cannot intersect itself. A ray's length is the
distance to an implicit head (skull, jaw cut, neck) plus the relief of the
facial features (`features`).
"""

import numpy as np

from prn.pipeline.synthetic.features import (
    brow_relief,
    cheek_relief,
    ear_relief,
    eye_relief,
    front_weight,
    mouth_relief,
    nose_relief,
)
from prn.pipeline.synthetic.shapes import profile, smax, smin, softplus

# Ray family (mm): the axis is vertical through (x=0, z=AXIS_Z).
AXIS_Z = 10.0
NECK_BOTTOM_Y = -122.0
PIVOT_Y = -5.0              # origin of the turning rays (just above the nose tip)
PHI_LIMIT = np.radians(80.0)
RISING_PART = 0.5           # share of the ray parameter t spent on horizontal rays

# Skull section per height y (mm): half-width, front and back extent from z = 0.
_SKULL_Y = [-140, -110, -90, -75, -60, -40, -20, 0, 26, 45, 65, 89, 115, 140, 165]
_SKULL_HALF_WIDTH = [50, 51, 52, 55, 58, 64, 70, 74, 76, 76, 74, 70, 60, 40, 10]
_SKULL_FRONT = [90, 95, 100, 106, 107, 108, 108, 104, 104, 108, 108, 101, 85, 55, 15]
_SKULL_BACK = [95, 95, 95, 95, 95, 95, 95, 95, 95, 95, 95, 92, 80, 55, 15]
SKULL_EXPONENT = 2.4

# Neck: elliptic cylinder per height, leaning forward.
_NECK_Y = [-140, -120, -100, -80, -60, -40, -20, 0, 20, 40]
_NECK_HALF_WIDTH = [50, 52, 55, 58, 61, 65, 70, 74, 74, 70]
_NECK_DEPTH = [46, 46, 47, 50, 53, 56, 58, 60, 60, 60]


def skull_distance(x, y, z):
    """Approximate signed distance (mm) to the skull alone; < 0 inside. x, y, z float64 arrays, mm."""
    half_width = profile(_SKULL_Y, _SKULL_HALF_WIDTH, y)
    depth = np.where(z >= 0.0, profile(_SKULL_Y, _SKULL_FRONT, y), profile(_SKULL_Y, _SKULL_BACK, y))
    level = np.abs(x / half_width) ** SKULL_EXPONENT + np.abs(z / depth) ** SKULL_EXPONENT
    return (level ** (1.0 / SKULL_EXPONENT) - 1.0) * half_width


def jaw_cut_height(x, z):
    """Height of the lower border of the jaw: chin, jaw angle, then up the ramus."""
    floor = -88.0 - 0.15 * softplus(95.0 - z, 4.0) + 0.0095 * x ** 2
    ramus = 0.25 * softplus(32.0 - z, 5.0) ** 2
    return smin(floor + ramus, 8.0, 12.0)


def neck_section(y):
    """Half-width, depth and centre z (mm) of the neck's elliptic section at heights y (mm)."""
    centre_z = 12.0 + 0.3 * smin(y + 95.0, 27.0, 10.0)
    return profile(_NECK_Y, _NECK_HALF_WIDTH, y), profile(_NECK_Y, _NECK_DEPTH, y), centre_z


def _neck_distance(x, y, z):
    half_width, depth, centre_z = neck_section(y)
    radial = np.sqrt((x / half_width) ** 2 + ((z - centre_z) / depth) ** 2)
    return smax((radial - 1.0) * depth, y - 35.0, 10.0)


def _head_distance(p):
    """Approximate signed distance (mm) to the head without facial relief; < 0 inside."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    face = smax(skull_distance(x, y, z), 0.7 * (jaw_cut_height(x, z) - y), 7.0)
    return smin(face, _neck_distance(x, y, z), 9.0)


def rays(theta, t):
    """Origins and unit directions (..., 3) of the rays at angle theta, parameter t in [0, 1]."""
    rising = t < RISING_PART
    origin_y = np.where(rising, NECK_BOTTOM_Y + (PIVOT_Y - NECK_BOTTOM_Y) * t / RISING_PART, PIVOT_Y)
    phi = np.where(rising, 0.0, PHI_LIMIT * (t - RISING_PART) / (1.0 - RISING_PART))
    origin = np.stack(np.broadcast_arrays(0.0, origin_y, AXIS_Z), axis=-1)
    direction = np.stack([np.cos(phi) * np.sin(theta), np.sin(phi) + 0.0 * theta,
                          np.cos(phi) * np.cos(theta)], axis=-1)
    return origin, direction


def cast(origin, direction, step=1.5, start=15.0, stop=260.0, refinements=30):
    """Distance along each ray to the first exit from the head (mm)."""
    inside = np.full(origin.shape[:-1], start)
    found = np.zeros(origin.shape[:-1], bool)
    outside = np.full(origin.shape[:-1], stop)
    for r in np.arange(start + step, stop, step):
        exits = ~found & (_head_distance(origin + r * direction) > 0.0)
        outside[exits] = r
        found |= exits
        if found.all():
            break
        inside[~found] = r
    for _ in range(refinements):
        middle = 0.5 * (inside + outside)
        out = _head_distance(origin + middle[..., None] * direction) > 0.0
        outside = np.where(out, middle, outside)
        inside = np.where(out, inside, middle)
    return 0.5 * (inside + outside)


def _relief(base, theta):
    """Offset (mm) along the ray for base surface points (..., 3)."""
    x, y = base[..., 0], base[..., 1]
    radius = np.hypot(x, base[..., 2] - AXIS_Z)
    face = nose_relief(x, y) + eye_relief(x, y) + brow_relief(x, y) + mouth_relief(x, y) + cheek_relief(x, y)
    return front_weight(theta) * face + ear_relief(theta, y, radius)


def surface(theta, t):
    """Base points, ray directions and final points (..., 3), mm."""
    origin, direction = rays(theta, t)
    radius = cast(origin, direction)
    base = origin + radius[..., None] * direction
    final = base + _relief(base, theta)[..., None] * direction
    return base, direction, final
