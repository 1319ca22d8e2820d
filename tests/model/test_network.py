"""Tests for the PRN encoder-decoder (prn.model.network)."""

import pytest
import torch
from torch import nn

from prn.model.network import (
    BACKBONES,
    PRNet,
    SameConvTranspose2d,
    count_parameters,
    flops_per_image,
    fold_batch_norms,
)

PAPER_PARAMS = 7_861_329  # base 16, kernel 3, resfcn, 256


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("kernel", [3, 4])
@pytest.mark.parametrize(("size", "base"), [(64, 4), (64, 8), (128, 4)])
def test_output_shape_range_and_bottleneck(backbone, kernel, size, base):
    network = PRNet(base=base, kernel=kernel, backbone=backbone, input_size=size).eval()
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        feats = network.encode(x)
        y = network(x)
    assert feats.shape == (2, 32 * base, size // 32, size // 32)
    assert y.shape == (2, 3, size, size)
    assert torch.all((y >= 0) & (y <= 1))


def test_paper_configuration_forward_and_parameters():
    network = PRNet().eval()
    assert count_parameters(network) == PAPER_PARAMS
    with torch.no_grad():
        x = torch.rand(1, 3, 256, 256)
        assert network.encode(x).shape == (1, 512, 8, 8)
        assert network(x).shape == (1, 3, 256, 256)


def test_encoder_ladder_paper():
    network = PRNet(base=16, kernel=3, input_size=256).eval()
    shapes = []
    hooks = [blk.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
             for blk in network.encoder if blk.__class__.__name__ == "ResBlock"]
    with torch.no_grad():
        network.encode(torch.rand(1, 3, 256, 256))
    for h in hooks:
        h.remove()
    expected = []
    for c, s in [(32, 128), (64, 64), (128, 32), (256, 16), (512, 8)]:
        expected += [(c, s, s), (c, s, s)]
    assert shapes == expected


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("kernel", [3, 4])
def test_decoder_has_17_transposed_convs(backbone, kernel):
    network = PRNet(base=4, kernel=kernel, backbone=backbone, input_size=64)
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in network.decoder.modules()) == 17
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in network.encoder.modules())
    assert isinstance(network.decoder[-1], nn.Sigmoid)


@pytest.mark.parametrize("kernel", [2, 3, 4, 5])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [2, 4, 7])
def test_same_transposed_conv_scales_exactly(kernel, stride, size):
    layer = SameConvTranspose2d(2, 3, kernel, stride)
    assert layer(torch.rand(1, 2, size, size)).shape == (1, 3, size * stride, size * stride)


@pytest.mark.parametrize(("base", "size"), [(4, 128), (16, 256)])
def test_mobilenet_lighter_than_resfcn(base, size):
    res = PRNet(base=base, backbone="resfcn", input_size=size)
    mob = PRNet(base=base, backbone="mobilenet", input_size=size)
    assert count_parameters(mob) < count_parameters(res)
    assert count_parameters(mob.encoder) < count_parameters(res.encoder) / 2
    assert flops_per_image(mob) < flops_per_image(res)


def test_flops_counts_conv_and_transposed_conv():
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    tconv = nn.ConvTranspose2d(5, 2, 4, stride=2, padding=1)
    network = nn.Sequential(conv, nn.BatchNorm2d(5), nn.ReLU(), tconv)
    network.input_size = 8
    expected = 2 * (4 * 4 * 5 * 3 * 9) + 2 * (4 * 4 * 5 * 2 * 16)
    assert flops_per_image(network) == expected
    small = PRNet(base=4, input_size=64)
    assert flops_per_image(small, 128) == 4 * flops_per_image(small)


def test_backward_gives_finite_gradients():
    network = PRNet(base=4, kernel=3, input_size=64).train()
    x = torch.rand(2, 3, 64, 64)
    loss = ((network(x) - torch.rand(2, 3, 64, 64)) ** 2).mean()
    loss.backward()
    grads = [p.grad for p in network.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_eval_is_deterministic(backbone):
    network = PRNet(base=4, kernel=4, backbone=backbone, input_size=64).eval()
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(network(x), network(x))
        assert torch.allclose(network(x[:1]), network(x)[:1], atol=1e-6)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        PRNet(backbone="vgg")
    with pytest.raises(ValueError):
        PRNet(input_size=100)


def _with_random_norms(network, seed=0):
    """The network with every BatchNorm2d given random affine parameters and running statistics."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                channels = module.num_features
                module.weight.copy_(0.5 + torch.rand(channels, generator=generator))
                module.bias.copy_(torch.randn(channels, generator=generator) * 0.1)
                module.running_mean.copy_(torch.randn(channels, generator=generator) * 0.1)
                module.running_var.copy_(0.5 + torch.rand(channels, generator=generator))
    return network.eval()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_folded_batch_norms_give_the_same_outputs(backbone):
    network = _with_random_norms(PRNet(base=4, backbone=backbone, input_size=64))
    folded = fold_batch_norms(network)
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        features, folded_features = network.encode(images), folded.encode(images)
        outputs, folded_outputs = network(images), folded(images)
    assert features.abs().max() > 0.1
    torch.testing.assert_close(folded_features, features, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(folded_outputs, outputs, rtol=1e-4, atol=1e-6)
    norms_left = sum(isinstance(module, torch.nn.BatchNorm2d) for module in folded.modules())
    assert norms_left == (5 if backbone == "resfcn" else 0)  # resfcn: the 5 blocks with identity shortcuts
    assert sum(isinstance(module, torch.nn.BatchNorm2d) for module in network.modules()) > 40  # original untouched
