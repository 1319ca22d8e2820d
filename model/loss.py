"""The paper's Eq. 1: per-pixel position-map error weighted by the UV weight mask.

Weight masks come from `prn-prep uv-data` (`weight_mask_<preset>.npy`): the
paper's Table 1 presets weight1 (1:1:1:0), weight2 (3:2:1:0), weight3
(10:3:2:0) and the original PRN's prnet (16:4:3:0) over 68 landmarks : eyes,
nose, mouth : other face : neck.
"""

from pathlib import Path

import cv2
import numpy as np
import torch

from prn.rendering.errors import InputError
from prn.rendering.uv_assets import WEIGHT_PRESETS

LOSSES = ("euclidean", "mse")
# Keeps the gradient of the Euclidean distance finite where the error is 0.
DISTANCE_EPSILON = 1e-12


def load_weight_mask(uv_dir, preset, size=256) -> torch.Tensor:
    """(size, size) float32 weight mask of a preset from a UV assets folder, area-resized if needed."""
    if preset not in WEIGHT_PRESETS:
        raise InputError(f"unknown weight preset '{preset}', expected one of {', '.join(WEIGHT_PRESETS)}")
    path = Path(uv_dir) / f"weight_mask_{preset}.npy"
    try:
        mask = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read the weight mask ({str(error).splitlines()[0]})") from None
    if mask.ndim != 2 or mask.shape[0] != mask.shape[1] or not np.isfinite(mask).all() or mask.sum() <= 0:
        raise InputError(f"{path}: expected a square, finite, non-zero 2-D weight mask, got {mask.shape}")
    if mask.shape[0] != size:
        mask = cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))


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
