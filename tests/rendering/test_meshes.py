import numpy as np
import pytest
from mesh_readers import read_obj, read_ply

from prn.rendering.files.meshes import OBJ_DECIMALS, obj_body, obj_fixed_point, write_obj, write_ply
from prn.rendering.util.errors import InputError


@pytest.fixture
def mesh():
    rng = np.random.default_rng(0)
    vertices = rng.uniform(-50, 300, (40, 3))
    triangles = rng.integers(0, 40, (70, 3))
    colors = rng.integers(0, 256, (40, 3), dtype=np.uint8)
    return vertices, triangles, colors


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


def reference_obj_body(vertices, triangles, colors):
    """The OBJ lines formatted by Python from the same fixed-point numbers (the kernel's NumPy reference)."""
    def fixed(value):
        return f"{'-' if value < 0 else ''}{abs(value) // 10 ** OBJ_DECIMALS}.{abs(value) % 10 ** OBJ_DECIMALS:04d}"

    lines = ["v " + " ".join(fixed(int(value)) for value in row) for row in obj_fixed_point(vertices, colors)]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in np.asarray(triangles).tolist()]
    return ("\n".join(lines) + "\n").encode("ascii")


def test_obj_kernel_writes_the_reference_text(mesh):
    vertices, triangles, colors = mesh
    rng = np.random.default_rng(1)
    vertices = np.vstack([vertices, [[0.0, -0.0, -0.00004], [-0.00006, 1e9 + 0.5, -123456.78905]],
                          rng.normal(0, 1e-3, (5, 3))])
    colors = np.vstack([colors, [[0, 255, 128], [1, 2, 3]], np.zeros((5, 3), np.uint8)])
    triangles = np.vstack([triangles, [[46, 0, 9]]])
    assert obj_body(vertices, triangles, colors) == reference_obj_body(vertices, triangles, colors)
    assert b"v 0.0000 0.0000 -0.0000 " not in obj_body(vertices, triangles, colors)  # no negative zero


def test_obj_numbers_are_the_vertices_rounded_to_four_decimals(mesh):
    vertices, triangles, colors = mesh
    text = obj_body(vertices, triangles, colors).decode().splitlines()
    written = np.array([[float(word) for word in line.split()[1:4]] for line in text if line.startswith("v ")])
    np.testing.assert_allclose(written, vertices, rtol=0, atol=0.5e-4 + 1e-9)
    assert written.tolist() == [[float(f"{value:.4f}") for value in row] for row in vertices.tolist()]


def test_obj_vertices_too_large_for_fixed_point_are_refused(tmp_path, mesh):
    vertices, triangles, colors = mesh
    with pytest.raises(InputError, match="1e14"):
        write_obj(tmp_path / "m.obj", vertices * 1e13, triangles, colors)
    assert list(tmp_path.iterdir()) == []
