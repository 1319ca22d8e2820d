import numpy as np
import pytest

from prn.rendering.geometry.crop import crop_box, crop_transform, positions_in_crop
from prn.rendering.geometry.pose import rotation_matrices
from prn.rendering.morphable.bfm import load_morphable_model
from prn.rendering.morphable.uv_assets import full_triangles, uv_pixel_coords, uv_table
from prn.rendering.raster.rasterizer import rasterize, render_colors, vertex_visibility
from prn.rendering.raster.texture import fill_holes, mirror_vertices, sample_bilinear, vertex_colors, visible_vertices

SIZE = 256


def ramp_image(h=SIZE, w=SIZE):
    cols, rows = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return np.stack([cols, rows, 0.5 * (cols + rows)], axis=-1)


def test_fill_holes_keeps_known_pixels_exactly():
    rng = np.random.default_rng(0)
    image = rng.random((SIZE, SIZE, 3), dtype=np.float32) * 255
    known = rng.random((SIZE, SIZE)) < 0.3
    out = fill_holes(image, known)
    assert out.shape == image.shape and out.dtype == np.float32
    assert np.array_equal(out[known], image[known])
    assert np.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 255


def test_fill_holes_constant():
    image = np.zeros((SIZE, SIZE, 3), np.float32)
    image[:] = (10.0, 200.0, 77.0)
    known = np.ones((SIZE, SIZE), bool)
    known[:, SIZE // 2:] = False  # half the image
    known[20:40, 10:30] = False
    out = fill_holes(image * known[..., None], known)
    np.testing.assert_allclose(out, image, atol=1e-3)


def test_fill_holes_ramp_is_smooth_and_close():
    image = ramp_image()
    known = np.ones((SIZE, SIZE), bool)
    known[64:192, 64:192] = False
    out = fill_holes(np.where(known[..., None], image, 0), known)
    error = np.abs(out - image)[~known]
    assert error.mean() < 8 and error.max() < 20  # a 128-pixel hole in a 0-255 ramp
    # Smooth: no jumps between neighbouring pixels much larger than the ramp's slope.
    assert np.abs(np.diff(out, axis=0)).max() < 3 and np.abs(np.diff(out, axis=1)).max() < 3


def test_fill_holes_nothing_known_and_odd_sizes():
    assert not fill_holes(np.ones((7, 5, 2), np.float32), np.zeros((7, 5), bool)).any()
    rng = np.random.default_rng(1)
    for shape in [(1, 7, 3), (7, 1, 2), (3, 5, 1), (255, 129, 5), (2, 2, 3)]:
        image = rng.random(shape, dtype=np.float32)
        known = rng.random(shape[:2]) < 0.5
        known.flat[0] = True
        out = fill_holes(image, known)
        assert out.shape == shape and np.isfinite(out).all()
        assert np.array_equal(out[known], image[known])
        assert out.min() >= 0 and out.max() <= 1


def test_sample_bilinear():
    image = ramp_image(20, 30)
    points = np.array([[0, 0], [3.25, 7.5], [29, 19], [12.5, 0.75]], np.float32)
    expected = np.stack([points[:, 0], points[:, 1], 0.5 * points.sum(1)], 1)
    np.testing.assert_allclose(sample_bilinear(image, points), expected, atol=0.05)
    many = np.random.default_rng(2).random((40_000, 2)) * (29, 19)  # more than one remap row
    got = sample_bilinear(image, many)
    np.testing.assert_allclose(got[:, :2], many, atol=0.05)


@pytest.fixture(scope="module")
def small(small_model_dir):
    model = load_morphable_model(small_model_dir)
    return model, mirror_vertices(model.uv)


def test_mirror_vertices(small):
    model, mirror = small
    n = model.n_vertices
    assert mirror.shape == (n,) and mirror.dtype == np.int64
    assert (mirror[mirror] == np.arange(n)).mean() > 0.95
    uv = model.uv
    assert np.abs(uv[mirror, 0] - (1 - uv[:, 0])).max() < 0.05
    landmarks = model.landmarks
    # iBUG 36 (outer corner of one eye) and 45 (the other): mirrors of each other.
    for a, b in [(36, 45), (45, 36), (48, 54), (0, 16)]:
        close = np.linalg.norm(uv[mirror[landmarks[a]]] - uv[landmarks[b]])
        assert close < 0.02, (a, b, close)
    # Midline landmarks (nose ridge, nose tip, chin) stay on the midline.
    for k in (8, 27, 30, 33):
        assert abs(uv[mirror[landmarks[k]], 0] - uv[landmarks[k], 0]) < 0.02


def place(model, yaw_degrees):
    """The mean shape turned in yaw, in a 256 crop: (n, 3) float32 image coordinates."""
    vertices = model.mean.reshape(-1, 3).astype(np.float64)
    vertices = vertices @ rotation_matrices([0.0, np.radians(yaw_degrees), 0.0]).T
    vertices = vertices * np.array([1.0, -1.0, 1.0])
    transform = crop_transform(*crop_box(vertices[model.landmarks, :2]), out_size=SIZE)
    return positions_in_crop(vertices, transform)


def symmetric_colors(model):
    """Smooth per-vertex colours, the same on both sides of the face: (n, 3) float32 0-255."""
    vertices = model.mean.reshape(-1, 3).astype(np.float64)
    x, y, z = vertices.T
    span = np.ptp(vertices, axis=0)
    ax = np.abs(x) / span[0]
    return np.stack([128 + 100 * np.sin(6 * ax), 128 + 100 * np.cos(5 * y / span[1]),
                     128 + 80 * np.sin(4 * (ax + z / span[2]))], 1).astype(np.float32)


def recover(model, mirror, yaw, colors):
    triangles = full_triangles(model)
    vertices = place(model, yaw)
    image = np.clip(np.round(render_colors(vertices, triangles, colors, SIZE, SIZE)), 0, 255)
    out = vertex_colors(image.astype(np.uint8), vertices, triangles, uv_table(model, SIZE),
                        uv_pixel_coords(model.uv, SIZE), mirror)
    visible = visible_vertices(vertices, rasterize(vertices, triangles, SIZE, SIZE).depth)
    assert out.shape == colors.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 255
    return out, visible


def test_vertex_colors_frontal(small):
    model, mirror = small
    colors = symmetric_colors(model)
    out, visible = recover(model, mirror, 0.0, colors)
    assert visible.mean() > 0.5
    error = np.abs(out - colors).mean(axis=1)
    assert error[visible].mean() < 2
    assert np.median(error) < 1


def test_vertex_colors_hidden_side_from_mirror(small):
    model, mirror = small
    colors = symmetric_colors(model)
    out, visible = recover(model, mirror, 60.0, colors)
    error = np.abs(out - colors).mean(axis=1)
    from_mirror = ~visible & visible[mirror]
    assert from_mirror.mean() > 0.1
    assert error[visible].mean() < 2
    assert error[from_mirror].mean() < 2
    face = model.face_vertices if model.face_vertices is not None else np.arange(model.n_vertices)
    assert error[face].mean() < 2


def test_vertex_colors_fills_vertices_seen_nowhere(small):
    model, mirror = small
    colors = np.full((model.n_vertices, 3), (200.0, 60.0, 30.0), np.float32)
    out, visible = recover(model, mirror, 60.0, colors)
    seen_nowhere = ~visible & ~visible[mirror]
    assert seen_nowhere.any()
    # A constant face is filled with that constant everywhere: vertices on the
    # silhouette, whose pixels blend with the black background, are not sampled.
    np.testing.assert_allclose(out, colors, atol=0.5)


def test_vertex_colors_face_outside_image(small):
    model, mirror = small
    vertices = place(model, 0.0) + np.float32([1000, 0, 0])
    out = vertex_colors(np.zeros((SIZE, SIZE, 3), np.uint8), vertices, full_triangles(model),
                        uv_table(model, SIZE), uv_pixel_coords(model.uv, SIZE), mirror)
    assert not out.any()


def test_visible_vertices_matches_vertex_visibility():
    rng = np.random.default_rng(0)
    for _ in range(10):
        vertices = (rng.random((3000, 3)) * (40, 30, 10) - (5, 5, 0)).astype(np.float32)
        vertices[::7, :2] = np.round(vertices[::7, :2] * 2) / 2  # half-pixel ties
        vertices[0] = np.nan
        vertices[1, 0] = np.inf
        depth = (rng.random((20, 30)) * 10).astype(np.float32)
        depth[rng.random((20, 30)) < 0.3] = -np.inf
        x, y = vertices[:, 0], vertices[:, 1]
        with np.errstate(invalid="ignore"):
            inside = (x >= 0) & (x <= 29) & (y >= 0) & (y <= 19)
        expected = vertex_visibility(vertices, depth, 1.5) & inside
        assert np.array_equal(visible_vertices(vertices, depth, 1.5), expected)
