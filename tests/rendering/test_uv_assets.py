import cv2
import numpy as np
import pytest
from conftest import real_path, write_real_topology_model

from prn.rendering.morphable.bfm import load_face_vertices, load_morphable_model
from prn.rendering.morphable.uv_assets import (
    WEIGHT_PRESETS,
    compute_uv_assets,
    grid_triangles,
    keypoint_pixels,
    load_uv_assets,
    uv_pixel_coords,
    write_uv_assets,
)
from prn.rendering.util.errors import InputError


@pytest.fixture(scope="module")
def real_topology_model(tmp_path_factory):
    return load_morphable_model(write_real_topology_model(tmp_path_factory.mktemp("real-topology")))


def test_keypoints_equal_the_original_prn_file(real_topology_model):
    reference = np.loadtxt(real_path("reference", "prnet_uv", "uv_kpt_ind.txt")).astype(np.int64)
    ours = keypoint_pixels(real_topology_model.uv, real_topology_model.landmarks, 256)
    np.testing.assert_array_equal(ours, reference)


def test_face_mask_overlaps_the_original_prn_mask(real_topology_model):
    faces = load_face_vertices(real_path("bfm", "face_vertex_ind.npy"), real_topology_model.n_vertices)
    assets = compute_uv_assets(real_topology_model, 256, face_vertices=faces)
    reference = cv2.imread(str(real_path("reference", "prnet_uv", "uv_face_mask.png")), cv2.IMREAD_GRAYSCALE) > 0
    iou = (assets.face_mask & reference).sum() / (assets.face_mask | reference).sum()
    assert iou >= 0.9, iou
    # the landmark pixels that the original PRN weights most are inside our keypoint region
    np.testing.assert_array_equal(assets.weights["prnet"][assets.kpt[1], assets.kpt[0]], 1.0)


def test_uv_pixel_convention():
    np.testing.assert_allclose(uv_pixel_coords([[0, 0], [1, 1], [0.5, 0.5]], 256),
                               [[0, 255], [255, 0], [127.5, 127.5]])
    # halves round up: the BFM's midline (u = 127.5) lands on column 128
    assert keypoint_pixels(np.array([[0.5, 0.5]]), [0], 256).tolist() == [[128], [128]]


def test_grid_triangles_cover_the_mask_grid():
    mask = np.zeros((5, 6), bool)
    mask[1:4, 1:5] = True
    triangles = grid_triangles(mask)
    assert len(triangles) == 2 * 2 * 3
    assert triangles.min() == 0 and triangles.max() == mask.sum() - 1
    pixels = np.argwhere(mask)[triangles]  # (t, 3, 2) row, col
    edge1, edge2 = pixels[:, 1] - pixels[:, 0], pixels[:, 2] - pixels[:, 0]
    areas = edge1[:, 0] * edge2[:, 1] - edge1[:, 1] * edge2[:, 0]
    assert np.all(areas == areas[0]) and abs(areas[0]) == 1  # same orientation, half a pixel square each


@pytest.fixture(scope="module")
def small_assets(small_model_dir):
    model = load_morphable_model(small_model_dir)
    return model, compute_uv_assets(model, 256)


def test_weight_regions_follow_the_landmarks(small_assets):
    model, assets = small_assets
    kpt = assets.kpt
    for preset, ratio in WEIGHT_PRESETS.items():
        weights = assets.weights[preset]
        assert weights.dtype == np.float32 and weights.shape == (256, 256)
        expected = np.array(ratio, np.float32) / max(ratio)
        for level in np.unique(weights):
            assert np.isclose(expected, level).any() or level == 0, (preset, level)
        np.testing.assert_allclose(weights[kpt[1], kpt[0]], 1.0)
    weights = assets.weights["weight3"]
    # eyes, nose and mouth centres carry the feature weight, a cheek the face weight
    for group in (range(36, 42), range(42, 48), range(48, 60)):
        u, v = np.round(kpt[:, list(group)].mean(1)).astype(int)
        assert weights[v, u] == pytest.approx(3 / 10)
    cheek_u = int(round(0.5 * kpt[0, 2] + 0.5 * kpt[0, 48]))
    cheek_v = int(round(0.5 * kpt[1, 2] + 0.5 * kpt[1, 48]))
    assert weights[cheek_v, cheek_u] == pytest.approx(2 / 10)
    # below the chin: neck, weight 0, yet inside the model's UV region
    chin_u, chin_v = kpt[:, 8]
    assert weights[min(255, chin_v + 10), chin_u] == 0
    assert np.all(weights[assets.face_mask] >= 0)


