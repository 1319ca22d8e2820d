"""Position maps predicted by a trained network from 256 x 256 crops.

Shared by `prn-eval` and `prn-predict`: both load a checkpoint with
`prn.model.checkpoint.load_trained` and call `predict_posmaps` on uint8 crops.
"""

import math

import cv2
import numpy as np
import torch

from prn.model.network import POSMAP_SCALE
from prn.rendering.geometry.crop import CROP_SIZE as CROP
from prn.rendering.util.errors import InputError

FACE_SMOOTHING = 4.0  # pixels of the 256 map: the Gaussian that smooths the dense face (docs/prediction.md)


class FaceSmoother:
    """Gaussian smoothing of position maps within the face region of the UV map.

    The blur is normalised by the blurred face mask, so the face's border
    keeps its own positions instead of being pulled towards the neck and the
    empty map around it. sigma: pixels of the 256 map.
    """

    def __init__(self, face_ind, sigma=FACE_SMOOTHING):
        mask = np.zeros(CROP * CROP, np.float32)
        mask[np.asarray(face_ind)] = 1.0
        mask = mask.reshape(CROP, CROP)
        self.sigma = float(sigma)
        self.kernel = 2 * math.ceil(3 * self.sigma) + 1  # +-3 sigma: cv2's own choice for float32 is +-4
        self.mask = np.repeat(mask[..., None], 3, axis=2)
        weight = np.maximum(cv2.GaussianBlur(mask, (self.kernel, self.kernel), self.sigma), 1e-6)
        self.inverse_weight = np.repeat((1.0 / weight)[..., None], 3, axis=2).astype(np.float32)

    def __call__(self, posmap):
        """posmap (256, 256, 3) float32 -> the same smoothed within the face region (other pixels undefined)."""
        blurred = cv2.GaussianBlur(cv2.multiply(posmap, self.mask), (self.kernel, self.kernel), self.sigma)
        return cv2.multiply(blurred, self.inverse_weight)


def crops_to_tensor(crops, size):
    """crops (B, 256, 256, 3) uint8 RGB -> (B, 3, size, size) float32 in [0, 1], as in training.

    The tensor is channels_last (the crops' own layout, no transposing copy), as the network runs.
    """
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[1:] != (CROP, CROP, 3):
        raise InputError(f"crops must be (B, {CROP}, {CROP}, 3), got {crops.shape}")
    images = crops.astype(np.float32) * (1 / 255)
    if size != CROP:
        images = np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) for image in images])
    return torch.from_numpy(images).permute(0, 3, 1, 2)


def in_channels_last(network):
    """Put the network's weights in channels_last (in place), unless they are already: converting walks every
    module, which cost about 3 ms a call for the small preset, more than a third of its forward pass."""
    weight = next((parameter for parameter in network.parameters() if parameter.ndim == 4), None)
    if weight is not None and not weight.is_contiguous(memory_format=torch.channels_last):
        network.to(memory_format=torch.channels_last)


def predict_posmaps(network, config, crops, device="cpu", batch_size=32):
    """crops (B, 256, 256, 3) uint8 RGB -> position maps (B, 256, 256, 3) float32, 256-crop pixels.

    A network trained at a smaller size predicts a size x size UV grid; it is
    resized (bilinear) to the 256 grid the UV assets (uv_kpt_ind, face_ind,
    triangles) are defined on. Values are 256-crop pixel positions at any size
    (model/data.py, "Size").
    """
    device = torch.device(device)
    in_channels_last(network)
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
