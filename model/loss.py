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
# Keeps the gradient of the Euclidean distance finite where the error is 0.
DISTANCE_EPSILON = 1e-12


def weighted_loss(prediction, target, weights, kind="euclidean") -> torch.Tensor:
    """Weighted per-pixel error, a scalar independent of the batch size.

    prediction, target (B, 3, H, W); weights (H, W). euclidean: the weighted
    mean over pixels of ||p - t||_2 (Eq. 1 of the paper); mse: of ||p - t||^2.
    Both are averaged over the batch and divided by the mask's sum.
    """
    if kind not in LOSSES:
        raise InputError(f"unknown loss '{kind}', expected one of {', '.join(LOSSES)}")
    squared = ((prediction - target) ** 2).sum(dim=1)
    per_pixel = torch.sqrt(squared + DISTANCE_EPSILON) if kind == "euclidean" else squared
    weights = weights.to(per_pixel)
    return (per_pixel * weights).sum(dim=(1, 2)).mean() / weights.sum()
