"""Cast shadows of a directional light: which vertices of a scene the light reaches.

A shadow map: the scene is turned so that the light looks along -z as the
camera does, z-buffered with `rasterize`, and a vertex is lit when nothing lies
nearer the light at its place. Samples at several offsets around the vertex
(percentage-closer filtering) give a soft penumbra instead of a hard edge.
"""

import numpy as np

from prn.rendering.raster.rasterizer import rasterize, vertex_visibility
from prn.rendering.util.errors import InputError

MAX_MAP_SIDE = 2048   # pixels; larger scenes are drawn smaller in the light's view


def towards_z(direction) -> np.ndarray:
    """(3, 3) float64 rotation R with R @ direction / |direction| = (0, 0, 1)."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    axis = np.cross(d, (0.0, 0.0, 1.0))
    sine, cosine = np.linalg.norm(axis), d[2]
    if sine < 1e-12:
        return np.eye(3) if cosine > 0 else np.diag([1.0, -1.0, -1.0])
    k = axis / sine
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + sine * cross + (1.0 - cosine) * cross @ cross


def lit_fraction(vertices, triangles, light, softness=0.0, tolerance=2.0) -> np.ndarray:
    """How much of the directional light reaches each vertex: (n,) float32, 0 (shadow) to 1.

    vertices (n, 3) image coordinates (x right, y down, z towards the viewer,
    pixels); triangles (m, 3) of the scene that casts the shadows; light (3,)
    towards the light (`shading.light_direction`). softness: the penumbra's
    half-width in pixels (0: hard shadows, one sample). tolerance: pixels of
    depth a vertex may lie under the surface and still be lit (the surface's
    own slope within a pixel). Only occlusion: a vertex facing away from the
    light is also "lit" here; shading's n . l darkens it.
    """
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or not np.isfinite(v).all():
        raise InputError(f"vertices must be finite (n, 3), got shape {v.shape}")
    turned = (v - v.mean(axis=0)) @ towards_z(light).T
    low = turned[:, :2].min(axis=0)
    extent = turned[:, :2].max(axis=0) - low
    scale = min(1.0, (MAX_MAP_SIDE - 4) / max(extent.max(), 1e-6))
    turned[:, :2] = (turned[:, :2] - low) * scale + 2.0
    width, height = (np.ceil(extent * scale) + 5).astype(int)
    depth = rasterize(turned.astype(np.float32), triangles, height, width).depth
    steps = (0.0,) if softness <= 0 else np.linspace(-softness, softness, 3) * scale
    lit = np.zeros(len(v), np.float32)
    for dy in steps:
        for dx in steps:
            shifted = turned + (dx, dy, 0.0)
            lit += vertex_visibility(shifted.astype(np.float32), depth, tolerance) | ~_covered(shifted, depth)
    return lit / len(steps) ** 2


def _covered(vertices, depth) -> np.ndarray:
    """(n,) bool: the vertex's nearest pixel is inside the map and something covers it."""
    col = np.floor(vertices[:, 0] + 0.5).astype(np.int64)
    row = np.floor(vertices[:, 1] + 0.5).astype(np.int64)
    inside = (col >= 0) & (col < depth.shape[1]) & (row >= 0) & (row < depth.shape[0])
    covered = np.zeros(len(vertices), bool)
    covered[inside] = np.isfinite(depth[row[inside], col[inside]])
    return covered
