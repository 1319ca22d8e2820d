"""The validation NME during training (prn.model.training.validation) is the benchmark's NME."""

import numpy as np
import pytest
import torch
from torch import nn

from prn.model.evaluation import metrics
from prn.model.training.validation import landmarks_from_posmap, validation_nme
from prn.uv_data import builtin_uv_dir


def keypoints():
    return torch.tensor(np.loadtxt(builtin_uv_dir() / "uv_kpt_ind.txt").astype(np.int64))


def test_landmarks_from_position_maps():
    kpt = keypoints()
    posmap = torch.zeros(2, 3, 256, 256)
    truth = torch.rand(2, 68, 3) * 100
    posmap[:, :, kpt[1], kpt[0]] = truth.permute(0, 2, 1)
    np.testing.assert_allclose(landmarks_from_posmap(posmap, kpt), truth)


def test_validation_nme_equals_the_benchmark_nme_on_the_same_arrays():
    kpt = keypoints()
    generator = torch.Generator().manual_seed(0)
    predicted = torch.rand(5, 3, 256, 256, generator=generator)
    truth = torch.rand(5, 3, 256, 256, generator=generator)
    # the identity network "predicts" the image: batches of 2, 2 and 1 samples
    loader = [{"image": predicted[start:start + 2], "target": truth[start:start + 2]} for start in (0, 2, 4)]
    got = validation_nme(nn.Identity(), loader, kpt, torch.device("cpu"))

    def landmarks(maps):
        return maps.numpy()[:, :, kpt[1].numpy(), kpt[0].numpy()].transpose(0, 2, 1)

    expected = metrics.nme(landmarks(predicted), landmarks(truth), dims=2, kind="bbox")
    assert expected.shape == (5,)
    assert got == pytest.approx(expected.mean() / 100, rel=1e-12)
    assert validation_nme(nn.Identity(), [{"image": truth, "target": truth}], kpt, torch.device("cpu")) == 0.0


def test_validation_leaves_the_network_training():
    network = nn.Identity().train()
    kpt = keypoints()
    maps = torch.rand(1, 3, 256, 256)
    validation_nme(network, [{"image": maps, "target": maps}], kpt, torch.device("cpu"))
    assert network.training
