import numpy as np
import pytest

from prn.pipeline.synthetic.face_model import make_synthetic_model

MIDLINE = [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]
MIRROR_PAIRS = [(0, 16), (3, 13), (7, 9), (17, 26), (21, 22), (31, 35), (36, 45), (39, 42), (48, 54), (60, 64)]
SHAPES = {
    "shapeMU": ("3n", 1), "shapePC": ("3n", 199), "shapeEV": (199, 1),
    "expMU": ("3n", 1), "expPC": ("3n", 29), "expEV": (29, 1),
    "texMU": ("3n", 1), "texPC": ("3n", 199), "texEV": (199, 1),
}


@pytest.fixture(scope="module")
def model():
    return make_synthetic_model(n_vertices=3000, seed=0)


def vertices(model, shape=None, exp=None):
    """(n, 3) float64 micrometres, docs/formats.md section 2."""
    flat = model["shapeMU"][:, 0].astype(np.float64) + model["expMU"][:, 0]
    if shape is not None:
        flat = flat + model["shapePC"].astype(np.float64) @ shape
    if exp is not None:
        flat = flat + model["expPC"].astype(np.float64) @ exp
    return flat.reshape(-1, 3)


def landmarks(model, shape=None, exp=None):
    return vertices(model, shape, exp)[model["kpt_ind"].ravel() - 1]


def nearest_vertex(points, target):
    return int(np.argmin(np.linalg.norm(points - target, axis=1)))


def test_arrays_names_shapes_and_dtypes(model):
    n = len(model["UV"])
    assert 2800 <= n <= 3200
    assert set(model) == set(SHAPES) | {"tri", "tri_mouth", "kpt_ind", "UV", "face_vertex_ind"}
    for name, (rows, cols) in SHAPES.items():
        assert model[name].shape == (3 * n if rows == "3n" else rows, cols), name
        assert model[name].dtype == np.float32, name
        assert np.isfinite(model[name]).all(), name
    assert model["tri"].dtype == model["tri_mouth"].dtype == model["kpt_ind"].dtype == np.int32
    assert model["tri"].shape[0] == 3 and 1.8 <= model["tri"].shape[1] / n <= 2.1
    assert model["tri_mouth"].shape[0] == 3 and model["tri_mouth"].shape[1] > 0
    assert model["kpt_ind"].shape == (1, 68)
    assert model["UV"].shape == (n, 2) and model["UV"].dtype == np.float64
    assert model["face_vertex_ind"].dtype == np.int32 and model["face_vertex_ind"].ndim == 1


def test_same_seed_same_bytes_other_seed_differs():
    first, second = make_synthetic_model(1000, seed=7), make_synthetic_model(1000, seed=7)
    for name in first:
        assert first[name].tobytes() == second[name].tobytes(), name
    other = make_synthetic_model(1000, seed=8)
    assert other["shapePC"].tobytes() != first["shapePC"].tobytes()
    assert other["texPC"].tobytes() != first["texPC"].tobytes()


def test_indices_are_one_based_distinct_and_in_range(model):
    n = len(model["UV"])
    kpt = model["kpt_ind"].ravel()
    assert kpt.min() >= 1 and kpt.max() <= n and len(set(kpt.tolist())) == 68
    for name in ("tri", "tri_mouth"):
        assert model[name].min() >= 1 and model[name].max() <= n
    face = model["face_vertex_ind"]
    assert face.min() >= 0 and face.max() < n and np.all(np.diff(face) > 0)
    # every vertex is used by a triangle
    assert len(np.unique(model["tri"])) == n


def test_landmark_geometry_is_face_like(model):
    points = landmarks(model)
    x, y, z = points.T
    eyes_y = y[36:48].mean()
    assert eyes_y > y[30] > y[33] > y[51] > y[62] > y[66] > y[57] > y[8]
    assert x[36] < x[39] < 0 < x[42] < x[45]
    assert x[48] < 0 < x[54] and x[0] < x[4] < x[8] < x[12] < x[16]
    assert np.argmax(z) == 30
    assert np.all(x[MIDLINE] == 0.0)
    for left, right in MIRROR_PAIRS:
        np.testing.assert_allclose(points[left] * [-1, 1, 1], points[right], atol=1.0)
    # BFM scale: eye corners about 9 cm apart, nose tip in front of the face
    assert 70_000 < x[45] - x[36] < 100_000
    assert 15_000 < z[30] - z[36] < 60_000
    assert all(y[k] < y[k - 1] for k in range(28, 31))  # nose bridge runs down to the tip


