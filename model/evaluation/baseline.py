"""The mean-face baseline: predict the training set's mean position map for every test crop.

Since the crop comes from the face's own landmarks (docs/formats.md section 6), the
mean map is "aligned by the crop": it is the best constant guess in crop
coordinates. A trained PRN must beat it by a clear margin.
"""

from pathlib import Path

import numpy as np

from prn.pipeline.shards import ShardFolder
from prn.rendering.geometry.crop import crop_to_image
from prn.rendering.morphable.uv_assets import load_uv_assets
from prn.rendering.util.atomic import atomic_path
from prn.rendering.util.errors import InputError

READ_BLOCK = 64


def mean_position_map(folders) -> np.ndarray:
    """(S, S, 3) float64 mean of the stored position maps (crop pixels) over shard folders."""
    total, count = None, 0
    for folder in folders:
        with ShardFolder(folder) as shards:
            for _, columns in shards.blocks(("posmap",), READ_BLOCK):
                block = columns["posmap"].astype(np.float64)
                total = block.sum(0) if total is None else total + block.sum(0)
                count += len(block)
    if not count:
        raise InputError(f"{', '.join(str(f) for f in folders)}: no samples to average")
    return total / count


def write_mean_face_predictions(train_folders, test_folder, uv_dir, path):
    """Write a `prn-eval --predictions` npz: the mean map's 68 landmarks placed by each test crop.

    name (N,) and kpt68 (N, 68, 3) float32 in original image coordinates.
    """
    mean_map = mean_position_map(train_folders)
    kpt = load_uv_assets(uv_dir, mean_map.shape[0]).kpt
    landmarks = mean_map[kpt[1], kpt[0]]
    with ShardFolder(test_folder) as shards:
        names = shards.names
        tforms = np.concatenate([columns["tform"] for _, columns in shards.blocks(("tform",), READ_BLOCK)])
    predicted = crop_to_image(np.broadcast_to(landmarks, (len(tforms), 68, 3)), tforms).astype(np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, name=names, kpt68=predicted)
    return path