def test_face_pixels_and_canonical_vertices(small_assets):
    model, assets = small_assets
    assert np.all(np.diff(assets.face_ind) > 0)
    np.testing.assert_array_equal(np.flatnonzero(assets.face_mask), assets.face_ind)
    assert assets.canonical.shape == (len(assets.face_ind), 3)
    assert assets.canonical[:, 2].min() >= 0
    # the frontal mean face: the nose tip is the nearest landmark, the chin the lowest
    lookup = {pixel: i for i, pixel in enumerate(assets.face_ind)}
    nose = lookup.get(assets.kpt[1, 30] * 256 + assets.kpt[0, 30])
    eye = lookup.get(assets.kpt[1, 36] * 256 + assets.kpt[0, 36])
    assert nose is not None and eye is not None
    assert assets.canonical[nose, 2] > assets.canonical[eye, 2]
    assert assets.canonical[nose, 1] > assets.canonical[eye, 1]  # y grows downwards


def test_write_is_complete_and_reloadable(tmp_path, small_assets):
    _, assets = small_assets
    written = write_uv_assets(assets, tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(p.name for p in written)
    assert not [n for n in names if n.endswith(".tmp")]
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "uv_kpt_ind.txt").astype(int), assets.kpt)
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "face_ind.txt").astype(int), assets.face_ind)
    mask = cv2.imread(str(tmp_path / "uv_face_mask.png"), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(mask > 0, assets.face_mask)
    np.testing.assert_array_equal(np.load(tmp_path / "weight_mask_weight2.npy"), assets.weights["weight2"])


def test_bad_face_vertex_lists(tmp_path, small_assets):
    model, _ = small_assets
    for value, message in [(np.array([0.5, 1.5]), "integer"), (np.array([], np.int32), "non-empty"),
                           (np.array([model.n_vertices]), "outside")]:
        np.save(tmp_path / "faces.npy", value)
        with pytest.raises(InputError, match=message):
            load_face_vertices(tmp_path / "faces.npy", model.n_vertices)
    (tmp_path / "faces.npy").write_bytes(b"not numpy")
    with pytest.raises(InputError, match="faces.npy: not a readable"):
        load_face_vertices(tmp_path / "faces.npy", model.n_vertices)
    with pytest.raises(InputError, match="covers no triangle"):
        compute_uv_assets(model, 64, face_vertices=np.array([0, 1]))


@pytest.mark.parametrize("name, content, message", [
    ("triangles.txt", "", "no data"), ("face_ind.txt", "# nothing\n", "no data"),
    ("canonical_vertices.npy", "complex", "complex"), ("uv_kpt_ind.txt", "1 2\nx y\n", "could not convert")])
def test_an_empty_or_complex_asset_file_is_one_clean_error(tmp_path, small_assets, name, content, message, recwarn):
    _, assets = small_assets
    write_uv_assets(assets, tmp_path)
    if content == "complex":
        np.save(tmp_path / name, np.load(tmp_path / name) * (1 + 1j))
    else:
        (tmp_path / name).write_text(content)
    with pytest.raises(InputError, match=f"{name}: unreadable .*{message}"):
        load_uv_assets(tmp_path)
    assert not recwarn.list
