import numpy as np
import pytest

from prn.rendering.errors import InputError
from prn.rendering.mesh_io import write_obj, write_ply


@pytest.fixture
def mesh():
    rng = np.random.default_rng(0)
    vertices = rng.uniform(-50, 300, (40, 3))
    triangles = rng.integers(0, 40, (70, 3))
    colors = rng.integers(0, 256, (40, 3), dtype=np.uint8)
    return vertices, triangles, colors


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


def test_obj_reads_back_with_colours_and_one_based_faces(tmp_path, mesh):
    vertices, triangles, colors = mesh
    write_obj(tmp_path / "m.obj", vertices, triangles, colors)
    v, c, f = read_obj(tmp_path / "m.obj")
    assert v.shape == (40, 3) and f.shape == (70, 3)
    np.testing.assert_allclose(v, vertices, atol=6e-5)
    np.testing.assert_allclose(c * 255, colors, atol=0.02)
    np.testing.assert_array_equal(f, triangles)
    assert list(tmp_path.iterdir()) == [tmp_path / "m.obj"]


def test_ply_is_binary_little_endian_and_reads_back(tmp_path, mesh):
    vertices, triangles, colors = mesh
    write_ply(tmp_path / "m.ply", vertices, triangles, colors)
    header, v, f = read_ply(tmp_path / "m.ply")
    assert header[:2] == ["ply", "format binary_little_endian 1.0"]
    assert "property list uchar int vertex_indices" in header
    np.testing.assert_allclose(np.stack([v["x"], v["y"], v["z"]], 1), vertices, rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(np.stack([v["r"], v["g"], v["b"]], 1), colors)
    assert (f["n"] == 3).all()
    np.testing.assert_array_equal(f["i"], triangles)


@pytest.mark.parametrize("writer", [write_obj, write_ply])
def test_bad_meshes_are_refused_and_leave_no_file(tmp_path, mesh, writer):
    vertices, triangles, colors = mesh
    bad = [
        (vertices[:, :2], triangles, colors, "vertices"),
        (np.where(np.arange(40)[:, None] == 3, np.nan, vertices), triangles, colors, "vertices"),
        (vertices, triangles + 40, colors, "index outside"),
        (vertices, triangles.astype(float), colors, "integer"),
        (vertices, triangles, colors[:30], "colours"),
        (vertices, triangles, colors.astype(float), "colours"),
    ]
    for v, t, c, message in bad:
        with pytest.raises(InputError, match=message):
            writer(tmp_path / "m.out", v, t, c)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("writer", [write_obj, write_ply])
def test_an_existing_file_is_replaced_whole(tmp_path, mesh, writer):
    vertices, triangles, colors = mesh
    target = tmp_path / "m.mesh"
    target.write_text("old")
    writer(target, vertices, triangles, colors)
    assert target.read_bytes() != b"old"
    with pytest.raises(InputError):
        writer(target, vertices, triangles + 99, colors)
    assert target.stat().st_size > 100 and len(list(tmp_path.iterdir())) == 1
