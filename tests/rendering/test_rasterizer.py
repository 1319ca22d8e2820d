"""Tests of prn.rendering.raster.rasterizer against its NumPy twins (tests/references.py) and analytic cases."""

import numpy as np
import pytest
from references import gather_reference, interpolate_reference, rasterize_reference

from prn.rendering.raster.rasterizer import (
    PixelTable,
    Rasterization,
    gather,
    interpolate,
    pixel_table,
    rasterize,
    render_colors,
    vertex_visibility,
)
from prn.rendering.util.errors import InputError


def assert_matches_reference(vertices, triangles, height, width, colors=None):
    ref_depth, ref_ids, ref_bary = rasterize_reference(vertices, triangles, height, width)
    raster = rasterize(vertices, triangles, height, width)
    np.testing.assert_array_equal(raster.triangle_ids, ref_ids)
    np.testing.assert_array_equal(raster.depth, ref_depth)
    np.testing.assert_array_equal(raster.barycentric, ref_bary)
    if colors is not None:
        image = render_colors(vertices, triangles, colors, height, width)
        np.testing.assert_array_equal(image, interpolate_reference(ref_ids, ref_bary, triangles, colors))
        np.testing.assert_array_equal(image, interpolate(raster, triangles, colors))
    return raster


# ---------------------------------------------------------------------------
# Meshes


def random_mesh(rng, n_vertices, n_triangles, height, width, spread):
    """Random triangles: overlapping, both orientations, some partly outside, some degenerate."""
    vertices = np.empty((n_vertices, 3), dtype=np.float32)
    vertices[:, 0] = rng.uniform(-0.2 * width, 1.2 * width, n_vertices)
    vertices[:, 1] = rng.uniform(-0.2 * height, 1.2 * height, n_vertices)
    vertices[:, 2] = rng.uniform(-5, 5, n_vertices)
    # Triangles of nearby vertices (spread = maximum index distance) are small.
    first = rng.integers(0, n_vertices, n_triangles)
    others = (first[:, None] + rng.integers(-spread, spread + 1, (n_triangles, 2))) % n_vertices
    triangles = np.column_stack([first, others]).astype(np.int64)
    triangles[:5, 1] = triangles[:5, 0]  # degenerate: repeated vertex
    return vertices, triangles


def local_mesh(rng, n_triangles, height, width, size):
    """Small random triangles (each vertex within `size` pixels of the first): the common case."""
    centres = rng.uniform([-2, -2], [width + 2, height + 2], (n_triangles, 2))
    corners = centres[:, None, :] + rng.uniform(-size, size, (n_triangles, 3, 2))
    vertices = np.concatenate([corners, rng.uniform(-5, 5, (n_triangles, 3, 1))], axis=-1)
    vertices = vertices.reshape(-1, 3).astype(np.float32)
    triangles = np.arange(3 * n_triangles).reshape(-1, 3)
    return vertices, triangles


def grid_mesh(nx, ny, x0, y0, step, rng=None, z=None):
    """Regular grid of (nx + 1) x (ny + 1) vertices, two triangles per cell.

    Diagonals alternate direction; with rng, each triangle's orientation is random.
    """
    gy, gx = np.mgrid[0 : ny + 1, 0 : nx + 1]
    x = x0 + step * gx.ravel()
    y = y0 + step * gy.ravel()
    zz = np.zeros_like(x, dtype=np.float64) if z is None else z(x, y)
    vertices = np.column_stack([x, y, zz]).astype(np.float32)
    idx = np.arange((nx + 1) * (ny + 1)).reshape(ny + 1, nx + 1)
    triangles = []
    for j in range(ny):
        for i in range(nx):
            p00, p01, p10, p11 = idx[j, i], idx[j, i + 1], idx[j + 1, i], idx[j + 1, i + 1]
            if (i + j) % 2:
                triangles += [(p00, p01, p11), (p00, p11, p10)]
            else:
                triangles += [(p00, p01, p10), (p01, p11, p10)]
    triangles = np.array(triangles, dtype=np.int64)
    if rng is not None:
        flip = rng.random(len(triangles)) < 0.5
        triangles[flip] = triangles[flip][:, ::-1]
    return vertices, triangles


