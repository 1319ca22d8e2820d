"""The paper's Eq. 1: per-pixel position-map error weighted by the UV weight mask.

Weight masks come from `prn-prep uv-data` (`weight_mask_<preset>.npy`, read by
`UVAssetFolder.weight_mask`): the
paper's Table 1 presets weight1 (1:1:1:0), weight2 (3:2:1:0), weight3
(10:3:2:0) and the original PRN's prnet (16:4:3:0) over 68 landmarks : eyes,
nose, mouth : other face : neck.
"""

import torch

from prn.rendering.util.errors import InputError

LOSSES = ("euclidean", "mse")


def weighted_loss(prediction, target, weights, kind="euclidean") -> torch.Tensor:
    """Weighted per-pixel error, a scalar independent of the batch size.

    prediction, target (B, 3, H, W); weights (H, W). euclidean: the weighted
    mean over pixels of ||p - t||_2 (Eq. 1 of the paper); mse: of ||p - t||^2.
    Both are averaged over the batch and divided by the mask's sum.
    """
    if kind not in LOSSES:
        raise InputError(f"unknown loss '{kind}', expected one of {', '.join(LOSSES)}")
    error = prediction - target
    # vector_norm, not sqrt of a sum: its gradient is 0 (not NaN) where the error is 0, and on the CPU it does not
    # go through MKL's vector math, whose first sqrt in a process was measured to differ from run to run.
    per_pixel = torch.linalg.vector_norm(error, dim=1) if kind == "euclidean" else (error ** 2).sum(dim=1)
    weights = weights.to(per_pixel)
    return (per_pixel * weights).sum(dim=(1, 2)).mean() / weights.sum()
