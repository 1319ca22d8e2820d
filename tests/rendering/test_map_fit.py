"""Fitting a morphable model to position maps (prn.rendering.morphable.map_fit), against a plain NumPy reference."""

import numpy as np
import pytest

from prn.rendering.geometry.pose import rotation_matrices
from prn.rendering.morphable.bfm import load_morphable_model
from prn.rendering.morphable.map_fit import ITERATIONS, SURFACE_TOLERANCE, MapFitter
from prn.rendering.morphable.uv_assets import compute_uv_assets, uv_table
from prn.rendering.raster.rasterizer import gather
from prn.rendering.util.errors import InputError

SIZE = 256
Y_DOWN = np.array([1.0, -1.0, 1.0])


@pytest.fixture(scope="module")
def model(small_model_dir):
    return load_morphable_model(small_model_dir)


@pytest.fixture(scope="module")
def face_ind(model):
    return compute_uv_assets(model, SIZE).face_ind


def placed_face(model, seed):
    """(posmap (S, S, 3) float64 crop pixels, landmarks (68, 3), coefficients (K + E,)) of a face drawn from the
    prior, turned and placed as a network's map would hold it."""
    rng = np.random.default_rng(seed)
    coefficients = rng.standard_normal(model.n_shape + model.n_exp) * np.r_[model.shape_ev, model.exp_ev]
    vertices = model.vertices(coefficients[:model.n_shape], coefficients[model.n_shape:]).astype(np.float64)
    rotation = rotation_matrices(np.radians([[10.0, 35.0, -8.0]]))[0]
    span = np.ptp(vertices[:, 0])
    placed = (180.0 / span) * (vertices * Y_DOWN) @ rotation.T + [128.0, 120.0, 60.0]
    posmap = gather(uv_table(model, SIZE), placed).reshape(SIZE, SIZE, 3)
    return posmap, placed[model.landmarks], coefficients


