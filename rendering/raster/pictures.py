"""Pictures for people to look at: position maps as colours, shaded meshes, landmarks drawn on images.

Images are (h, w, 3) uint8 RGB; points and vertices are in image pixels (x
right, y down, z towards the viewer). A picture drawn `scale` times larger
than the image its points belong to (resized with cv2.resize) puts image
point x at (x + 0.5) * scale - 0.5, where cv2.resize puts that pixel centre.
"""

import cv2
import numpy as np

from prn.rendering.raster.rasterizer import render_colors
from prn.rendering.raster.shading import vertex_normals
from prn.rendering.util.errors import InputError

LANDMARK_COLOR = (0, 255, 0)       # RGB
MESH_COLOR = (205, 215, 235)
DRAWABLE = 1e5                     # cv2 draws at int32 pixels: points farther out are left out
MARKERS = ("dot", "cross")


def posmap_picture(posmap, covered=None) -> np.ndarray:
    """(S, S, 3) uint8: x, y, z of a position map (S, S, 3) as red, green, blue, black where not covered.

    Each channel is stretched to 0-255 over the covered pixels: `covered`
    (S, S) bool, by default the pixels that are finite and not all zero.
    """
    posmap = np.asarray(posmap, np.float32)
    finite = np.isfinite(posmap).all(-1)
    covered = (posmap != 0).any(-1) if covered is None else np.asarray(covered, bool)
    covered = covered & finite
    out = np.zeros(posmap.shape, np.uint8)
    if covered.any():
        values = posmap[covered]
        low, high = values.min(0), values.max(0)
        scaled = (values - low) / np.maximum(high - low, 1e-6) * 255.0
        out[covered] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return out


def shaded_mesh(vertices, triangles, background, color=MESH_COLOR, ambient=0.15, opacity=1.0) -> np.ndarray:
    """(h, w, 3) uint8: the background (h, w, 3) with the mesh painted over it, lit from the front.

    vertices (n, 3) image pixels, triangles (m, 3). A vertex's colour is
    `color` times ambient + (1 - ambient) * max(0, normal z), normals pointing
    out of the mesh; the mesh covers `opacity` of the background under it.
    """
    height, width = np.asarray(background).shape[:2]
    return blend_rendering(background, render_shaded(vertices, triangles, height, width, color, ambient), opacity)


def render_shaded(vertices, triangles, height, width, color=MESH_COLOR, ambient=0.15) -> np.ndarray:
    """(h, w, 5) float32 of the mesh lit from the front: RGB shade, coverage (1 or 0), z of the visible surface.

    vertices (n, 3) image pixels, triangles (m, 3); shades as in shaded_mesh; 0 where the mesh is not.
    """
    facing = np.clip(vertex_normals(vertices, triangles)[:, 2:3], 0, 1)
    shades = np.asarray(color, np.float32) * (ambient + (1 - ambient) * facing)
    attributes = np.hstack([shades, np.ones_like(facing), np.asarray(vertices, np.float32)[:, 2:3]])
    return render_colors(vertices, triangles, attributes, height, width)


def blend_rendering(background, rendered, opacity=1.0) -> np.ndarray:
    """(h, w, 3) uint8: render_shaded's RGB over the background (h, w, 3) uint8 where covered, at `opacity`."""
    out = np.array(background, dtype=np.uint8)
    covered = rendered[..., 3]
    rows, columns = np.flatnonzero(covered.any(1)), np.flatnonzero(covered.any(0))
    if len(rows):  # blend only the rectangle the mesh covers
        window = np.s_[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]
        alpha = np.float32(opacity) * rendered[window][..., 3:4]
        blended = out[window] * (1 - alpha) + alpha * rendered[window][..., :3]
        out[window] = np.clip(blended, 0, 255).astype(np.uint8)
    return out


def canvas_pixels(points, scale=1.0):
    """(pixels (k, 2) int64, drawable (k,) bool) of points (k, >=2) on a picture `scale` times their image's size."""
    scaled = (np.asarray(points, np.float64)[:, :2] + 0.5) * scale - 0.5
    drawable = (np.abs(scaled) < DRAWABLE).all(1)
    return np.rint(np.where(drawable[:, None], scaled, 0)).astype(np.int64), drawable


def draw_landmarks(canvas, points, color=LANDMARK_COLOR, marker="dot", size=3, scale=1.0) -> np.ndarray:
    """Draw points (k, >=2) onto canvas (h, w, 3) uint8 RGB in place, `scale` as in the module doc; returns it.

    marker "dot": a filled, anti-aliased circle of radius `size`; "cross": an
    upright cross `size` pixels across, lines max(1, size // 4) thick. Points
    that are not finite or far outside are skipped.
    """
    if marker not in MARKERS:
        raise InputError(f"landmark marker '{marker}': expected one of {', '.join(MARKERS)}")
    pixels, drawable = canvas_pixels(points, scale)
    for x, y in pixels[drawable].tolist():
        if marker == "dot":
            cv2.circle(canvas, (x, y), size, color, -1, cv2.LINE_AA)
        else:
            cv2.drawMarker(canvas, (x, y), color, cv2.MARKER_CROSS, size, max(1, size // 4), cv2.LINE_8)
    return canvas
