"""Smooth scalar building blocks of the synthetic face: steps, bumps, smooth minimum and maximum.

Elementwise on float64 arrays or scalars; coordinates and widths in mm.
"""

import numpy as np
from scipy.interpolate import PchipInterpolator


def smoothstep(edge0, edge1, x):
    """Cubic step from 0 at edge0 to 1 at edge1 (either order), clamped."""
    s = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def gauss(x, y, cx, cy, rx, ry):
    """Elliptic Gaussian: 1 at (cx, cy), e^-1 at the radii rx, ry."""
    return np.exp(-((x - cx) / rx) ** 2 - ((y - cy) / ry) ** 2)


def bump(x, y, cx, cy, rx, ry):
    """Compact C2 bump: 1 at the centre, 0 outside the ellipse."""
    d2 = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
    return np.clip(1.0 - d2, 0.0, None) ** 3


def smin(a, b, k):
    """Smooth minimum of two signed distances with blend radius k."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1.0 - h) + a * h - k * h * (1.0 - h)


def smax(a, b, k):
    """Smooth maximum of two signed distances with blend radius k."""
    return -smin(-a, -b, k)


def softplus(x, width):
    """Smooth max(x, 0) with a knee of the given width."""
    return width * np.logaddexp(0.0, x / width)


def profile(ys, values, y):
    """Monotone cubic (PCHIP) interpolation of values at heights ys, held constant beyond them."""
    return PchipInterpolator(ys, values)(np.clip(y, ys[0], ys[-1]))
