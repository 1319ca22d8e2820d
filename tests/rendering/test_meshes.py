import numpy as np
import pytest
from mesh_readers import read_obj, read_ply

from prn.rendering.files.meshes import write_obj, write_ply
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
