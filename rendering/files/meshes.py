"""Triangle meshes with per-vertex colours as Wavefront OBJ or PLY files, written atomically.

Both writers take vertices (n, 3) float in any unit, triangles (m, 3) 0-based
vertex indices and colours (n, 3) uint8 RGB, and write them unchanged: any
change of axes is the caller's.

OBJ: `v x y z r g b` with r, g, b in [0, 1] (the vertex-colour extension that
MeshLab, Blender and Open3D read), then `f a b c` with 1-based indices;
numbers with OBJ_DECIMALS decimals, rounded half to even.
PLY: binary little-endian; vertex (float x, y, z, uchar red, green, blue),
face (list uchar int vertex_indices).
"""

import numba
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


OBJ_DECIMALS = 4


def write_obj(path, vertices, triangles, colors):
    """Write an OBJ with vertex colours (module doc); the file appears complete or not at all."""
    vertices, triangles, colors = _checked(vertices, triangles, colors)
    header = f"# {len(vertices)} vertices, {len(triangles)} triangles; v x y z r g b (colours 0-1)\n"
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(header.encode("ascii"))
        handle.write(obj_body(vertices, triangles, colors))


def obj_fixed_point(vertices, colors) -> np.ndarray:
    """(n, 6) int64: x, y, z and r, g, b / 255 times 10 ** OBJ_DECIMALS, rounded half to even."""
    values = np.hstack([np.asarray(vertices, np.float64), np.asarray(colors, np.float64) / 255.0])
    if values.size and np.abs(values).max() >= 1e14:
        raise InputError("mesh vertices beyond 1e14 do not fit OBJ's fixed-point numbers")
    return np.rint(values * 10.0 ** OBJ_DECIMALS).astype(np.int64)


def obj_body(vertices, triangles, colors) -> bytes:
    """The `v` and `f` lines of an OBJ as ASCII bytes (vertices (n, 3), triangles (m, 3) 0-based, colours uint8)."""
    # Formatting ~40,000 vertex lines with Python's % operator takes tens of
    # milliseconds; the kernel writes the same digits straight into a buffer.
    fixed = obj_fixed_point(vertices, colors)
    faces = np.ascontiguousarray(triangles, np.int64) + 1
    buffer = np.empty(len(fixed) * 6 * 24 + 8 + len(faces) * 3 * 21 + 8, np.uint8)
    length = _obj_kernel(fixed, faces, OBJ_DECIMALS, buffer)
    return buffer[:length].tobytes()


@numba.njit(cache=True, nogil=True)
def _put_digits(buffer, position, value):
    """Write the non-negative int `value` in decimal at buffer[position:]; returns the position after it."""
    start = position
    while True:
        buffer[position] = 48 + value % 10
        value //= 10
        position += 1
        if value == 0:
            break
    end = position - 1
    while start < end:
        buffer[start], buffer[end] = buffer[end], buffer[start]
        start += 1
        end -= 1
    return position


@numba.njit(cache=True, nogil=True)
def _put_fixed(buffer, position, scaled, decimals):
    """Write scaled / 10 ** decimals with `decimals` decimals (scaled: int) at buffer[position:]."""
    if scaled < 0:
        buffer[position] = 45  # '-'
        position += 1
        scaled = -scaled
    unit = 10 ** decimals
    position = _put_digits(buffer, position, scaled // unit)
    buffer[position] = 46  # '.'
    fraction = scaled % unit
    for k in range(decimals, 0, -1):
        buffer[position + k] = 48 + fraction % 10
        fraction //= 10
    return position + decimals + 1


@numba.njit(cache=True, nogil=True)
def _obj_kernel(fixed, faces, decimals, buffer):
    position = 0
    for i in range(fixed.shape[0]):
        buffer[position] = 118  # 'v'
        position += 1
        for k in range(6):
            buffer[position] = 32
            position = _put_fixed(buffer, position + 1, fixed[i, k], decimals)
        buffer[position] = 10
        position += 1
    for i in range(faces.shape[0]):
        buffer[position] = 102  # 'f'
        position += 1
        for k in range(3):
            buffer[position] = 32
            position = _put_digits(buffer, position + 1, faces[i, k])
        buffer[position] = 10
        position += 1
    return position


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
