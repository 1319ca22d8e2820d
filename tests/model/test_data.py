import json
import os
import pickle
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from conftest import synthetic_shards

from prn.model import data
from prn.model.data import ShardDataset, detector_framing_similarity, make_loader
from prn.model.network import POSMAP_SCALE
from prn.rendering.geometry.crop import crop_box, crop_transform, detector_crop
from prn.rendering.morphable.bfm import load_morphable_model
from prn.rendering.morphable.uv_assets import keypoint_pixels
from prn.rendering.util.errors import InputError


@pytest.fixture(scope="module")
def shards(tmp_path_factory, small_model_dir):
    return synthetic_shards(tmp_path_factory.mktemp("data"), small_model_dir, 16, seed=2)


@pytest.fixture(scope="module")
def kpt(small_model_dir):
    model = load_morphable_model(small_model_dir)
    return keypoint_pixels(model.uv, model.landmarks, 256)


def raw(dataset, index, key):
    path, row = dataset.location(index)
    with h5py.File(path) as handle:
        return handle[key][row]


def apply(affine, points):
    """The similarity on (n, 3) crop points: x, y through the 2 x 3 matrix, z times its scale."""
    affine = np.asarray(affine, np.float64)
    scale = np.sqrt(np.linalg.det(affine[:, :2]))
    return np.c_[points[:, :2] @ affine[:, :2].T + affine[:, 2], points[:, 2] * scale]