def test_uv_unwrap_fills_the_square_without_fold_over(model):
    uv = model["UV"]
    assert uv.min(axis=0).tolist() == [0.0, 0.0] and uv.max(axis=0).tolist() == [1.0, 1.0]
    kpt = model["kpt_ind"].ravel() - 1
    assert np.all(uv[kpt[MIDLINE], 0] == 128 / 255)  # the midline, moved onto the pixel centre u = 128
    pixels = uv[kpt] * 255
    np.testing.assert_array_equal(pixels, np.round(pixels))  # landmarks on pixel centres of the 256 map
    assert uv[kpt[0], 0] < uv[kpt[36], 0] < 0.5 < uv[kpt[45], 0] < uv[kpt[16], 0]
    assert uv[kpt[8], 1] < uv[kpt[57], 1] < uv[kpt[30], 1] < uv[kpt[27], 1] < uv[kpt[19], 1]
    tri = model["tri"].T - 1
    edge1, edge2 = uv[tri[:, 1]] - uv[tri[:, 0]], uv[tri[:, 2]] - uv[tri[:, 0]]
    signed = edge1[:, 0] * edge2[:, 1] - edge1[:, 1] * edge2[:, 0]
    assert np.all(signed < -1e-9)  # clockwise in UV, as the BFM's
    # neck bottom at V = 0, top of the forehead at V = 1
    points = vertices(model)
    assert points[uv[:, 1] == 0.0, 1].max() < points[uv[:, 1] == 1.0, 1].min()


def test_surface_normals_point_outwards(model):
    """With the BFM's winding, (b - a) x (c - a) points into the head in model space.

    So its negative is the outward normal.
    """
    points = vertices(model)
    tri = model["tri"].T - 1
    normals = -np.cross(points[tri[:, 1]] - points[tri[:, 0]], points[tri[:, 2]] - points[tri[:, 0]])
    assert np.all(np.linalg.norm(normals, axis=1) > 0)
    face = np.zeros(len(points), bool)
    face[model["face_vertex_ind"]] = True
    on_face = face[tri].all(axis=1)
    assert np.mean(normals[on_face, 2] > 0) > 0.95
    # away from the vertical axis through the head, everywhere
    centres = points[tri].mean(axis=1)
    radial = centres * [1, 0, 1] - [0, 0, 10_000]
    assert np.mean(np.einsum("ij,ij->i", normals, radial) > 0) > 0.99


def test_bases_orthonormal_with_decreasing_deviations(model):
    for name in ("shapePC", "texPC"):
        basis = model[name].astype(np.float64)
        np.testing.assert_allclose(basis.T @ basis, np.eye(basis.shape[1]), atol=1e-4)
    for ev in ("shapeEV", "expEV", "texEV"):
        values = model[ev].ravel()
        assert np.all(values > 0) and np.all(np.diff(values) < 0), ev
    assert 0.5 < model["expEV"][0, 0] < 3.0


def test_random_coefficients_give_plausible_faces(model):
    rng = np.random.default_rng(0)
    mean = landmarks(model)
    for _ in range(10):
        shape = rng.standard_normal(199) * model["shapeEV"][:, 0]
        exp = rng.standard_normal(29) * model["expEV"][:, 0]
        moved = np.linalg.norm(landmarks(model, shape, exp) - mean, axis=1)
        assert 1_000 < np.sqrt(np.mean(moved ** 2)) < 15_000  # a few mm, not metres
        assert moved.max() < 50_000
    # the leading identity component is a clearly visible change at one standard deviation
    lead = np.zeros(199)
    lead[0] = model["shapeEV"][0, 0]
    change = np.linalg.norm(vertices(model, lead) - vertices(model), axis=1)
    assert 1_000 < np.sqrt(np.mean(change ** 2)) < 6_000


