"""Reading the 68 landmarks from position maps (prn.model.landmarks): the fit of the network's face model, or the
map. Which face model folder is fitted is the resolver's (tests/pipeline/test_face_model.py)."""

import numpy as np
import pytest

from prn.model.landmarks import LandmarkReader
from prn.rendering.morphable.bfm import load_morphable_model
from prn.rendering.morphable.map_fit import MapFitter
from prn.rendering.morphable.uv_assets import compute_uv_assets, load_uv_assets, write_uv_assets
from prn.rendering.util.errors import InputError


@pytest.fixture(scope="module")
def small(small_model_dir, tmp_path_factory):
    model = load_morphable_model(small_model_dir)
    folder = tmp_path_factory.mktemp("small-uv")
    write_uv_assets(compute_uv_assets(model), folder)
    return model, load_uv_assets(folder)


@pytest.fixture(scope="module")
def posmaps(small):
    _, uv = small
    rng = np.random.default_rng(0)
    maps = np.zeros((2, uv.size, uv.size, 3), np.float32)
    maps.reshape(2, -1, 3)[:, uv.face_ind] = uv.canonical + rng.normal(0, 2.0, (2, len(uv.face_ind), 3))
    return maps


def test_map_reads_the_landmark_pixels(small, posmaps):
    _, uv = small
    reader = LandmarkReader.of("map", uv)
    assert reader.reading == "map"
    np.testing.assert_array_equal(reader(posmaps), posmaps[:, uv.kpt[1], uv.kpt[0]])


def test_read_gives_landmarks_and_dense_faces_of_either_reading(small, small_model_dir, posmaps):
    """map: the landmark pixels and the (smoothed) map at the face pixels; fit: the fitted model's landmarks and
    surface; no maps give no faces."""
    model, uv = small
    mapped = LandmarkReader.of("map", uv)
    landmarks, dense = mapped.read(posmaps)
    np.testing.assert_array_equal(landmarks, mapped(posmaps))
    np.testing.assert_array_equal(dense, posmaps.reshape(2, -1, 3)[:, uv.face_ind])
    _, halved = mapped.read(posmaps, smooth=lambda posmap: posmap / 2)
    np.testing.assert_array_equal(halved, dense / 2)
    fitted = LandmarkReader.of("fit", uv, small_model_dir)
    landmarks, dense = fitted.read(posmaps, smooth=lambda posmap: posmap / 2)
    fitter = fitted.fitter
    np.testing.assert_allclose(landmarks, fitter.landmarks(posmaps))
    np.testing.assert_allclose(dense, fitter.surfaces(fitter.fit_many(posmaps)))
    empty = np.zeros((0, uv.size, uv.size, 3), np.float32)
    for reader in (mapped, fitted):
        landmarks, dense = reader.read(empty, smooth=lambda posmap: posmap)
        assert landmarks.shape == (0, 68, 3) and dense.shape == (0, len(uv.face_ind), 3)


def test_fit_uses_the_given_model_of_the_network(small, small_model_dir, posmaps):
    model, uv = small
    reader = LandmarkReader.of("fit", uv, small_model_dir)
    assert reader.reading == "fit"
    np.testing.assert_array_equal(reader(posmaps), MapFitter(model, uv.face_ind).landmarks(posmaps))


def test_fit_without_a_face_model_reads_the_map(small):
    _, uv = small
    assert LandmarkReader.of("fit", uv, None).reading == "map"
    assert LandmarkReader.of("fit", uv).fitted_folder is None


def test_an_unknown_reading_or_a_missing_face_model_is_refused(small, small_model_dir):
    _, uv = small
    with pytest.raises(InputError, match="landmarks must be one of fit, map, got 'kpt'"):
        LandmarkReader.of("kpt", uv)
    with pytest.raises(InputError, match="model folder not found|no such|not found|BFM"):
        LandmarkReader.of("fit", uv, small_model_dir / "missing")
