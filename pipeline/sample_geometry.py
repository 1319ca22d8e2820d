"""The geometry of one shard sample, the same for `build` and `augment` (docs/formats.md section 6).

A face (vertices placed by a pose) is shown in a picture through a frame,
original image -> picture: the original image itself for build, a re-rendered
source crop for augment. From the face's landmarks in that picture come the
crop box (jittered from the seed and the sample's name), the crop, and the
sample's geometry rows: image, posmap, kpt68, tform and pose.
"""

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from prn.pipeline.shards import CROP_SIZE, UV_SIZE
from prn.pipeline.stage import worker_morphable_model
from prn.rendering.geometry.crop import TRAIN_CROP_SCALE, crop_box, crop_positions, crop_transform, model_to_crop
from prn.rendering.morphable.uv_assets import uv_table
from prn.rendering.raster.rasterizer import gather

JITTER_SHIFT = 0.1
JITTER_SCALE = (0.9, 1.1)
VERTEX_BATCH = 128  # the basis is read once per batch: 0.86 ms per sample at 32, 0.67 at 128


@lru_cache(maxsize=2)
def worker_uv_table(face_model_dir):
    """The model's UV pixel table, built once per process."""
    return uv_table(worker_morphable_model(face_model_dir), UV_SIZE)


def sample_seed(seed, name):
    """A 64-bit seed from (seed, sample name): the jitter of a sample never depends on its neighbours."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def jitter(seed, name):
    """(shift_x, shift_y, size_factor) of docs/formats.md section 6, drawn from (seed, name)."""
    rng = np.random.default_rng(sample_seed(seed, name))
    shift = rng.uniform(-JITTER_SHIFT, JITTER_SHIFT, 2)
    return shift[0], shift[1], rng.uniform(*JITTER_SCALE)


def to_float16(array):
    """float32 -> float16, rounding to nearest even as numpy's astype, about 2x faster (OpenCV's conversion)."""
    return cv2.convertFp16(np.ascontiguousarray(array, dtype=np.float32)).view(np.float16)


@dataclass(frozen=True)
class PlacedFace:
    """A face to crop: vertices (n, 3) float32 model units, placed by pose (7,) with rotation (3, 3) of its
    angles in an original image `height` px high, shown in a picture through frame (3, 3), original image px ->
    picture px."""

    vertices: np.ndarray
    rotation: np.ndarray
    pose: np.ndarray
    height: int
    frame: np.ndarray

    def mapping(self, frame=None):
        """(M (3, 3), b (3,)) of model_to_crop: position = M @ v + b for model vertices v (z before its shift), in
        the picture, or in the image of `frame` (3, 3, original image -> that image) when given."""
        return model_to_crop(self.rotation, self.pose, self.height, self.frame if frame is None else frame)

    def landmarks(self, face_model, mapping):
        """(68, 3) float64 positions of the model's landmark vertices through mapping (M, b)."""
        matrix, offset = mapping
        return self.vertices[face_model.landmarks].astype(np.float64) @ matrix.T + offset


def crop_rows(face_model, table, face: PlacedFace, picture, landmarks, name, settings):
    """The crop of a face shown in `picture` and its geometry rows: image, posmap, kpt68, tform, pose.

    picture (h, w, 3) uint8, showing the original image through face.frame;
    landmarks (68, 2) float64, the face's in the picture, px; the box is
    jittered from (settings.seed, name) when settings.jitter. image
    (CROP_SIZE, CROP_SIZE, 3) uint8; posmap (UV_SIZE, UV_SIZE, 3) of
    settings.posmap_dtype and kpt68 (68, 3) float32, crop px; tform (3, 3)
    float32, original image -> crop; pose (7,) float32.
    """
    shift_x, shift_y, size_factor = jitter(settings.seed, name) if settings.jitter else (0.0, 0.0, 1.0)
    transform = crop_transform(*crop_box(landmarks, TRAIN_CROP_SCALE, (shift_x, shift_y), size_factor),
                               out_size=CROP_SIZE)
    crop = cv2.warpAffine(picture, transform[:2], (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    tform = transform @ face.frame
    positions = crop_positions(face.vertices, *face.mapping(tform))
    posmap = gather(table, positions)
    return {
        "image": crop,
        "posmap": to_float16(posmap) if settings.posmap_dtype == "float16" else posmap,
        "kpt68": positions[face_model.landmarks],
        "tform": tform.astype(np.float32),
        "pose": face.pose.astype(np.float32),
    }
