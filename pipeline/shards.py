"""The HDF5 shard schema, written atomically with a JSON record beside each shard.

Datasets, N samples (see the README for units):
  image (N, 256, 256, 3) uint8 RGB crop
  posmap (N, 256, 256, 3) float16 (or float32) UV position map, crop pixels
  kpt68 (N, 68, 3) float32 landmarks in crop coordinates
  tform (N, 3, 3) float32 image-to-crop similarity
  pose (N, 7) float32 Pose_Para; shape_params (N, K), exp_params (N, E) float32
  name, subset (N,) UTF-8 strings
  image_size (N, 2) int32 (height, width) of the original image
  AFLW2000-3D only: pt3d_68 (N, 68, 3) float32 original image coordinates
Stages may add datasets of their own (augment: source_name, rotation_deg).
File attributes: schema_version, model_fingerprint, uv_size, seed, jitter,
layout, tool_version.
"""

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np

from prn.rendering.util.atomic import atomic_path

SCHEMA_VERSION = 1
# Per-sample chunks: training reads one sample at a time in random order.
# No compression, by measurement (README, "Shards"): gzip-1 with shuffle saves
# 45 % of the disk but costs 9x the read time and doubles the build time.
COMPRESSION = {"image": {}, "posmap": {}}
STRING = h5py.string_dtype("utf-8")
OPTIONAL = ("pt3d_68",)
DATASETS = ("image", "posmap", "kpt68", "tform", "pose", "shape_params", "exp_params", "image_size", "name",
            "subset") + OPTIONAL


def shard_record_path(out_dir, shard_file):
    return Path(out_dir) / f"{shard_file}.json"


def _empty_like(name, posmap_dtype):
    shapes = {"image": ((0, 256, 256, 3), np.uint8), "posmap": ((0, 256, 256, 3), posmap_dtype),
              "kpt68": ((0, 68, 3), np.float32), "tform": ((0, 3, 3), np.float32), "pose": ((0, 7), np.float32),
              "image_size": ((0, 2), np.int32),
              "shape_params": ((0, 0), np.float32), "exp_params": ((0, 0), np.float32)}
    return np.zeros(*shapes[name]) if name in shapes else np.array([], dtype=object)


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


class ShardWriter:
    """Writes one shard file and then its record (sample count, sha256, size, inputs)."""

    def __init__(self, out_dir, shard_file, posmap_dtype="float16"):
        self.out_dir = Path(out_dir)
        self.shard_file = shard_file
        self.posmap_dtype = np.dtype(posmap_dtype)

    def write(self, rows, attributes, record):
        path = self.out_dir / self.shard_file
        # No chunk cache: every chunk goes to disk as it is written, so the file layout
        # does not depend on when objects are freed (Dask's profiler can delay that).
        with atomic_path(path) as tmp, h5py.File(tmp, "w", libver="earliest", track_order=False,
                                                 rdcc_nbytes=0) as handle:
            for key, value in attributes.items():
                handle.attrs[key] = value
            extra = tuple(sorted(set(rows[0]) - set(DATASETS))) if rows else ()
            for name in DATASETS + extra:
                if rows and name not in rows[0]:
                    continue
                if not rows and name in OPTIONAL:
                    continue
                self._dataset(handle, name, [row[name] for row in rows])
        record = {**record, "samples": len(rows), "bytes": path.stat().st_size, "sha256": file_sha256(path)}
        with atomic_path(shard_record_path(self.out_dir, self.shard_file)) as tmp:
            tmp.write_text(json.dumps(record, sort_keys=True) + "\n")

    def _dataset(self, handle, name, values):
        if name in ("name", "subset") or (values and isinstance(values[0], str)):
            handle.create_dataset(name, data=np.array(values, dtype=object), dtype=STRING, track_times=False)
            return
        data = np.stack(values) if values else _empty_like(name, self.posmap_dtype)
        if name == "posmap":
            data = data.astype(self.posmap_dtype)
        options = {}
        if name in COMPRESSION and len(values):
            options = {"chunks": (1,) + data.shape[1:], **COMPRESSION[name]}
        handle.create_dataset(name, data=data, track_times=False, **options)
