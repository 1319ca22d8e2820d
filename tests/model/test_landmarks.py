"""Reading the 68 landmarks from position maps (prn.model.landmarks): the fit of the network's model, or the map."""

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
    reader = LandmarkReader.of("map", uv, uv.model_fingerprint)
    assert reader.reading == "map"
    np.testing.assert_array_equal(reader(posmaps), posmaps[:, uv.kpt[1], uv.kpt[0]])


def test_fit_uses_the_given_model_of_the_network(small, small_model_dir, posmaps):
    model, uv = small
    reader = LandmarkReader.of("fit", uv, model.fingerprint, model_dir=small_model_dir)
    assert reader.reading == "fit"
    np.testing.assert_array_equal(reader(posmaps), MapFitter(model, uv.face_ind).landmarks(posmaps))


def test_fit_without_the_networks_model_reads_the_map(small):
    """A network of a model other than the built-in one, with no model folder given: the map's landmarks."""
    _, uv = small
    assert LandmarkReader.of("fit", uv, uv.model_fingerprint).reading == "map"
    assert LandmarkReader.of("fit", uv, None).reading == "map"


def test_a_model_of_another_network_or_an_unknown_reading_is_refused(small, small_model_dir):
    _, uv = small
    with pytest.raises(InputError, match=f"{small_model_dir}: model .* but the network was trained for model "
                                         "ffffffffffff"):
        LandmarkReader.of("fit", uv, "f" * 64, model_dir=small_model_dir)
    with pytest.raises(InputError, match="landmarks must be one of fit, map, got 'kpt'"):
        LandmarkReader.of("kpt", uv, uv.model_fingerprint)
    with pytest.raises(InputError, match="model folder not found|no such|not found|BFM"):
        LandmarkReader.of("fit", uv, uv.model_fingerprint, model_dir=small_model_dir / "missing")
