"""The synthetic worlds: the dressing and the camera change the picture, never the labels."""

import numpy as np
import pytest
import scipy.io

from prn.pipeline.datasets import read_image
from prn.pipeline.synthetic.camera import photograph
from prn.pipeline.synthetic.dressing import dress, grid_triangles, kept_triangles
from prn.pipeline.synthetic.synth import (
    WORLDS,
    SynthSettings,
    draw_params,
    dressing_meshes,
    place_face,
    render_meshes,
    sample_rng,
    synthesize,
)
from prn.rendering.geometry.pose import image_vertices
from prn.rendering.morphable.bfm import load_morphable_model
from prn.rendering.morphable.uv_assets import full_triangles

LABELS = ("Pose_Para", "Shape_Para", "Exp_Para", "Tex_Para", "pt2d", "pt3d_68", "roi")


def _make(tmp_path, face_model_dir, world, count=6, size=200):
    out = tmp_path / world
    synthesize(SynthSettings(face_model_dir=face_model_dir, out_dir=out, layout="aflw2000", seed=3, image_size=size,
                             world=world), count, progress=False)
    return sorted((out / "AFLW2000").glob("*.mat"))


def test_worlds_share_the_labels_and_differ_in_the_picture(tmp_path, small_model_dir):
    worlds = {world: _make(tmp_path, small_model_dir, world) for world in WORLDS}
    for paths in zip(*worlds.values()):
        fields = [scipy.io.loadmat(path) for path in paths]
        for name in LABELS:
            for other in fields[1:]:
                np.testing.assert_array_equal(fields[0][name], other[name], err_msg=name)
        images = [read_image(path.with_suffix(".jpg")) for path in paths]
        assert all(not np.array_equal(a, b) for a, b in zip(images, images[1:]))
    face_light = [scipy.io.loadmat(path)["Illum_Para"] for path in worlds["face"]]
    photo_light = [scipy.io.loadmat(path)["Illum_Para"] for path in worlds["photo"]]
    assert not np.array_equal(face_light, photo_light)
    portrait_light = [scipy.io.loadmat(path)["Illum_Para"] for path in worlds["portrait"]]
    np.testing.assert_array_equal(photo_light, portrait_light)


def test_the_same_world_gives_the_same_bytes_with_two_workers(tmp_path, small_model_dir):
    one = tmp_path / "one"
    two = tmp_path / "two"
    for folder, workers in ((one, 1), (two, 2)):
        synthesize(SynthSettings(face_model_dir=small_model_dir, out_dir=folder, layout="300w-lp", seed=1,
                                 image_size=160, world="photo"), 20, workers=workers, progress=False)
    files = [{p.relative_to(f): p.read_bytes() for p in sorted(f.rglob("*.jpg"))} for f in (one, two)]
    assert files[0] == files[1] and len(files[0]) == 20


def test_cast_shadows_only_darken(small_model_dir):
    """The same frontal face lit from the side with and without cast shadows: shadows never brighten a pixel,
    and they darken some (the nose's on the cheek)."""
    model = load_morphable_model(small_model_dir)
    vertices = model.vertices(np.zeros(model.n_shape), np.zeros(model.n_exp))
    pose = place_face(model, vertices, np.zeros(7), 300, np.random.default_rng(0))
    meshes = [(image_vertices(vertices, pose, 300), full_triangles(model), model.colors(np.zeros(len(model.tex_ev))))]
    side_light = np.array([0.3, 0.3, 0.3, 0.8, 0.8, 0.8, np.radians(75.0), 0.0, 0.0, 20.0])
    colour = np.array([1, 1, 1, 0, 0, 0, 1.0])
    plain = render_meshes(meshes, side_light, colour, 300)
    shadowed = render_meshes(meshes, side_light, colour, 300, shadow_softness=1.0)
    np.testing.assert_array_equal(plain[..., 3], shadowed[..., 3])
    assert (shadowed[..., :3] <= plain[..., :3] + 1e-3).all()
    assert ((plain - shadowed)[..., :3].max(axis=-1) > 20).sum() > 50


@pytest.mark.parametrize("seed", range(6))
def test_the_face_stays_in_front_of_its_dressing(small_model_dir, seed):
    """Frontal faces: the nose, eyes and mouth landmarks are drawn by the face, not by the cranium or the hair."""
    model = load_morphable_model(small_model_dir)
    settings = SynthSettings(face_model_dir=small_model_dir, out_dir=None, layout="aflw2000", image_size=300)
    rng = sample_rng(seed, 0)
    params = draw_params(model, settings, 0, rng)
    params.pose[:3] = np.radians([0.0, 10.0 * (seed - 3), 0.0])
    vertices = model.vertices(params.shape, params.exp)
    params.pose = place_face(model, vertices, params.pose, 300, rng)
    placed = image_vertices(vertices, params.pose, 300)
    dressing = dressing_meshes(model, vertices, model.colors(params.tex), params, sample_rng(seed, 0, stream=1), 300)
    # Colour the face white and everything else black: a pixel's colour says which mesh drew it.
    white, black = np.full((len(placed), 3), 1e4, np.float32), [np.zeros_like(a) for _, _, a in dressing]
    meshes = [(placed, full_triangles(model), white)] + [(v, t, b) for (v, t, _), b in zip(dressing, black)]
    image = render_meshes(meshes, np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 20.0]), np.array([1, 1, 1, 0, 0, 0, 1.0]),
                          300)
    inner = list(range(27, 36)) + list(range(36, 48)) + list(range(48, 68))
    points = np.round(placed[model.landmarks[inner], :2]).astype(int)
    assert (image[points[:, 1], points[:, 0], 0] > 200).all()


def test_dressing_meshes_are_finite_and_sized_by_the_face(small_model_dir):
    model = load_morphable_model(small_model_dir)
    landmarks = model.vertices(np.zeros(model.n_shape), np.zeros(model.n_exp))[model.landmarks].astype(np.float64)
    parts = dress(np.random.default_rng(0), landmarks, np.array([200, 150, 120]), np.zeros(3))
    bigger = dress(np.random.default_rng(0), landmarks * 2, np.array([200, 150, 120]), np.zeros(3))
    for part, double in zip(parts, bigger):
        assert np.isfinite(part.vertices).all() and part.triangles.max() < len(part.vertices)
        assert part.albedo.shape == part.vertices.shape
        np.testing.assert_allclose(double.vertices, 2 * part.vertices, rtol=1e-9, atol=1e-6)


def test_grid_triangles_wrap_and_keep():
    triangles = grid_triangles(3, 4, wrap=True)
    assert len(triangles) == 2 * 2 * 4 and triangles.max() == 11
    assert len(grid_triangles(3, 4, wrap=False)) == 2 * 2 * 3
    keep = np.ones(12, bool)
    keep[0] = False
    assert not np.isin(0, kept_triangles(triangles, keep))


def test_photograph_is_a_function_of_the_random_stream():
    image = np.random.default_rng(0).integers(0, 256, (64, 80, 3)).astype(np.uint8)
    first = photograph(image, np.random.default_rng(5))
    assert first.shape == image.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, photograph(image, np.random.default_rng(5)))
    outputs = [photograph(image, np.random.default_rng(seed)) for seed in range(40)]
    assert any((out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all() for out in outputs)
    assert len({out.tobytes() for out in outputs}) == 40
