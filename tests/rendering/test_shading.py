"""Tests of prn.rendering.raster.shading: vertex normals, lighting, the colour transform."""

import numpy as np
import pytest
from conftest import real_path
from references import shade_reference, vertex_normals_reference

from prn.rendering.raster.shading import IDENTITY_COLOR, color_transform, light_direction, shade, vertex_normals
from prn.rendering.util.errors import InputError

# ---------------------------------------------------------------------------
# Meshes


def grid_mesh(rows, cols, screen_clockwise=True):
    """Triangles of a rows x cols vertex grid (row-major vertex ids).

    screen_clockwise: each triangle runs clockwise as seen on screen in image
    coordinates (y down), e.g. top-left -> top-right -> bottom-left.
    """
    tris = []
    for r in range(rows - 1):
        for c in range(cols - 1):
            a, b, d, e = r * cols + c, r * cols + c + 1, (r + 1) * cols + c, (r + 1) * cols + c + 1
            tris += [(a, b, d), (b, e, d)]
    t = np.array(tris, np.int32)
    return t if screen_clockwise else t[:, [0, 2, 1]]


def sphere(n_lat=40, n_lon=80, radius=100.0, center=(200.0, 150.0, 30.0), hemisphere=False):
    """A UV sphere in image coordinates; the front cap (z >= centre) only if hemisphere."""
    lat_max = np.pi / 2 if hemisphere else np.pi
    lat = np.linspace(0.0, lat_max, n_lat)  # angle from the +z pole (towards the viewer)
    lon = np.linspace(0.0, 2 * np.pi, n_lon, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    directions = np.stack([np.sin(la) * np.cos(lo), np.sin(la) * np.sin(lo), np.cos(la)], -1)
    directions = directions.reshape(-1, 3)
    tris = []
    for i in range(n_lat - 1):
        for j in range(n_lon):
            a, b = i * n_lon + j, i * n_lon + (j + 1) % n_lon
            c, d = (i + 1) * n_lon + j, (i + 1) * n_lon + (j + 1) % n_lon
            tris += [(a, b, c), (b, d, c)]
    return center + radius * directions, directions, np.array(tris, np.int32)


# ---------------------------------------------------------------------------
# Normals


def test_normals_of_a_plane_follow_the_winding_in_image_coordinates():
    ys, xs = np.mgrid[0:5, 0:6].astype(np.float32)
    v = np.stack([xs.ravel() * 10, ys.ravel() * 10, np.full(xs.size, 7.0)], axis=1)
    towards = vertex_normals(v, grid_mesh(5, 6, screen_clockwise=True), orient=False)
    away = vertex_normals(v, grid_mesh(5, 6, screen_clockwise=False), orient=False)
    assert towards.dtype == np.float32 and towards.shape == v.shape
    np.testing.assert_allclose(towards, np.tile([0, 0, 1], (len(v), 1)), atol=1e-6)
    np.testing.assert_allclose(away, np.tile([0, 0, -1], (len(v), 1)), atol=1e-6)


def test_normals_of_a_tilted_plane():
    # z rises towards the image's right (x): the surface faces the viewer and leans left (-x).
    ys, xs = np.mgrid[0:4, 0:4].astype(np.float64)
    v = np.stack([xs.ravel(), ys.ravel(), xs.ravel()], axis=1)
    n = vertex_normals(v, grid_mesh(4, 4), orient=False)
    np.testing.assert_allclose(n, np.tile([-1, 0, 1] / np.sqrt(2), (16, 1)), atol=1e-6)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("hemisphere", [False, True])
def test_sphere_normals_point_outwards_whatever_the_winding(flip, hemisphere):
    v, directions, t = sphere(hemisphere=hemisphere)
    if flip:
        t = t[:, [0, 2, 1]]
    n = vertex_normals(v, t)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
    # Poles and seams aside, the normal is the radial direction to within ~1 degree.
    cos = np.sum(n * directions, axis=1)
    assert np.median(cos) > 0.9999 and cos.min() > 0.99
    front = directions[:, 2] > 0.2
    assert (n[front, 2] > 0).all()


def test_orient_false_keeps_the_winding_sign():
    v, directions, t = sphere()
    one = vertex_normals(v, t, orient=False)
    other = vertex_normals(v, t[:, [0, 2, 1]], orient=False)
    np.testing.assert_allclose(one, -other, atol=1e-6)
    outward = vertex_normals(v, t)
    np.testing.assert_array_equal(outward, vertex_normals(v, t[:, [0, 2, 1]]))
    assert np.array_equal(one, outward) or np.array_equal(other, outward)


def test_normals_kernels_match_their_numpy_twin():
    rng = np.random.default_rng(0)
    v, _, t = sphere(30, 50)
    v = v + rng.normal(0, 3.0, v.shape)  # irregular triangles
    v = np.concatenate([v, [[0.0, 0.0, 0.0]]])  # an isolated vertex
    t = np.concatenate([t, [[0, 0, 1]], [[5, 6, 5]]])  # degenerate triangles
    for orient in (True, False):
        for tri in (t, t[:, [0, 2, 1]]):
            np.testing.assert_allclose(vertex_normals(v, tri, orient),
                                       vertex_normals_reference(v, tri, orient), atol=2e-6)
    n = vertex_normals(v, t)
    np.testing.assert_array_equal(n[-1], [0, 0, 1])


def test_normals_reject_bad_input():
    with pytest.raises(InputError):
        vertex_normals(np.zeros((4, 2)), [[0, 1, 2]])
    with pytest.raises(InputError):
        vertex_normals(np.zeros((4, 3)), [[0, 1, 4]])
    with pytest.raises(InputError):
        vertex_normals(np.zeros((4, 3)), np.zeros((2, 3)))


def test_bfm_winding_gives_front_facing_normals():
    """The real BFM's triangles: +z towards the viewer with or without orienting."""
    from prn.rendering.geometry.pose import image_vertices
    bfm = real_path("bfm")
    mean = np.load(bfm / "mean_shape.npy").reshape(-1, 3)
    tris = np.load(bfm / "triangles.npy")
    v = image_vertices(mean, [0.0, 0.2, 0.0, 225, 215, 0, 1.3e-3], 450)
    by_winding = vertex_normals(v, tris, orient=False)
    np.testing.assert_array_equal(by_winding, vertex_normals(v, tris))
    assert by_winding[:, 2].mean() > 0.2


# ---------------------------------------------------------------------------
# Shading


def random_shading_inputs(seed=0, n=500):
    rng = np.random.default_rng(seed)
    albedo = rng.uniform(0, 255, (n, 3)).astype(np.float32)
    normals = rng.normal(size=(n, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return albedo, normals.astype(np.float32)


def test_light_direction_semantics():
    np.testing.assert_allclose(light_direction(0.0, 1.234), [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(light_direction(np.pi / 2, 0.0), [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(light_direction(np.pi / 2, np.pi / 2), [0, -1, 0], atol=1e-12)


def test_no_directional_light_gives_albedo_times_ambient():
    albedo, normals = random_shading_inputs()
    for ks in (0.0, 0.5):
        illum = [0.7, 0.8, 0.9, 0, 0, 0, 0.3, 0.4, ks, 20]
        np.testing.assert_allclose(shade(albedo, normals, illum),
                                   albedo * np.float32([0.7, 0.8, 0.9]), rtol=1e-5, atol=1e-3)


def test_identity_color_transform_changes_nothing():
    albedo, normals = random_shading_inputs(1)
    np.testing.assert_allclose(color_transform(albedo, IDENTITY_COLOR), albedo,
                               rtol=1e-6, atol=1e-4)
    illum = [0.6, 0.6, 0.6, 0.4, 0.5, 0.3, 0.5, 1.0, 0.2, 15]
    ambient_lit = shade(albedo, normals, illum, [1, 1, 1, 0, 0, 0, 1])
    np.testing.assert_array_equal(ambient_lit, shade(albedo, normals, illum))


def test_color_transform_contrast_gain_offset():
    rgb = np.array([[200.0, 100.0, 50.0]], np.float32)
    grey = 0.299 * 200 + 0.587 * 100 + 0.114 * 50
    np.testing.assert_allclose(color_transform(rgb, [1, 1, 1, 0, 0, 0, 0]), [[grey] * 3], rtol=1e-6)
    out = color_transform(rgb, [2, 1, 0.5, 0.1, 0, -0.1, 1])
    np.testing.assert_allclose(out, [[400 + 25.5, 100, 25 - 25.5]], rtol=1e-6)
    half = color_transform(rgb, [1, 1, 1, 0, 0, 0, 0.5])
    np.testing.assert_allclose(half, (rgb + grey) / 2, rtol=1e-6)


def test_surface_facing_the_light_is_brighter():
    albedo = np.full((3, 3), 150.0, np.float32)
    normals = np.array([[0, 0, 1], [1, 0, 0], [0, 0, -1]], np.float32)  # facing, grazing, away
    lit = shade(albedo, normals, [0.5, 0.5, 0.5, 0.6, 0.6, 0.6, 0.0, 0.0, 0.0, 20])
    assert lit[0, 0] > lit[1, 0] >= lit[2, 0]
    np.testing.assert_allclose(lit[2], 75.0, rtol=1e-6)  # ambient only
    # A light from the image's right (theta = pi / 2, phi = 0) lights the normal +x.
    side = shade(albedo, normals, [0.5, 0.5, 0.5, 0.6, 0.6, 0.6, np.pi / 2, 0.0, 0.0, 20])
    assert side[1, 0] > side[0, 0]


def test_specular_highlight_at_the_half_vector():
    albedo = np.full((2, 3), 100.0, np.float32)
    half = light_direction(0.8, 0.3) + [0, 0, 1]
    normals = np.array([half / np.linalg.norm(half), [0, 0, -1]], np.float32)
    dull = shade(albedo, normals, [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.8, 0.3, 0.0, 20])
    shiny = shade(albedo, normals, [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.8, 0.3, 0.2, 20])
    np.testing.assert_allclose(shiny[0] - dull[0], 255 * 0.2 * 0.5, rtol=1e-4)
    np.testing.assert_array_equal(shiny[1], dull[1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shade_kernel_matches_its_numpy_twin(seed):
    albedo, normals = random_shading_inputs(seed)
    rng = np.random.default_rng(seed + 10)
    illum = [*rng.uniform(0.5, 1.1, 3), *rng.uniform(0, 0.7, 3), rng.uniform(0, 1.5),
             rng.uniform(-np.pi, np.pi), rng.uniform(0, 0.3), rng.uniform(5, 30)]
    color = [*rng.uniform(0.8, 1.2, 3), *rng.uniform(-0.05, 0.05, 3), rng.uniform(0.5, 1.1)]
    out = shade(albedo, normals, illum, color)
    assert out.dtype == np.float32 and out.shape == albedo.shape
    np.testing.assert_allclose(out, shade_reference(albedo, normals, illum, color),
                               rtol=1e-4, atol=5e-3)


def test_shade_rejects_bad_parameters():
    albedo, normals = random_shading_inputs()
    with pytest.raises(InputError):
        shade(albedo, normals, np.zeros(9))
    with pytest.raises(InputError):
        shade(albedo, normals, np.zeros(10), np.zeros(6))
    with pytest.raises(InputError):
        shade(albedo, normals[:10], np.zeros(10))
