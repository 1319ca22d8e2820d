"""Landmarks read from position maps, and the normalised mean error (formats.md section 7)."""

import torch


def landmarks_from_posmap(posmaps, kpt_uv) -> torch.Tensor:
    """(B, 3, H, W) position maps and (2, 68) uv_kpt_ind (column, row) -> (B, 68, 3)."""
    columns, rows = kpt_uv[0], kpt_uv[1]
    return posmaps[:, :, rows, columns].permute(0, 2, 1)


def nme_2d(predicted, truth) -> torch.Tensor:
    """(B,) per-sample 2D NME, normalised by sqrt(w * h) of the truth's (x, y) bounding box.

    predicted, truth (B, 68, >=2) in the same units.
    """
    error = torch.linalg.vector_norm(predicted[..., :2] - truth[..., :2], dim=-1).mean(dim=1)
    extent = truth[..., :2].amax(dim=1) - truth[..., :2].amin(dim=1)
    return error / torch.sqrt(extent[:, 0] * extent[:, 1]).clamp_min(1e-12)
