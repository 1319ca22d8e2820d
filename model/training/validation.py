"""The validation NME during training: landmarks read from position maps, scored by the benchmark's NME.

The landmarks are read at the maps' landmark pixels of one view of each crop
(READING), which costs nothing next to the epoch: `prn-eval` and
`prn-predict` fit the face model by default, so a run's log and best.pt say
which reading chose them (docs/training.md, "Validation").
"""

import numpy as np
import torch

from prn.model.evaluation.metrics import nme

READING = "map, 1 view"   # as prn-eval --landmarks map --views 1 reads them


def landmarks_from_posmap(posmaps, kpt_uv) -> torch.Tensor:
    """(B, 3, H, W) position maps and (2, 68) uv_kpt_ind (column, row) -> (B, 68, 3)."""
    columns, rows = kpt_uv[0], kpt_uv[1]
    return posmaps[:, :, rows, columns].permute(0, 2, 1)


def validation_nme(network, loader, kpt_uv, device) -> float:
    """Mean 2D bbox NME, as a fraction, of the 68 landmarks of the predicted vs the target maps.

    loader yields {"image": (B, 3, S, S), "target": (B, 3, S, S)}; kpt_uv (2, 68)
    on `device`. Scored by metrics.nme (prn-eval's definition) in float64.
    """
    network.eval()
    predicted, truth = [], []
    with torch.no_grad():
        for batch in loader:
            image = batch["image"].to(device, memory_format=torch.channels_last)
            predicted.append(landmarks_from_posmap(network(image), kpt_uv).cpu().numpy())
            truth.append(landmarks_from_posmap(batch["target"].to(device), kpt_uv).cpu().numpy())
    network.train()
    return float(nme(np.concatenate(predicted), np.concatenate(truth), dims=2, kind="bbox").mean()) / 100