def test_length_shapes_and_ranges(shards):
    dataset = ShardDataset(shards, augment=False)
    assert len(dataset) == 16
    assert len(ShardDataset([shards, shards])) == 32
    for size in (256, 128):
        sample = ShardDataset(shards, size=size, augment=False)[5]
        assert sample["image"].shape == (3, size, size) and sample["image"].dtype == torch.float32
        assert sample["target"].shape == (3, size, size) and sample["target"].dtype == torch.float32
        assert sample["image"].min() >= 0 and sample["image"].max() <= 1
        assert sample["target"].min() >= 0 and sample["target"].max() <= 1
        assert int(sample["index"]) == 5
    plain = dataset[5]
    np.testing.assert_allclose(plain["target"].numpy().transpose(1, 2, 0) * POSMAP_SCALE,
                               raw(dataset, 5, "posmap").astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(plain["image"].numpy().transpose(1, 2, 0) * 255, raw(dataset, 5, "image"), atol=1e-3)
    augmented = ShardDataset(shards)[5]
    assert augmented["image"].min() >= 0 and augmented["image"].max() <= 1
    assert augmented["target"].abs().max() < 1.5


def test_target_landmarks_follow_the_similarity(shards, kpt):
    dataset = ShardDataset(shards)
    for seed in range(4):
        dataset.seed = seed
        for index in (0, 7, 8, 15):
            sample = dataset[index]
            affine = sample["affine"].numpy()
            assert not np.allclose(affine, [[1, 0, 0], [0, 1, 0]])
            landmarks = sample["target"].numpy()[:, kpt[1], kpt[0]].T * POSMAP_SCALE
            stored = raw(dataset, index, "posmap").astype(np.float64)[kpt[1], kpt[0]]
            np.testing.assert_allclose(landmarks, apply(affine, stored), atol=1e-2)
            # kpt68 differs from the float16 map by its rounding (1/16 px below 256), times the scale
            np.testing.assert_allclose(landmarks, apply(affine, raw(dataset, index, "kpt68")), atol=0.1)


def test_image_and_target_stay_consistent(tmp_path, shards, kpt, monkeypatch):
    """Images whose pixels encode their own (x, y): the warped image at a target landmark reads kpt68."""
    folder = tmp_path / "ramp"
    shutil.copytree(shards, folder)
    ys, xs = np.mgrid[0:256, 0:256]
    ramp = np.stack([xs, ys, np.full_like(xs, 128)], axis=2).astype(np.uint8)
    for path in folder.glob("shard-*.h5"):
        with h5py.File(path, "r+") as handle:
            handle["image"][...] = ramp
    monkeypatch.setattr(data, "GAIN_RANGE", (1.0, 1.0))
    monkeypatch.setattr(data, "OCCLUDE_PROBABILITY", 0.0)
    dataset = ShardDataset(folder, seed=5)
    checked = 0
    for index in range(len(dataset)):
        sample = dataset[index]
        image = sample["image"].numpy() * 255
        points = sample["target"].numpy()[:, kpt[1], kpt[0]].T * POSMAP_SCALE
        source = raw(dataset, index, "kpt68")
        for (x, y, _), (sx, sy, _) in zip(points, source):
            ix, iy = int(np.floor(x)), int(np.floor(y))
            if not (0 <= ix < 255 and 0 <= iy < 255 and 1 <= sx < 254 and 1 <= sy < 254):
                continue
            fx, fy = x - ix, y - iy
            patch = image[:2, iy:iy + 2, ix:ix + 2]
            value = (patch[:, 0, 0] * (1 - fx) * (1 - fy) + patch[:, 0, 1] * fx * (1 - fy)
                     + patch[:, 1, 0] * (1 - fx) * fy + patch[:, 1, 1] * fx * fy)
            np.testing.assert_allclose(value, [sx, sy], atol=1.0)
            checked += 1
    assert checked > 16 * 40


def test_posmap_is_not_spatially_warped(shards):
    """Background UV pixels stay zero and the face's UV support is unchanged by augmentation."""
    plain, augmented = ShardDataset(shards, augment=False)[3], ShardDataset(shards, seed=9)[3]
    face = plain["target"].abs().sum(0) > 0
    assert torch.equal(augmented["target"].abs().sum(0) > 0, face)


def test_detector_framing_reframes_the_crop_as_prn_predict_frames_a_landmark_box(shards):
    """With probability 1 every sample's similarity is the usual one after the framing F, which takes the build's
    crop of any landmark box to the detector rule's crop of it; the map's values follow, z by the scale; with
    probability 0 nothing more is drawn: the samples of a run without the option."""
    framing = detector_framing_similarity()
    rng = np.random.default_rng(4)
    landmarks = rng.uniform(50, 350, (68, 2))
    box = [*landmarks.min(axis=0), *landmarks.max(axis=0)]
    np.testing.assert_allclose(crop_transform(*detector_crop(box)),
                               framing @ crop_transform(*crop_box(landmarks)), atol=1e-9)
    plain, framed = ShardDataset(shards, seed=9), ShardDataset(shards, seed=9, detector_framing=1.0)
    unaugmented = ShardDataset(shards, augment=False)[3]["target"].numpy() * POSMAP_SCALE
    affine = plain[3]["affine"].numpy().astype(np.float64)
    expected = np.vstack([affine, [0, 0, 1]]) @ framing
    np.testing.assert_allclose(framed[3]["affine"].numpy(), expected[:2], atol=1e-4)
    moved = framed[3]["target"].numpy() * POSMAP_SCALE
    face = np.abs(unaugmented).sum(0) > 0
    xy = np.einsum("ij,jhw->ihw", expected[:2, :2], unaugmented[:2]) + expected[:2, 2, None, None]
    np.testing.assert_allclose(moved[:2][:, face], xy[:, face], atol=0.02)
    np.testing.assert_allclose(moved[2][face], unaugmented[2][face] * np.sqrt(np.linalg.det(expected[:2, :2])),
                               rtol=1e-4)
    for key in ("image", "target", "affine"):
        assert torch.equal(plain[3][key], ShardDataset(shards, seed=9, detector_framing=0.0)[3][key])


def test_determinism_per_seed_epoch_index(shards):
    a, b = ShardDataset(shards, seed=1), ShardDataset(shards, seed=1)
    for key in ("image", "target", "affine"):
        assert torch.equal(a[4][key], b[4][key])
    b.set_epoch(1)
    assert not torch.equal(a[4]["image"], b[4]["image"])
    assert not torch.equal(a[4]["affine"], b[4]["affine"])
    assert not torch.equal(a[4]["affine"], ShardDataset(shards, seed=2)[4]["affine"])


def test_more_workers_than_cores_load_without_torchs_warning(shards, recwarn):
    workers = len(os.sched_getaffinity(0)) + 1
    loader = make_loader(ShardDataset(shards, size=64, seed=3), batch_size=8, shuffle=False, workers=workers)
    assert len(list(loader)) == 2 and len(list(loader)) == 2
    assert not [str(warning.message) for warning in recwarn.list if "worker processes" in str(warning.message)]


def test_two_workers_give_the_same_batches(shards):
    def batches(workers):
        dataset = ShardDataset(shards, size=128, seed=3)
        loader = make_loader(dataset, batch_size=4, shuffle=True, workers=workers, seed=3, epoch=2)
        return list(loader)

    single, double = batches(0), batches(2)
    assert len(single) == len(double) == 4
    order = torch.cat([batch["index"] for batch in single])
    assert sorted(order.tolist()) == list(range(16)) and order.tolist() != list(range(16))
    for one, two in zip(single, double):
        for key in one:
            assert torch.equal(one[key], two[key])
    other = torch.cat([batch["index"] for batch in
                       make_loader(ShardDataset(shards, size=128, seed=3), 4, True, 0, seed=3, epoch=3)])
    assert other.tolist() != order.tolist()


def test_distributed_loader_splits_samples(shards, monkeypatch):
    dataset = ShardDataset(shards, augment=False, size=64)
    seen = []
    for rank in range(2):
        monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
        monkeypatch.setattr(torch.distributed, "get_world_size", lambda group=None: 2)
        monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None, r=rank: r)
        loader = make_loader(dataset, 4, True, 0, seed=0, epoch=1, distributed=True)
        seen += torch.cat([batch["index"] for batch in loader]).tolist()
    assert sorted(seen) == list(range(16))


