"""Independent readers of the OBJ and PLY files the toolkit writes: the oracles of the mesh tests."""

import numpy as np


def read_obj(path):
    """(vertices (n, 3), colours (n, 3) in [0, 1], triangles (m, 3) 0-based) of an OBJ with vertex colours."""
    rows = {"v": [], "f": []}
    for line in path.read_text().splitlines():
        kind, *values = line.split()
        if kind in rows:
            rows[kind].append([float(value) for value in values])
    v, f = np.array(rows["v"]), np.array(rows["f"], dtype=np.int64)
    return v[:, :3], v[:, 3:], f - 1


def read_ply(path):
    """(header lines, vertex records, face records) of a binary little-endian PLY as write_ply lays it out."""
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    n_vertices = int(next(line for line in header if line.startswith("element vertex")).split()[-1])
    n_faces = int(next(line for line in header if line.startswith("element face")).split()[-1])
    vertex_type = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1")])
    face_type = np.dtype([("n", "u1"), ("i", "<i4", (3,))])
    vertices = np.frombuffer(data, vertex_type, n_vertices, end)
    faces = np.frombuffer(data, face_type, n_faces, end + n_vertices * vertex_type.itemsize)
    assert len(data) == end + n_vertices * vertex_type.itemsize + n_faces * face_type.itemsize
    return header, vertices, faces