def coverage_counts(vertices, triangles, height, width):
    """How many triangles cover each pixel, each triangle rasterized alone."""
    counts = np.zeros((height, width), dtype=np.int64)
    for tri in triangles:
        counts += rasterize(vertices, tri[None], height, width).triangle_ids >= 0
    return counts


# ---------------------------------------------------------------------------
# Against the reference


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_overlapping_mesh_matches_reference(seed):
    rng = np.random.default_rng(seed)
    height, width = 37, 53
    vertices, triangles = random_mesh(rng, 60, 120, height, width, spread=60)
    colors = rng.uniform(-1, 1, (len(vertices), 4))
    raster = assert_matches_reference(vertices, triangles, height, width, colors)
    assert (raster.triangle_ids >= 0).mean() > 0.5  # the test exercises something


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_small_triangles_match_reference(seed):
    # Many small triangles (more than one chunk of the kernel), sub-pixel to a few pixels wide.
    rng = np.random.default_rng(seed)
    height, width = 40, 48
    vertices, triangles = local_mesh(rng, 900, height, width, size=rng.choice([0.8, 1.5, 4.0]))
    colors = rng.uniform(0, 1, (len(vertices), 3))
    raster = assert_matches_reference(vertices, triangles, height, width, colors)
    assert (raster.triangle_ids >= 0).sum() > 100


@pytest.mark.parametrize("seed", [20, 21])
def test_integer_and_half_integer_vertices_match_reference(seed):
    # Vertices on a half-pixel lattice put many pixel centres exactly on edges and vertices.
    rng = np.random.default_rng(seed)
    height, width = 24, 30
    vertices = np.column_stack(
        [
            rng.integers(-6, 2 * width + 6, 80) / 2,
            rng.integers(-6, 2 * height + 6, 80) / 2,
            rng.integers(-3, 4, 80),  # few depths: many exact depth ties
        ]
    ).astype(np.float32)
    first = rng.integers(0, 80, 300)
    triangles = np.column_stack([first, (first[:, None] + rng.integers(-6, 7, (300, 2))) % 80])
    assert_matches_reference(vertices, triangles, height, width, rng.uniform(0, 1, 80))


def test_render_colors_equals_interpolate_of_rasterize():
    rng = np.random.default_rng(5)
    vertices, triangles = random_mesh(rng, 100, 300, 50, 70, spread=10)
    colors = rng.normal(size=(100, 2)).astype(np.float32)
    image = render_colors(vertices, triangles, colors, 50, 70)
    raster = rasterize(vertices, triangles, 50, 70)
    np.testing.assert_array_equal(image, interpolate(raster, triangles, colors))
    # (n,) attributes give one channel.
    single = render_colors(vertices, triangles, colors[:, 1], 50, 70)
    assert single.shape == (50, 70, 1) and single.dtype == np.float32
    np.testing.assert_array_equal(single[..., 0], image[..., 1])


# ---------------------------------------------------------------------------
# Analytic cases