def test_mouth_open_separates_the_inner_lips(model):
    exp = np.zeros(29)
    closed = landmarks(model)
    exp[0] = 1.0
    opened = landmarks(model, exp=exp)
    gap_closed = np.linalg.norm(closed[62] - closed[66])
    gap_open = np.linalg.norm(opened[62] - opened[66])
    assert gap_open - gap_closed > 5_000
    assert opened[57, 1] < closed[57, 1] - 5_000 and abs(opened[51, 1] - closed[51, 1]) < 1_000
    assert abs(opened[27, 1] - closed[27, 1]) < 100  # the upper face stays


@pytest.fixture(scope="module")
def finer():
    return make_synthetic_model(n_vertices=12_000, seed=0)


def test_albedo_lips_redder_than_skin(finer):
    colors = finer["texMU"].reshape(-1, 3).astype(np.float64)
    assert colors.min() >= 0 and colors.max() <= 255
    assert colors[finer["face_vertex_ind"]].mean() > 100
    points, marks = vertices(finer), landmarks(finer)

    def redness(target):
        rgb = colors[nearest_vertex(points, target)]
        return rgb[0] / (0.5 * (rgb[1] + rgb[2]))

    lips = [redness((marks[51] + marks[62]) / 2), redness((marks[57] + marks[66]) / 2)]
    skin = [redness(marks[27] + [0, 30_000, 0]), redness((marks[2] + marks[31]) / 2), redness(marks[8])]
    assert min(lips) > max(skin) + 0.3, (lips, skin)


def test_albedo_irises_darker_than_eye_whites(finer):
    colors = finer["texMU"].reshape(-1, 3).astype(np.float64)
    points, marks = vertices(finer), landmarks(finer)
    for eye, outer_corner in ((slice(36, 42), 36), (slice(42, 48), 45)):
        centre = marks[eye].mean(axis=0)
        white = centre + 0.7 * (marks[outer_corner] - centre)
        iris = colors[nearest_vertex(points, centre)].mean()
        sclera = colors[nearest_vertex(points, white)].mean()
        assert iris < sclera - 80, (iris, sclera)


def test_neck_below_the_face_region(model):
    points = vertices(model)
    face = np.zeros(len(points), bool)
    face[model["face_vertex_ind"]] = True
    assert 0.55 < face.mean() < 0.8
    chin_y = landmarks(model)[8, 1]
    neck = ~face & (points[:, 1] < chin_y)
    assert neck.mean() > 0.05
    assert face[model["kpt_ind"].ravel() - 1].all()
    assert points[face, 1].min() > points[:, 1].min() + 20_000


def test_coarse_model_is_still_valid():
    small = make_synthetic_model(500, seed=1)
    n = len(small["UV"])
    kpt = small["kpt_ind"].ravel() - 1
    assert len(set(kpt.tolist())) == 68 and np.all(small["UV"][kpt[MIDLINE], 0] == 128 / 255)
    tri = small["tri"].T - 1
    uv = small["UV"]
    edge1, edge2 = uv[tri[:, 1]] - uv[tri[:, 0]], uv[tri[:, 2]] - uv[tri[:, 0]]
    assert np.all(edge1[:, 0] * edge2[:, 1] - edge1[:, 1] * edge2[:, 0] < 0)  # clockwise in UV, as the BFM
    assert small["tri_mouth"].shape[1] > 0 and n < 600


@pytest.mark.slow
def test_default_size_matches_the_bfm_scale():
    full = make_synthetic_model()
    n = len(full["UV"])
    assert abs(n - 50_000) < 500
    assert full["shapePC"].shape == (3 * n, 199) and full["shapePC"].dtype == np.float32
    assert 2e5 < full["shapeEV"][0, 0] < 8e5
    points = vertices(full)
    assert points[:, 0].min() > -95_000 and points[:, 0].max() < 95_000
    assert abs(points[:, 1].min() + 122_000) < 2_000 and abs(points[:, 1].max() - 89_000) < 2_000
    marks = landmarks(full)
    for k, target in {30: (0, -8_000, 131_900), 8: (0, -86_400, 96_300), 36: (-43_500, 25_900, 87_300),
                      48: (-25_800, -41_200, 99_200)}.items():
        assert np.linalg.norm(marks[k] - target) < 6_000, k
    basis = full["shapePC"][:, :20].astype(np.float64)
    np.testing.assert_allclose(basis.T @ basis, np.eye(20), atol=1e-4)
