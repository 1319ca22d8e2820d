"""PRN position-map regression network (encoder-decoder) in PyTorch.

``PRNet`` maps a (B, 3, S, S) image in [0, 1] to a (B, 3, S, S) UV position map
in [0, 1] (sigmoid output); times POSMAP_SCALE * S / 256 it is in pixels of an
S-pixel crop (the targets of training are position maps / POSMAP_SCALE).

Layout (``base=16``, ``S=256`` is the paper's configuration)::

    encoder (resfcn):  16@256 -> [32@128, 32@128] -> [64@64, 64@64]
                       -> [128@32, 128@32] -> [256@16, 256@16] -> [512@8, 512@8]
    decoder:           17 transposed convs 512@8 -> ... -> 3@256 (sigmoid)

``base`` scales every channel count; ``S`` must be a multiple of 32.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

BACKBONES = ("resfcn", "mobilenet")
POSMAP_SCALE = 256 * 1.1     # the output's scale: position maps of a 256 px crop / POSMAP_SCALE (original PRN)


def _same_pads(kernel: int, stride: int) -> tuple[int, int]:
    """TF-style SAME padding (before, after) for a size divisible by ``stride``."""
    total = max(kernel - stride, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Module):
    """Conv2d with TF 'SAME' padding: (B, Cin, H, W) -> (B, Cout, H/stride, W/stride).

    A strided 1x1 conv reads every stride-th pixel: it runs as a 1x1 conv of
    those pixels (the same weights and sums; a strided 1x1 conv's backward pass
    crashes oneDNN in channels_last at few channels, torch 2.13 on the CPU).
    """

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False
    ):
        super().__init__()
        before, after = _same_pads(kernel, stride)
        if before == after:
            self.pad = nn.Identity()
            padding = before
        else:
            self.pad = nn.ZeroPad2d((before, after, before, after))
            padding = 0
        self.subsample = stride if kernel == 1 else 1
        self.conv = nn.Conv2d(cin, cout, kernel, stride // self.subsample, padding, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.subsample > 1:
            x = x[..., :: self.subsample, :: self.subsample]
        return self.conv(self.pad(x))


class SameConvTranspose2d(nn.Module):
    """Transposed conv whose output is exactly ``stride`` times the input size.

    (B, Cin, H, W) -> (B, Cout, H*stride, W*stride) for any kernel size: the
    ``kernel - stride`` surplus rows/cols are removed with ``padding`` /
    ``output_padding`` when possible, otherwise by cropping the trailing edge.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, bias: bool = True):
        super().__init__()
        surplus = kernel - stride
        if surplus < 0:
            raise ValueError(f"kernel {kernel} smaller than stride {stride}")
        padding = (surplus + 1) // 2
        output_padding = 2 * padding - surplus
        self.crop = 0
        if output_padding >= stride:
            padding, output_padding = surplus // 2, 0
            self.crop = surplus - 2 * padding
        self.conv = nn.ConvTranspose2d(
            cin, cout, kernel, stride, padding, output_padding=output_padding, bias=bias
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.crop:
            y = y[..., : y.shape[-2] - self.crop, : y.shape[-1] - self.crop]
        return y


def _bn_relu(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]


class ResBlock(nn.Module):
    """PRN bottleneck: (B, Cin, H, W) -> (B, Cout, H/stride, W/stride).

    1x1 conv to Cout/2, kxk conv (stride) at Cout/2, 1x1 conv to Cout, added to
    the shortcut (1x1 strided conv when the shape changes), then BN + ReLU.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        super().__init__()
        mid = max(cout // 2, 1)
        self.shortcut = (
            nn.Identity() if (cin == cout and stride == 1) else SameConv2d(cin, cout, 1, stride, bias=True)
        )
        self.body = nn.Sequential(
            SameConv2d(cin, mid, 1),
            *_bn_relu(mid),
            SameConv2d(mid, mid, kernel, stride),
            *_bn_relu(mid),
            SameConv2d(mid, cout, 1),
        )
        self.out = nn.Sequential(*_bn_relu(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x) + self.shortcut(x))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: (B, Cin, H, W) -> (B, Cout, H/stride, W/stride).

    1x1 expand (x ``expand``), depthwise kxk (stride), linear 1x1 projection;
    identity residual when input and output shapes match.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int = 6):
        super().__init__()
        hidden = cin * expand
        self.use_residual = cin == cout and stride == 1
        self.body = nn.Sequential(
            SameConv2d(cin, hidden, 1),
            *_bn_relu(hidden),
            SameConv2d(hidden, hidden, kernel, stride, groups=hidden),
            *_bn_relu(hidden),
            SameConv2d(hidden, cout, 1),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.use_residual else y


def _resfcn_encoder(base: int, kernel: int) -> nn.Sequential:
    """(B, 3, S, S) -> (B, 32*base, S/32, S/32): stem conv + 10 residual blocks."""
    layers: list[nn.Module] = [SameConv2d(3, base, kernel), *_bn_relu(base)]
    cin = base
    for mult in (2, 4, 8, 16, 32):
        cout = base * mult
        layers += [ResBlock(cin, cout, kernel, 2), ResBlock(cout, cout, kernel, 1)]
        cin = cout
    return nn.Sequential(*layers)


def _mobilenet_encoder(base: int, kernel: int) -> nn.Sequential:
    """(B, 3, S, S) -> (B, 32*base, S/32, S/32): MobileNetV2-style.

    Stride-2 stem conv to base@S/2, then 5 stages of 2 inverted residual blocks
    with narrow widths base * (1.5, 2, 4, 6, 10) at S/2, S/4, S/8, S/16, S/32
    (expansion 1 in the first stage, as in MobileNetV2, 6 elsewhere), and a
    final 1x1 conv + BN + ReLU to 32*base channels.
    """
    layers: list[nn.Module] = [SameConv2d(3, base, kernel, 2), *_bn_relu(base)]
    cin = base
    widths = (3 * base // 2, 2 * base, 4 * base, 6 * base, 10 * base)
    for i, width in enumerate(widths):
        stride, expand = (1, 1) if i == 0 else (2, 6)
        layers += [
            InvertedResidual(cin, width, kernel, stride, expand),
            InvertedResidual(width, width, kernel, 1, expand),
        ]
        cin = width
    layers += [SameConv2d(cin, 32 * base, 1), *_bn_relu(32 * base)]
    return nn.Sequential(*layers)


def _decoder(base: int, kernel: int) -> nn.Sequential:
    """(B, 32*base, S/32, S/32) -> (B, 3, S, S): 17 transposed convs, BN + ReLU
    after each except the last, which is followed by a sigmoid."""
    plan = [
        (32, 1),
        (16, 2), (16, 1), (16, 1),
        (8, 2), (8, 1), (8, 1),
        (4, 2), (4, 1), (4, 1),
        (2, 2), (2, 1),
        (1, 2), (1, 1),
    ]
    layers: list[nn.Module] = []
    cin = 32 * base
    for mult, stride in plan:
        cout = base * mult
        layers += [SameConvTranspose2d(cin, cout, kernel, stride, bias=False), *_bn_relu(cout)]
        cin = cout
    layers += [SameConvTranspose2d(cin, 3, kernel, 1, bias=False), *_bn_relu(3)]
    layers += [SameConvTranspose2d(3, 3, kernel, 1, bias=False), *_bn_relu(3)]
    layers += [SameConvTranspose2d(3, 3, kernel, 1, bias=True), nn.Sigmoid()]
    return nn.Sequential(*layers)


class PRNet(nn.Module):
    """Position map regression network.

    Args:
        base: channel multiplier (16 = paper; encoder ends at 32*base channels).
        kernel: kernel size of the kxk convs and all transposed convs (3, or 4 as
            in the original PRN).
        backbone: ``"resfcn"`` (paper) or ``"mobilenet"`` (lighter).
        input_size: S, a multiple of 32.

    ``forward``: (B, 3, S, S) in [0, 1] -> (B, 3, S, S) in (0, 1).
    ``encode``: (B, 3, S, S) -> (B, 32*base, S/32, S/32).
    """

    def __init__(self, base: int = 16, kernel: int = 3, backbone: str = "resfcn", input_size: int = 256):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
        if input_size % 32 or input_size <= 0:
            raise ValueError(f"input_size must be a positive multiple of 32, got {input_size}")
        if base < 1 or kernel < 2:
            raise ValueError(f"need base >= 1 and kernel >= 2, got base={base}, kernel={kernel}")
        self.base = base
        self.kernel = kernel
        self.backbone = backbone
        self.input_size = input_size
        build = _resfcn_encoder if backbone == "resfcn" else _mobilenet_encoder
        self.encoder = build(base, kernel)
        self.decoder = _decoder(base, kernel)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, 32*base, S/32, S/32) bottleneck features."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> (B, 3, S, S) position map in (0, 1)."""
        return self.decoder(self.encoder(x))


def count_parameters(network: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in network.parameters() if p.requires_grad)


def flops_per_image(network: nn.Module, input_size: int | None = None) -> int:
    """FLOPs of one (1, 3, S, S) forward pass, as 2 x multiply-accumulates.

    Counted with forward hooks on Conv2d, ConvTranspose2d and Linear layers
    only; biases, BatchNorm, ReLU, sigmoid, padding and additions are not
    counted. ``input_size`` defaults to ``network.input_size``.
    """
    size = input_size if input_size is not None else network.input_size
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        x = inputs[0]
        if isinstance(module, nn.ConvTranspose2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            spatial = x.shape[-2] * x.shape[-1]
            macs = spatial * module.in_channels * (module.out_channels // module.groups) * k
        elif isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            spatial = output.shape[-2] * output.shape[-1]
            macs = spatial * module.out_channels * (module.in_channels // module.groups) * k
        else:
            macs = (x.numel() // module.in_features) * module.in_features * module.out_features
        total += 2 * macs

    handles = [
        m.register_forward_hook(hook)
        for m in network.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))
    ]
    was_training = network.training
    try:
        network.eval()
        with torch.no_grad():
            network(torch.zeros(1, 3, size, size, device=next(network.parameters()).device))
    finally:
        for h in handles:
            h.remove()
        network.train(was_training)
    return int(total)


def fold_batch_norms(network: nn.Module) -> nn.Module:
    """An eval-mode copy of the network with its batch norms folded into the convolutions before them.

    In eval mode a BatchNorm2d is a per-channel scale and shift, so one that
    directly follows a convolution in a Sequential becomes part of that
    convolution's weights and bias (and an Identity); a ResBlock's output norm,
    after the sum of its body and a convolution shortcut, goes into both. The
    copy gives the original's outputs up to float rounding in fewer passes over
    the activations (about a fifth of the paper network's CPU time); it is for
    inference only: training it would train another network.
    """
    folded = copy.deepcopy(network).eval()
    with torch.no_grad():
        for module in folded.modules():
            if isinstance(module, nn.Sequential):
                for index in range(1, len(module)):
                    conv = _inner_conv(module[index - 1])
                    if conv is not None and isinstance(module[index], nn.BatchNorm2d):
                        _scale_conv(conv, *_norm_scale_shift(module[index]))
                        module[index] = nn.Identity()
            elif isinstance(module, ResBlock) and isinstance(module.shortcut, SameConv2d) \
                    and isinstance(module.out[0], nn.BatchNorm2d):
                scale, shift = _norm_scale_shift(module.out[0])
                _scale_conv(_inner_conv(module.body[-1]), scale, torch.zeros_like(shift))
                _scale_conv(module.shortcut.conv, scale, shift)
                module.out[0] = nn.Identity()
    return folded


def _inner_conv(module: nn.Module) -> nn.Conv2d | nn.ConvTranspose2d | None:
    """The torch convolution of a SameConv2d / SameConvTranspose2d, else None."""
    return module.conv if isinstance(module, SameConv2d | SameConvTranspose2d) else None


def _norm_scale_shift(norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale (C,), shift (C,)) with norm(x) = scale * x + shift per channel in eval mode."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return scale, norm.bias - scale * norm.running_mean


def _scale_conv(conv: nn.Conv2d | nn.ConvTranspose2d, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """Make conv(x) into scale * conv(x) + shift per output channel, in place."""
    out_axis = 1 if isinstance(conv, nn.ConvTranspose2d) else 0  # ConvTranspose2d weights are (Cin, Cout/g, k, k)
    if isinstance(conv, nn.ConvTranspose2d) and conv.groups != 1:
        raise ValueError("grouped transposed convolutions are not folded")
    shape = [1] * conv.weight.dim()
    shape[out_axis] = -1
    conv.weight.mul_(scale.reshape(shape))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
    conv.bias = nn.Parameter(scale * bias + shift)