def test_interpolated_plane_equals_the_plane():
    # A jittered grid mesh over the image; a linear attribute and a linear depth
    # are reproduced exactly (to float32 rounding) at every covered pixel.
    rng = np.random.default_rng(7)
    height, width = 30, 40

    def plane(x, y):
        return 0.25 * x - 0.5 * y + 3.0

    vertices, triangles = grid_mesh(9, 7, -3.3, -2.7, 5.3, rng=rng, z=plane)
    vertices[:, :2] += rng.uniform(-1, 1, (len(vertices), 2)).astype(np.float32)
    vertices[:, 2] = plane(vertices[:, 0].astype(np.float64), vertices[:, 1].astype(np.float64))
    attribute = np.column_stack([plane(vertices[:, 0], vertices[:, 1]), 2 * vertices[:, 1] - 7])
    raster = rasterize(vertices, triangles, height, width)
    covered = raster.triangle_ids >= 0
    assert covered.all()
    rows, cols = np.mgrid[0:height, 0:width]
    values = interpolate(raster, triangles, attribute)
    np.testing.assert_allclose(values[..., 0], plane(cols, rows), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(values[..., 1], 2 * rows - 7, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(raster.depth, plane(cols, rows), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(raster.barycentric.sum(-1), 1, atol=1e-6)
    assert (raster.barycentric >= 0).all()


@pytest.mark.parametrize("step", [1, 2, 3])
def test_grid_mesh_covers_every_pixel_exactly_once(step):
    # Vertices at integer coordinates: pixel centres lie exactly on vertices and
    # on horizontal, vertical and diagonal shared edges; random orientations.
    height, width = 11, 14
    rng = np.random.default_rng(step)
    nx, ny = (width + 6) // step + 1, (height + 6) // step + 1
    vertices, triangles = grid_mesh(nx, ny, -3, -3, step, rng=rng)
    raster = rasterize(vertices, triangles, height, width)
    assert (raster.triangle_ids >= 0).all()  # no cracks
    np.testing.assert_array_equal(coverage_counts(vertices, triangles, height, width), 1)  # no double cover


@pytest.mark.parametrize("order", [(0, 1, 2), (0, 2, 1)])
def test_top_left_rule_on_a_square(order):
    # The square [0, 4] x [0, 4] split along a diagonal through pixel centres:
    # its top and left edges are drawn, its bottom and right edges are not.
    vertices = np.array([[0, 0, 0], [4, 0, 0], [0, 4, 0], [4, 4, 0]], dtype=np.float32)
    first = np.array([order])
    second = np.array([[1, 3, 2]]) if order == (0, 1, 2) else np.array([[1, 2, 3]])
    covered_first = rasterize(vertices, first, 8, 8).triangle_ids >= 0
    covered_second = rasterize(vertices, second, 8, 8).triangle_ids >= 0
    rows, cols = np.mgrid[0:8, 0:8]
    np.testing.assert_array_equal(covered_first, (rows + cols < 4))
    np.testing.assert_array_equal(covered_second, (rows + cols >= 4) & (rows < 4) & (cols < 4))


def test_fan_around_a_pixel_centre_covers_it_once():
    # Eight triangles around the vertex (5, 5), which is a pixel centre; spokes
    # pass through pixel centres horizontally, vertically and diagonally.
    angles = np.arange(8) * np.pi / 4
    ring = np.column_stack([5 + 4 * np.round(np.cos(angles), 6), 5 + 4 * np.round(np.sin(angles), 6)])
    ring = np.round(ring)  # (9, 5), (9, 9), (5, 9), ... all on integers
    vertices = np.column_stack([np.vstack([[5, 5], ring]), np.zeros(9)]).astype(np.float32)
    triangles = np.array([(0, 1 + i, 1 + (i + 1) % 8) for i in range(8)])
    triangles[1::2] = triangles[1::2, ::-1]  # mixed orientations
    counts = coverage_counts(vertices, triangles, 11, 11)
    assert counts[5, 5] == 1
    assert counts.max() == 1
    # The octagon's interior is covered without cracks.
    raster = rasterize(vertices, triangles, 11, 11)
    assert (raster.triangle_ids[3:8, 3:8] >= 0).all()


def test_degenerate_triangles_are_skipped():
    vertices = np.array([[1, 1, 0], [5, 5, 0], [9, 9, 0], [2, 8, 0]], dtype=np.float32)
    triangles = np.array([[0, 1, 2], [0, 0, 3], [3, 3, 3]])  # collinear, repeated vertices
    raster = rasterize(vertices, triangles, 12, 12)
    assert (raster.triangle_ids == -1).all()
    assert np.isneginf(raster.depth).all()
    assert (raster.barycentric == 0).all()
    assert (render_colors(vertices, triangles, np.ones(4), 12, 12) == 0).all()


def test_triangle_partly_outside_is_clipped():
    # Rendering into an image that holds the whole triangle and cropping gives
    # the same pixels as rendering into the small image directly (coordinates
    # are multiples of 1/8, so the integer shift is exact).
    vertices = np.array([[-10.5, 2.25, 1.0], [12.125, -6.0, 2.0], [3.0, 30.75, 3.0]], dtype=np.float32)
    triangles = np.array([[0, 1, 2]])
    small = rasterize(vertices, triangles, 16, 16)
    shifted = vertices + np.array([20, 20, 0], dtype=np.float32)
    large = rasterize(shifted, triangles, 60, 60)
    assert (large.triangle_ids >= 0).sum() > (small.triangle_ids >= 0).sum() > 50
    np.testing.assert_array_equal(small.triangle_ids, large.triangle_ids[20:36, 20:36])
    np.testing.assert_array_equal(small.depth, large.depth[20:36, 20:36])
    np.testing.assert_allclose(small.barycentric, large.barycentric[20:36, 20:36], atol=1e-6)
    # Wholly outside: nothing drawn.
    outside = rasterize(vertices + np.array([100, 0, 0], dtype=np.float32), triangles, 16, 16)
    assert (outside.triangle_ids == -1).all()


def test_nearer_triangle_wins_in_either_order():
    vertices = np.array(
        [[0, 0, 1], [20, 0, 1], [0, 20, 1], [2, 2, 5], [22, 2, 5], [2, 22, 5]], dtype=np.float32
    )
    for triangles, near in (([[0, 1, 2], [3, 4, 5]], 1), ([[3, 4, 5], [0, 1, 2]], 0)):
        raster = rasterize(vertices, np.array(triangles), 24, 24)
        assert raster.triangle_ids[5, 5] == near
        assert raster.depth[5, 5] == 5
        assert raster.triangle_ids[1, 1] == 1 - near  # only the far one covers it
        assert raster.depth[1, 1] == 1


def test_depth_tie_keeps_the_earlier_triangle():
    vertices = np.array([[0, 0, 2], [20, 0, 2], [0, 20, 2]], dtype=np.float32)
    triangles = np.array([[0, 1, 2], [0, 2, 1], [1, 2, 0]])  # same triangle three times
    raster = rasterize(vertices, triangles, 24, 24)
    covered = raster.triangle_ids >= 0
    assert covered.sum() > 100
    assert (raster.triangle_ids[covered] == 0).all()
    colors = np.array([[1.0], [1.0], [1.0]])
    np.testing.assert_allclose(render_colors(vertices, triangles, colors, 24, 24)[covered], 1, atol=1e-6)


def test_non_finite_vertices_skip_their_triangles():
    rng = np.random.default_rng(3)
    vertices, triangles = random_mesh(rng, 40, 80, 30, 30, spread=5)
    bad = vertices.copy()
    bad[3, 0] = np.nan
    bad[7, 1] = np.inf
    bad[11, 2] = -np.inf
    touches_bad = np.isin(triangles, [3, 7, 11]).any(axis=1)
    raster = rasterize(bad, triangles, 30, 30)
    expected = rasterize(vertices, np.where(touches_bad[:, None], 0, triangles), 30, 30)
    # Same image as with the bad triangles replaced by a degenerate one (ids shift only in name).
    np.testing.assert_array_equal(raster.depth, expected.depth)
    assert not np.isin(raster.triangle_ids, np.flatnonzero(touches_bad)).any()
    assert_matches_reference(bad, triangles, 30, 30, rng.uniform(size=40))


# ---------------------------------------------------------------------------
# Visibility, pixel tables


def test_vertex_visibility_front_and_back_planes():
    height, width = 40, 40
    back, back_tri = grid_mesh(8, 8, -2, -2, 5.5, z=lambda x, y: np.zeros_like(x))
    front, front_tri = grid_mesh(4, 4, 10, 10, 5, z=lambda x, y: np.full_like(x, 10.0))
    vertices = np.vstack([back, front])
    triangles = np.vstack([back_tri, front_tri + len(back)])
    raster = rasterize(vertices, triangles, height, width)
    visible = vertex_visibility(vertices, raster.depth, tolerance=1.0)

    x, y = back[:, 0], back[:, 1]
    in_image = (x > -0.5) & (x < width - 0.5) & (y > -0.5) & (y < height - 0.5)
    behind_front = (x > 10.5) & (x < 29.5) & (y > 10.5) & (y < 29.5)
    assert behind_front.sum() > 4 and (in_image & ~behind_front).sum() > 10
    np.testing.assert_array_equal(visible[: len(back)], in_image & ~behind_front)
    assert visible[len(back) :].all()
    # A huge tolerance sees through the front plane; outside the image is never visible.
    through = vertex_visibility(vertices, raster.depth, tolerance=20.0)
    np.testing.assert_array_equal(through[: len(back)], in_image)


def test_vertex_visibility_uncovered_and_non_finite():
    depth = np.full((5, 5), -np.inf, dtype=np.float32)
    depth[2, 2] = 1.0
    vertices = np.array(
        [[2.2, 1.8, 1.0], [2.0, 2.0, 0.5], [2.0, 2.0, -0.5], [0, 0, 9], [np.nan, 2, 1], [7, 2, 1]]
    )
    # Rounds to the covered pixel; within the tolerance; behind; uncovered; NaN; outside.
    expected = [True, True, False, False, False, False]
    np.testing.assert_array_equal(vertex_visibility(vertices, depth), expected)


def test_pixel_table_gather_equals_render_colors():
    # A UV-like layout: a flat (z = 0) mesh, so all depths tie, rendered with
    # many attribute sets.
    rng = np.random.default_rng(11)
    height, width = 32, 32
    uv, triangles = grid_mesh(12, 12, -0.7, 0.3, 2.6, rng=rng)
    uv[:, :2] += rng.uniform(-0.4, 0.4, (len(uv), 2)).astype(np.float32)
    table = pixel_table(uv, triangles, height, width)
    assert isinstance(table, PixelTable)
    assert table.pixels.dtype == np.int64 and (np.diff(table.pixels) > 0).all()
    assert table.vertex_ids.dtype == np.int32 and table.weights.dtype == np.float32
    assert (table.height, table.width) == (height, width)
    for _ in range(3):
        positions = rng.normal(size=(len(uv), 3)).astype(np.float32)
        expected = render_colors(uv, triangles, positions, height, width)
        np.testing.assert_allclose(gather(table, positions), expected, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(gather(table, positions), gather_reference(table, positions))
    assert gather(table, positions[:, 0]).shape == (height, width, 1)


# ---------------------------------------------------------------------------
# Bad input


VERTICES = np.array([[0, 0, 0], [6, 0, 0], [0, 6, 0], [6, 6, 0]], dtype=np.float32)
TRIANGLES = np.array([[0, 1, 2]])


@pytest.mark.parametrize(
    "call",
    [
        lambda: rasterize(np.zeros((4, 2)), TRIANGLES, 8, 8),  # vertices not (n, 3)
        lambda: rasterize(np.zeros((0, 3)), TRIANGLES, 8, 8),  # no vertices
        lambda: rasterize(VERTICES, np.array([[0, 1]]), 8, 8),  # triangles not (m, 3)
        lambda: rasterize(VERTICES, np.array([[0, 1, 4]]), 8, 8),  # index too large
        lambda: rasterize(VERTICES, np.array([[0, -1, 2]]), 8, 8),  # negative index
        lambda: rasterize(VERTICES, np.zeros((0, 3), dtype=np.int32), 8, 8),  # no triangles
        lambda: rasterize(VERTICES, np.array([[0.0, 1.0, 2.0]]), 8, 8),  # float indices
        lambda: rasterize(VERTICES, TRIANGLES, 0, 8),
        lambda: rasterize(VERTICES, TRIANGLES, 8, -1),
        lambda: rasterize(VERTICES, TRIANGLES, 8.5, 8),
        lambda: render_colors(VERTICES, TRIANGLES, np.zeros((3, 3)), 8, 8),  # colors for 3 of 4 vertices
        lambda: render_colors(VERTICES, TRIANGLES, np.zeros((4, 3)), 0, 8),
        lambda: vertex_visibility(VERTICES, np.zeros(8)),  # depth not (h, w)
        lambda: interpolate(rasterize(VERTICES, TRIANGLES, 8, 8), TRIANGLES, np.zeros((2, 3))),
        lambda: gather(pixel_table(VERTICES, TRIANGLES, 8, 8), np.zeros((2, 3))),
        lambda: pixel_table(VERTICES, TRIANGLES + 5, 8, 8),
    ],
)
def test_bad_inputs_raise_input_error(call):
    with pytest.raises(InputError) as error:
        call()
    assert "\n" not in str(error.value)


def test_valid_inputs_of_other_dtypes_are_accepted():
    raster = rasterize(VERTICES.astype(np.float64).tolist(), TRIANGLES.astype(np.uint16), np.int64(8), 8)
    assert isinstance(raster, Rasterization)
    assert raster.depth.dtype == np.float32 and raster.triangle_ids.dtype == np.int32
    assert raster.barycentric.dtype == np.float32 and raster.barycentric.shape == (8, 8, 3)
    assert (raster.triangle_ids >= 0).sum() == 21  # x + y < 6 (top-left rule)