def test_mismatched_folders_are_refused(tmp_path, shards):
    other = tmp_path / "other"
    shutil.copytree(shards, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["model_fingerprint"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="other") as error:
        ShardDataset([shards, other])
    assert "\n" not in str(error.value)


def test_empty_folders_are_refused(tmp_path, shards):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError):
        ShardDataset(empty)
    manifest = json.loads((shards / "manifest.json").read_text())
    manifest["shards"] = []
    (empty / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="no samples"):
        ShardDataset(empty)
    with pytest.raises(InputError):
        ShardDataset([])


def test_files_open_lazily_and_pickled_copies_work(tmp_path, shards):
    before = len(h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE))
    dataset = ShardDataset(shards)
    assert not dataset.index.open_files
    assert len(h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE)) == before
    expected = dataset[9]
    assert len(dataset.index.open_files) == 1
    blob = tmp_path / "dataset.pkl"
    blob.write_bytes(pickle.dumps(dataset))
    assert not pickle.loads(blob.read_bytes()).index.open_files
    script = ("import pickle, sys, torch; d = pickle.load(open(sys.argv[1], 'rb')); "
              "torch.save({k: v for k, v in d[9].items()}, sys.argv[2])")
    subprocess.run([sys.executable, "-c", script, str(blob), str(tmp_path / "out.pt")], check=True)
    result = torch.load(tmp_path / "out.pt")
    for key in expected:
        assert torch.equal(result[key], expected[key])
    dataset.close()


@pytest.mark.parametrize("workers", [0, 2])
def test_a_damaged_shard_is_one_line_naming_it_with_any_worker_count(tmp_path, shards, workers):
    damaged = tmp_path / "damaged"
    shutil.copytree(shards, damaged)
    victim = sorted(damaged.glob("shard-*.h5"))[1]
    victim.write_bytes(victim.read_bytes()[:4096])
    loader = make_loader(ShardDataset(damaged, size=64), batch_size=4, shuffle=False, workers=workers)
    with pytest.raises(InputError) as error:
        list(loader)
    message = str(error.value)
    assert message.startswith(f"{victim}: cannot read shard (") and "\n" not in message, message


@pytest.mark.parametrize("side", [256, 128])
def test_a_half_turn_about_the_crop_centre_takes_the_pixel_grid_onto_itself(side, monkeypatch):
    """Pixel centres sit at integers and a crop spans pixels 0 to side - 1, so its centre is (side - 1) / 2:
    a half turn about it moves pixel (x, y) to (side - 1 - x, side - 1 - y) exactly, the image is the crop
    turned upside down pixel for pixel and the map's values follow (about side / 2 all would be one pixel off)."""
    half_turn = (180.0, 1.0, np.zeros(2), np.ones(3, np.float32), False, None, None, False, None, False)
    monkeypatch.setattr(data, "draw_augmentation", lambda rng, side, framing: half_turn)
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    posmap = rng.uniform(0, side - 1, (32, 32, 3)).astype(np.float32)
    out, moved, affine = data.augment_sample(image, posmap, rng)
    np.testing.assert_array_equal(out, image[::-1, ::-1].astype(np.float32) * np.float32(1 / 255))
    np.testing.assert_allclose(moved[..., :2], side - 1 - posmap[..., :2], atol=1e-4)
    np.testing.assert_allclose(data.similarity(180.0, 1.0, (0, 0)) @ [0, 255, 1], [255, 0], atol=1e-9)