def reference_landmarks(model, face_ind, posmap, regularization, step):
    """The same alternation written out on the points themselves: Umeyama on explicit model points, then the
    regularised least squares for the coefficients with the translation eliminated by centring."""
    table = uv_table(model, SIZE)
    pixels = face_ind[::step]
    rows = np.searchsorted(table.pixels, pixels)
    ids, weights = table.vertex_ids[rows], table.weights[rows].astype(np.float64)
    ev = np.r_[model.shape_ev, model.exp_ev].astype(np.float64)
    mean = np.einsum("pj,pjc->pc", weights, model.mean.reshape(-1, 3)[ids]) * Y_DOWN
    basis = np.einsum("pj,pjck->pck", weights, model.basis.reshape(-1, 3, len(ev))[ids]) * ev * Y_DOWN[:, None]
    points = posmap.reshape(-1, 3)[pixels]

    def pose(standard):
        model_points = mean + basis @ standard
        model_centred = model_points - model_points.mean(0)
        points_centred = points - points.mean(0)
        u, singular, vt = np.linalg.svd(points_centred.T @ model_centred)
        signs = np.array([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
        rotation = (u * signs) @ vt
        scale = (singular * signs).sum() / (model_centred ** 2).sum()
        return scale, rotation, points.mean(0) - scale * rotation @ model_points.mean(0)

    standard = np.zeros(len(ev))
    scale, rotation, _ = pose(standard)
    centred_basis = (basis - basis.mean(0)).reshape(-1, len(ev))
    for _ in range(ITERATIONS):
        unrotated = (points - points.mean(0)) @ rotation / scale - (mean - mean.mean(0))
        matrix = centred_basis.T @ centred_basis + regularization / scale ** 2 * np.eye(len(ev))
        standard = np.linalg.solve(matrix, centred_basis.T @ unrotated.reshape(-1))
        scale, rotation, translation = pose(standard)
    landmarks = model.mean.reshape(-1, 3)[model.landmarks] * Y_DOWN
    landmark_basis = model.basis.reshape(-1, 3, len(ev))[model.landmarks] * ev * Y_DOWN[:, None]
    return scale * (landmarks + landmark_basis @ standard) @ rotation.T + translation


def test_exact_map_gives_back_its_face(model, face_ind):
    """Unregularised, a map rendered from the model gives its landmarks back (within 0.5 px of a face 180 px wide:
    some directions of this small model's bases barely move the face pixels, so the alternation creeps along
    them), its pose a rotation."""
    posmap, landmarks, _ = placed_face(model, seed=0)
    fitted = MapFitter(model, face_ind, regularization=0.0, point_step=1, iterations=50).fit(posmap)
    assert np.linalg.norm(fitted.landmarks - landmarks, axis=1).max() < 0.5
    assert np.isclose(np.linalg.det(fitted.rotation), 1.0)
    assert np.allclose(fitted.rotation @ fitted.rotation.T, np.eye(3))


@pytest.mark.parametrize("regularization", [0.0, 300.0])
def test_batched_moments_match_the_reference(model, face_ind, regularization):
    """The moment form (all sums over points in one product for the batch) equals the alternation written out
    (to 0.005 px: the fitter sums the moments in float32, the reference in float64 in another order; unregularised
    the fit is least damped against that rounding)."""
    rng = np.random.default_rng(1)
    maps = [placed_face(model, seed)[0] + rng.normal(0, 4.0, (SIZE, SIZE, 3)) for seed in (2, 3, 4)]
    fitter = MapFitter(model, face_ind, regularization=regularization)
    batched = fitter.landmarks(np.stack(maps).astype(np.float32))
    for fitted, posmap in zip(batched, maps):
        expected = reference_landmarks(model, face_ind, posmap.astype(np.float32), regularization, step=4)
        np.testing.assert_allclose(fitted, expected, atol=5e-3)


def test_the_dense_face_is_the_fitted_model_placed_by_its_pose(model, face_ind):
    """surfaces: the fitted coefficients' vertices (MorphableModel.vertices), y flipped, placed by the fit's
    similarity and interpolated at the face pixels by the UV table (rasterizer.gather), the plain way; and of an
    exact map, unregularised, the map's own face points (within 0.5 px, as the landmarks). The components left out
    move no point by more than the tolerance."""
    rng = np.random.default_rng(13)
    posmap = placed_face(model, seed=14)[0]
    maps = np.stack([posmap, posmap + rng.normal(0, 4.0, posmap.shape)]).astype(np.float32)
    fitter = MapFitter(model, face_ind, regularization=300.0)
    fits = fitter.fit_many(maps)
    table = uv_table(model, SIZE)
    for fitted, dense, approximate in zip(fits, fitter.surfaces(fits, tolerance=0), fitter.surfaces(fits)):
        shape, expression = fitted.coefficients[:model.n_shape], fitted.coefficients[model.n_shape:]
        vertices = model.vertices(shape, expression).astype(np.float64) * Y_DOWN
        placed = fitted.scale * vertices @ fitted.rotation.T + fitted.translation
        expected = gather(table, placed).reshape(-1, 3)[face_ind]
        np.testing.assert_allclose(dense, expected, atol=1e-3)
        assert np.linalg.norm(approximate - expected, axis=1).max() <= SURFACE_TOLERANCE + 1e-3
    exact = MapFitter(model, face_ind, regularization=0.0, point_step=1, iterations=50)
    dense = exact.surfaces([exact.fit(posmap)])[0]
    assert np.linalg.norm(dense - posmap.reshape(-1, 3)[face_ind], axis=1).max() < 0.5
    assert fitter.surfaces([]).shape == (0, len(face_ind), 3)


def test_fit_removes_point_noise(model, face_ind):
    """Per-pixel noise of 4 px: the fitted landmarks are far closer to the truth than the noisy map's own."""
    fitter = MapFitter(model, face_ind, regularization=100.0)
    kpt = compute_uv_assets(model, SIZE).kpt
    rng = np.random.default_rng(5)
    fit_errors, map_errors = [], []
    for seed in range(6, 10):
        posmap, landmarks, _ = placed_face(model, seed)
        noisy = posmap + rng.normal(0, 4.0, posmap.shape)
        fit_errors.append(np.linalg.norm(fitter.fit(noisy).landmarks - landmarks, axis=1).mean())
        map_errors.append(np.linalg.norm(noisy[kpt[1], kpt[0]] - landmarks, axis=1).mean())
    assert np.mean(fit_errors) < 0.25 * np.mean(map_errors)


def test_regularization_pulls_towards_the_mean_face(model, face_ind):
    posmap, _, coefficients = placed_face(model, seed=11)
    loose = MapFitter(model, face_ind, regularization=0.0).fit(posmap).coefficients
    tight = MapFitter(model, face_ind, regularization=1e9).fit(posmap).coefficients
    assert np.abs(tight).max() < 0.01 * np.abs(loose).max()


def test_bad_inputs_are_refused(model, face_ind):
    fitter = MapFitter(model, face_ind)
    posmap = placed_face(model, seed=12)[0]
    posmap[tuple(np.divmod(face_ind[0], SIZE))] = np.nan
    with pytest.raises(InputError, match="not finite"):
        fitter.fit(posmap)
    with pytest.raises(InputError, match=r"\(B, 256, 256, 3\)"):
        fitter.landmarks(np.zeros((2, 128, 128, 3)))
    assert fitter.landmarks(np.zeros((0, SIZE, SIZE, 3))).shape == (0, 68, 3)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="regularization"):
            MapFitter(model, face_ind, regularization=bad)
    with pytest.raises(InputError, match="another model"):
        MapFitter(model, np.array([SIZE * SIZE - 1]))


def test_a_map_with_no_extent_is_one_line(model, face_ind):
    """An untrained network's map can be one point repeated: no pose, no face; the fit says so."""
    fitter = MapFitter(model, face_ind)
    with pytest.raises(InputError, match="no extent: there is no face to fit"):
        fitter.fit_many(np.full((2, SIZE, SIZE, 3), 100.0, np.float32))
