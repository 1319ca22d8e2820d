"""Tests of prn.pipeline.synthetic.backgrounds: kinds, determinism, the natural images."""

import numpy as np
import pytest

from prn.pipeline.synthetic import backgrounds


def test_background_shape_dtype_and_determinism_for_every_kind():
    for kind in backgrounds.available_kinds():
        for size in ((450, 450), (37, 53)):
            a, got = backgrounds.background_with_kind(np.random.default_rng(7), *size, kind=kind)
            b, _ = backgrounds.background_with_kind(np.random.default_rng(7), *size, kind=kind)
            assert got == kind
            assert a.shape == size + (3,) and a.dtype == np.uint8 and a.flags.c_contiguous
            assert a.tobytes() == b.tobytes(), kind


def test_background_varies_across_seeds():
    stats, kinds = set(), set()
    for seed in range(50):
        rng = np.random.default_rng(seed)
        image, kind = backgrounds.background_with_kind(rng, 120, 100)
        kinds.add(kind)
        stats.add((round(float(image.mean()), 2), round(float(image.std()), 2)))
        again = backgrounds.make_background(np.random.default_rng(seed), 120, 100)
        assert again.tobytes() == image.tobytes()
    assert len(stats) >= 48
    assert len(kinds) >= 6
    # Not flat: most backgrounds have texture.
    assert sum(1 for _, std in stats if std > 10) >= 40


def test_natural_images_are_used_when_present():
    folder = backgrounds.sample_data_dir()
    files = {"photo": "grace_hopper.jpg", "sticker": "Minduka_Present_Blue_Pack.png",
             "terrain": "jacksboro_fault_dem.npz"}
    present = {k for k, f in files.items() if folder is not None and (folder / f).is_file()}
    if not present:
        pytest.skip("matplotlib's sample data is not installed")
    assert present <= set(backgrounds.natural_assets())
    assert present <= set(backgrounds.available_kinds())
    seen = {backgrounds.background_with_kind(np.random.default_rng(s), 64, 64)[1] for s in range(60)}
    assert seen & present
    if "photo" in present:
        source = backgrounds.natural_assets()["photo"][0]
        assert source.ndim == 3 and source.shape[2] == 3 and source.dtype == np.uint8


def test_missing_natural_images_are_skipped(monkeypatch):
    monkeypatch.setattr(backgrounds, "natural_assets", lambda: {})
    kinds = backgrounds.available_kinds()
    assert not set(kinds) & set(backgrounds.NATURAL_KINDS)
    for seed in range(20):
        image, kind = backgrounds.background_with_kind(np.random.default_rng(seed), 50, 60)
        assert kind not in backgrounds.NATURAL_KINDS and image.shape == (50, 60, 3)
    with pytest.raises(KeyError):
        backgrounds.background_with_kind(np.random.default_rng(0), 50, 60, kind="photo")


def test_background_rejects_empty_size():
    with pytest.raises(ValueError):
        backgrounds.make_background(np.random.default_rng(0), 0, 10)
