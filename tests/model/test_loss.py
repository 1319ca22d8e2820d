import shutil

import numpy as np
import pytest
import torch

from prn.model.loss import weighted_loss
from prn.rendering.morphable.uv_assets import load_uv_assets
from prn.rendering.util.errors import InputError
from prn.uv_data import builtin_uv_dir


def test_loss_matches_its_definition_and_ignores_batch_size():
    torch.manual_seed(0)
    prediction, target = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    weights = torch.rand(8, 8)
    distance = torch.linalg.vector_norm(prediction - target, dim=1)
    expected = (distance * weights).sum() / (4 * weights.sum())
    assert weighted_loss(prediction, target, weights).item() == pytest.approx(expected.item(), rel=1e-5)
    expected_mse = ((distance ** 2) * weights).sum() / (4 * weights.sum())
    assert weighted_loss(prediction, target, weights, "mse").item() == pytest.approx(expected_mse.item(), rel=1e-5)
    doubled = weighted_loss(torch.cat([prediction, prediction]), torch.cat([target, target]), weights)
    assert doubled.item() == pytest.approx(weighted_loss(prediction, target, weights).item(), rel=1e-6)


def test_zero_weight_pixels_do_not_count_and_gradients_stay_finite():
    prediction = torch.zeros(1, 3, 4, 4, requires_grad=True)
    target = torch.zeros(1, 3, 4, 4)
    target[..., 0, 0] = 5.0
    weights = torch.ones(4, 4)
    weights[0, 0] = 0.0
    loss = weighted_loss(prediction, target, weights)
    assert loss.item() == pytest.approx(0.0, abs=1e-5)
    loss.backward()
    assert torch.isfinite(prediction.grad).all()
    with pytest.raises(InputError):
        weighted_loss(prediction, target, weights, "l1")


def test_weight_masks_of_the_builtin_model():
    for preset, ratio in (("weight1", 1), ("weight3", 10 / 2), ("prnet", 16 / 3)):
        mask = load_uv_assets(builtin_uv_dir()).weight_mask(preset)
        assert mask.shape == (256, 256) and mask.max() == 1.0
        face = mask[mask > 0]
        assert face.max() / face.min() == pytest.approx(ratio, rel=1e-5)
    assert load_uv_assets(builtin_uv_dir()).weight_mask("weight2", 128).shape == (128, 128)
    with pytest.raises(InputError, match="unknown weight preset"):
        load_uv_assets(builtin_uv_dir()).weight_mask("weight9")


def test_bad_weight_mask_file(tmp_path):
    shutil.copytree(builtin_uv_dir(), tmp_path / "uv", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    np.save(tmp_path / "uv" / "weight_mask_weight1.npy", np.full((256, 256), np.nan))
    (tmp_path / "uv" / "weight_mask_weight2.npy").unlink()
    uv = load_uv_assets(tmp_path / "uv")
    with pytest.raises(InputError, match="weight_mask_weight1.npy"):
        uv.weight_mask("weight1")
    with pytest.raises(InputError, match="cannot read"):
        uv.weight_mask("weight2")


@pytest.mark.parametrize("mask", [np.full((256, 256), -1.0), np.where(np.eye(256) > 0, -0.5, 1.0),
                                  np.full((256, 256), "1.0"), np.zeros((256, 256))])
def test_negative_all_zero_or_string_weight_masks_are_one_line(tmp_path, mask):
    shutil.copytree(builtin_uv_dir(), tmp_path / "uv", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    np.save(tmp_path / "uv" / "weight_mask_weight3.npy", mask)
    with pytest.raises(InputError, match="weight_mask_weight3.npy: expected a 256 x 256 weight mask of finite "
                                         "numbers >= 0, not all 0"):
        load_uv_assets(tmp_path / "uv").weight_mask("weight3")
