"""Triangle meshes with per-vertex colours as Wavefront OBJ or PLY files, written atomically.

Both writers take vertices (n, 3) float in any unit, triangles (m, 3) 0-based
vertex indices and colours (n, 3) uint8 RGB, and write them unchanged: any
change of axes is the caller's.

OBJ: `v x y z r g b` with r, g, b in [0, 1] (the vertex-colour extension that
MeshLab, Blender and Open3D read), then `f a b c` with 1-based indices.
PLY: binary little-endian; vertex (float x, y, z, uchar red, green, blue),
face (list uchar int vertex_indices).
"""

import numpy as np

from prn.rendering.util.atomic import atomic_path
from prn.rendering.util.errors import InputError


def _checked(vertices, triangles, colors):
    """(float64 vertices, int64 triangles, uint8 colours), or InputError describing the mismatch."""
    vertices = np.asarray(vertices, dtype=np.float64)
    triangles = np.asarray(triangles)
    colors = np.asarray(colors)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or not np.isfinite(vertices).all():
        raise InputError(f"mesh vertices must be finite (n, 3), got shape {vertices.shape}")
    if triangles.ndim != 2 or triangles.shape[1] != 3 or not np.issubdtype(triangles.dtype, np.integer):
        raise InputError(f"mesh triangles must be integer (m, 3), got {triangles.dtype} {triangles.shape}")
    if triangles.size and (triangles.min() < 0 or triangles.max() >= len(vertices)):
        raise InputError(f"mesh triangles index outside the {len(vertices)} vertices")
    if colors.shape != vertices.shape or colors.dtype != np.uint8:
        raise InputError(f"mesh colours must be uint8 {vertices.shape}, got {colors.dtype} {colors.shape}")
    return vertices, triangles.astype(np.int64), colors


def write_obj(path, vertices, triangles, colors):
    """Write an OBJ with vertex colours (module doc); the file appears complete or not at all."""
    vertices, triangles, colors = _checked(vertices, triangles, colors)
    # One %-format over a repeated line template: several times faster than a line at a time.
    vertex_text = "v %.4f %.4f %.4f %.4f %.4f %.4f\n" * len(vertices) % tuple(
        np.hstack([vertices, colors / 255.0]).ravel().tolist())
    face_text = "f %d %d %d\n" * len(triangles) % tuple((triangles + 1).ravel().tolist())
    with atomic_path(path) as tmp, open(tmp, "w", encoding="ascii") as handle:
        handle.write(f"# {len(vertices)} vertices, {len(triangles)} triangles; v x y z r g b (colours 0-1)\n")
        handle.write(vertex_text)
        handle.write(face_text)


_PLY_VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                        ("red", "u1"), ("green", "u1"), ("blue", "u1")])
_PLY_FACE = np.dtype([("count", "u1"), ("indices", "<i4", (3,))])


def write_ply(path, vertices, triangles, colors):
    """Write a binary little-endian PLY with vertex colours (module doc), atomically."""
    vertices, triangles, colors = _checked(vertices, triangles, colors)
    vertex_rows = np.empty(len(vertices), _PLY_VERTEX)
    for axis, name in enumerate("xyz"):
        vertex_rows[name] = vertices[:, axis]
    for channel, name in enumerate(("red", "green", "blue")):
        vertex_rows[name] = colors[:, channel]
    face_rows = np.empty(len(triangles), _PLY_FACE)
    face_rows["count"] = 3
    face_rows["indices"] = triangles
    header = "\n".join([
        "ply", "format binary_little_endian 1.0",
        f"element vertex {len(vertices)}",
        "property float x", "property float y", "property float z",
        "property uchar red", "property uchar green", "property uchar blue",
        f"element face {len(triangles)}",
        "property list uchar int vertex_indices",
        "end_header",
    ]) + "\n"
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(header.encode("ascii"))
        handle.write(vertex_rows.tobytes())
        handle.write(face_rows.tobytes())
