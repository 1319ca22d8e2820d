"""A trained network from its checkpoint, and position maps predicted from 256 x 256 crops.

Shared by `prn-eval` and `prn-predict`: both load a checkpoint with
`load_trained` and call `predict_posmaps` on uint8 crops.
"""

import json
from dataclasses import fields

import cv2
import numpy as np
import torch

from prn.model.data import CROP, POSMAP_SCALE
from prn.model.training.train import TrainConfig, make_network
from prn.rendering.util.errors import InputError


def load_trained(path, device="cpu"):
    """(network in eval mode on `device`, TrainConfig) from a `prn-train` checkpoint.

    The network is built from the config stored in the checkpoint, so the
    caller does not need to know the preset. InputError names the file when it
    is unreadable, lacks a config, or does not fit the network it describes.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        stored = json.loads(state["config"])
    except FileNotFoundError:
        raise InputError(f"{path}: no such checkpoint") from None
    except Exception as error:  # torch raises many types for bad files
        raise InputError(f"{path}: not a readable checkpoint ({str(error).splitlines()[0][:200]})") from None
    known = {field.name for field in fields(TrainConfig)}
    stored["data"] = tuple(stored.get("data", ()))
    config = TrainConfig(**{key: value for key, value in stored.items() if key in known})
    network = make_network(config)
    try:
        network.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as error:
        raise InputError(f"{path}: the weights do not fit the network in its config "
                         f"({str(error).splitlines()[0][:200]})") from None
    network = network.to(device).eval()
    return network, config


def crops_to_tensor(crops, size):
    """crops (B, 256, 256, 3) uint8 RGB -> (B, 3, size, size) float32 in [0, 1], as in training."""
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[1:] != (CROP, CROP, 3):
        raise InputError(f"crops must be (B, {CROP}, {CROP}, 3), got {crops.shape}")
    images = crops.astype(np.float32) * (1 / 255)
    if size != CROP:
        images = np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) for image in images])
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def predict_posmaps(network, config, crops, device="cpu", batch_size=32):
    """crops (B, 256, 256, 3) uint8 RGB -> position maps (B, 256, 256, 3) float32, 256-crop pixels.

    A network trained at a smaller size predicts a size x size UV grid; it is
    resized (bilinear) to the 256 grid the UV assets (uv_kpt_ind, face_ind,
    triangles) are defined on. Values are 256-crop pixel positions at any size
    (model/data.py, "Size").
    """
    device = torch.device(device)
    outputs = []
    with torch.no_grad():
        for start in range(0, len(crops), batch_size):
            images = crops_to_tensor(crops[start:start + batch_size], config.size).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                prediction = network(images)
            maps = prediction.float().cpu().numpy().transpose(0, 2, 3, 1) * np.float32(POSMAP_SCALE)
            if config.size != CROP:
                maps = np.stack([cv2.resize(m, (CROP, CROP), interpolation=cv2.INTER_LINEAR) for m in maps])
            outputs.append(maps.astype(np.float32))
    if not outputs:
        return np.zeros((0, CROP, CROP, 3), np.float32)
    return np.concatenate(outputs)
